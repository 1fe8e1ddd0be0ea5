"""spec-kitty-orchestrator 0.1.2 (PyPI), spec-kitty's own external orchestrator for 3.x missions, run here.

It drives a mission through ``spec-kitty orchestrator-api`` alone, one ``spec-kitty`` process per call, and polls
``list-ready`` every 2 s (``loop.py``). It is run as

    spec-kitty-orchestrator orchestrate --mission SLUG --max-concurrent N

in the repository root, with ``spec-kitty`` on PATH. Its agents are looked up by id; the default for both roles is
``claude-code``, called as ``claude -p --output-format json --dangerously-skip-permissions --allowedTools ...``
with the WP file as the prompt on stdin, in the lane worktree that ``start-implementation`` returns. A call
succeeds when it exits 0 (a review too: no verdict is read). The benchmark's ``claude`` is ``bench/fake_agent.py``
(see :func:`bench.peer.fake_agent_bin`), which tells a review by the tools it is allowed.

Against spec-kitty 3.2.7 (contract 1.5.0) it forces ``for_review`` (it never marks subtasks done) and, after
``for_review -> done`` is refused, claims the review and forces ``in_review -> done``: it finishes, with
``force_count`` 2 per WP (``shared/reference/spec-kitty-3x.md``, section 8).

It is installed once into a venv of its own in the benchmark's cache folder; where it cannot be,
:func:`install` returns None and says why.
"""

from __future__ import annotations

from pathlib import Path

from bench.peer import pip_venv

VERSION = "0.1.2"
PACKAGE = "spec-kitty-orchestrator"


def install(cache: Path) -> tuple[Path | None, str]:
    """Return the ``spec-kitty-orchestrator`` executable (installing it once), or None and why."""
    return pip_venv(cache / f"{PACKAGE}-{VERSION}", PACKAGE, VERSION, PACKAGE)


def command(binary: Path, slug: str, workers: int) -> list[str]:
    return [str(binary), "orchestrate", "--mission", slug, "--max-concurrent", str(workers)]
