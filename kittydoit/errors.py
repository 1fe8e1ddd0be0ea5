"""User errors of kittydoit and the exit codes every command ends with.

Exit codes follow doit's, so scripts and CI can rely on one table:

====  ==================================================================
0     every selected work package is done
1     a work package failed (its dependants are reported as blocked)
2     an error while running (a bug, or the environment broke mid-run)
3     bad input found before anything ran, or a run refused because another run of the feature is
      going: nothing was started or changed
130   interrupted (Ctrl-C, SIGTERM, SIGHUP, ``kittydoit abort``)
====  ==================================================================

A :class:`UserError` is a mistake the user can fix. It prints as one line that names the file and the fix,
``kitty-specs/001-x/tasks/WP03-y.md: dependency 'WP09' does not exist``. It subclasses doit's
``InvalidTask`` so that doit, too, prints it as a single ``ERROR:`` line instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

from doit.exceptions import InvalidTask

EXIT_OK = 0
EXIT_WP_FAILED = 1
EXIT_ERROR = 2
EXIT_BAD_INPUT = 3
EXIT_INTERRUPTED = 130


class UserError(InvalidTask):  # type: ignore[misc]  # doit is untyped
    """A mistake in the user's files, settings or command line."""

    def __init__(self, where: str | Path | None, message: str) -> None:
        self.where = _shown(where) if where is not None else None
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class FeatureError(UserError):
    """A problem with kitty-specs/, a feature folder or a work package file."""


class ConfigError(UserError):
    """A problem with .kittify/agents.yaml or another kittydoit setting."""


class RunLockedError(UserError):
    """Another kittydoit run is working on the same feature."""


def _shown(where: str | Path) -> str:
    """Show a path relative to the working directory when it lies under it."""
    path = Path(where)
    if path.is_absolute():
        try:
            return str(path.relative_to(Path.cwd())) or "."
        except ValueError:
            return str(path)
    return str(where)
