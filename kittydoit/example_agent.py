"""The example agent: a small local program that does what the example's work packages ask, no account needed.

    python -m kittydoit.example_agent implement   < prompt     writes the files the spec lists
    python -m kittydoit.example_agent review      < prompt     checks them and runs the spec's checks

It reads the prompt on stdin and works in its current directory (the WP's worktree). A spec lists files as a
heading ``### `path` `` followed by a fenced code block with the file's content, and commands to prove the work
in a fenced block under ``## Check``. As a reviewer it ends with ``VERDICT: APPROVED`` or
``VERDICT: CHANGES_REQUESTED`` and its findings, as kittydoit's review prompt asks.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

_FILE = re.compile(r"^### `([^`]+)`\s*\n+(`{3,})[^\n]*\n(.*?)^\2\s*$", re.MULTILINE | re.DOTALL)
_CHECK = re.compile(r"^## Check\s*\n+(`{3,})[^\n]*\n(.*?)^\1\s*$", re.MULTILINE | re.DOTALL)


def spec_of(prompt: str) -> str:
    """Return the specification part of a kittydoit prompt."""
    start = re.search(r"^## Specification of WP\d+.*$", prompt, re.MULTILINE)
    text = prompt[start.end() :] if start else prompt
    end = re.search(r"^## The change to review", text, re.MULTILINE)
    return text[: end.start()] if end else text


def wanted_files(spec: str) -> dict[str, str]:
    """Return the files a spec asks for: path -> content."""
    return {match.group(1): match.group(3) for match in _FILE.finditer(spec)}


def checks(spec: str) -> list[str]:
    """Return the command lines under the spec's ``## Check`` heading."""
    match = _CHECK.search(spec)
    if not match:
        return []
    return [line.strip() for line in match.group(2).splitlines() if line.strip() and not line.startswith("#")]


def implement(spec: str, workdir: Path) -> int:
    files = wanted_files(spec)
    if not files:
        print("The specification lists no files to write (### `path` headings with code blocks).")
        return 1
    for name, content in files.items():
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        print(f"wrote {name} ({len(content.splitlines())} lines)")
    print(f"Done: wrote {len(files)} file(s) as the specification lists them.")
    return 0


def review(spec: str, workdir: Path) -> int:
    problems = []
    for name, content in wanted_files(spec).items():
        path = workdir / name
        if not path.is_file():
            problems.append(f"- {name} is missing; create it as the specification shows.")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"- {name} differs from the specification; make it match.")
    for command in checks(spec):
        argv = shlex.split(command)
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        result = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, check=False, timeout=60)
        status = "passed" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        print(f"check `{command}`: {status}")
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            problems.append(f"- `{command}` fails: {detail[-1] if detail else 'no output'}")
    if problems:
        print("VERDICT: CHANGES_REQUESTED")
        print("\n".join(problems))
    else:
        print("All files match the specification and every check passes.")
        print("VERDICT: APPROVED")
        print("Looks good.")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("implement", "review"):
        print("usage: python -m kittydoit.example_agent implement|review < prompt", file=sys.stderr)
        return 2
    spec = spec_of(sys.stdin.read())
    workdir = Path.cwd()
    return implement(spec, workdir) if args[0] == "implement" else review(spec, workdir)


if __name__ == "__main__":
    sys.exit(main())
