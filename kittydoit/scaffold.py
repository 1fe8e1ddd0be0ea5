"""Write the files a repository needs to run with kittydoit, and the bundled example repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kittydoit.config import CONFIG_PATH
from kittydoit.errors import UserError
from kittydoit.feature import SPECS_DIR
from kittydoit.lanes import write_atomic
from kittydoit.resources import shipped

EXAMPLE_AGENTS = """\
# Agents of the kittydoit example: a small local program (kittydoit.example_agent) in two roles, so the example
# needs no account or API key. It writes the files each work package specifies and reviews the result by
# running the checks the work package names. `kittydoit init` writes a file like this for real agent CLIs.
version: "1.0"
agents:
  example-coder:
    command: [{python}, -m, kittydoit.example_agent, implement]
    prompt: stdin
    roles: [implementation]
    timeout_seconds: 120
  example-reviewer:
    command: [{python}, -m, kittydoit.example_agent, review]
    prompt: stdin
    roles: [review]
    timeout_seconds: 120
defaults:
  implementation: [example-coder]
  review: [example-reviewer]
review_cycles: 2
"""

_GITIGNORE = "__pycache__/\n"


def dodo_text() -> str:
    """Return the dodo.py kittydoit writes (the same file as the top-level dodo.py of kittydoit's source)."""
    return shipped("dodo_entry.py").read_text(encoding="utf-8")


def init(root: Path, *, force: bool = False) -> Iterator[str]:
    """Write dodo.py into *root* (a spec-kitty repository); yield a line per file written or kept."""
    if not (root / SPECS_DIR).is_dir():
        raise UserError(root, f"has no {SPECS_DIR}/ folder; run `kittydoit init` at the top of a spec-kitty repository")
    dodo = root / "dodo.py"
    if dodo.exists() and not force and dodo.read_text(encoding="utf-8") != dodo_text():
        yield f"kept {dodo} (it differs from kittydoit's; --force replaces it)"
    else:
        write_atomic(dodo, dodo_text())
        yield f"wrote {dodo}"
    agents = root / CONFIG_PATH
    if agents.exists() and not force:
        yield f"kept {agents}"


def example(target: Path | None) -> Path:
    """Create a git repository with the example feature in *target* (a new temporary folder when None)."""
    if target is None:
        target = Path(tempfile.mkdtemp(prefix="kittydoit-example-"))
    target = target.resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(target, "exists and is not empty; choose a new folder")
    source = shipped("example")
    target.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(source / SPECS_DIR, target / SPECS_DIR)
        (target / ".kittify").mkdir()
        (target / CONFIG_PATH).write_text(EXAMPLE_AGENTS.format(python=_yaml_string(sys.executable)), encoding="utf-8")
        (target / "dodo.py").write_text(dodo_text(), encoding="utf-8")
        (target / ".gitignore").write_text(_GITIGNORE, encoding="utf-8")
        _git(target, "init", "-q", "-b", "main")
        _git(target, "add", "-A")
        _git(target, "commit", "-q", "-m", "Example feature for kittydoit")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def _yaml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _git(cwd: Path, *args: str) -> None:
    identity = ["-c", "user.name=kittydoit example", "-c", "user.email=example@kittydoit.invalid"]
    result = subprocess.run(
        ["git", *identity, "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise UserError(cwd, f"git {' '.join(args)} failed: {result.stderr.strip()}")
