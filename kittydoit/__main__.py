"""``python -m kittydoit`` is the ``kittydoit`` command; :func:`main` is also its console-script entry point."""

import sys


def main() -> int:
    """Run the kittydoit command; Ctrl-C while it is still loading exits 130, as any interruption does."""
    from kittydoit import plugins  # noqa: PLC0415

    plugins.install()  # before doit is imported: no importlib.metadata for doit's plugin lookup
    try:
        from kittydoit.cli import main as command  # noqa: PLC0415  # a Ctrl-C during the imports must not be a traceback
    except KeyboardInterrupt:
        return 130
    return command()


if __name__ == "__main__":
    sys.exit(main())
