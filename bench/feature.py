"""Write a synthetic feature as spec-kitty would: WP files, tasks.md and meta.json, in a git repository.

WP files look like real spec-kitty ones (the canonical frontmatter fields, a history entry, a body of a few
kilobytes with objectives, subtasks and an activity log), so that reading them costs what reading real ones
costs. The same files go to kittydoit's repository and to spec-kitty's (which ``spec-kitty init`` makes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from bench.dags import Dag

FEATURE = "001-bench"
FAKE_AGENT = Path(__file__).with_name("fake_agent.py")

# Commits made by the benchmark, git's own and the fake agents': an identity and no user or system config.
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}

_BODY = """
# Work Package Prompt: {wp} – {title}

## Objectives & Success Criteria

Implement the {title} part of the benchmark feature. The work is synthetic: an agent writes one file and
commits it. The text below stands for the usual length of a spec-kitty prompt, so that reading, hashing and
rendering it costs what a real one costs.

- The change is limited to `{wp}.txt`.
- Nothing else in the repository changes.
- The review approves when the file exists.

## Context & Constraints

{filler}

## Subtasks & Detailed Guidance

### Subtask T{n:03d}1 – Write the file
- **Purpose**: give the review something to look at.
- **Steps**: write `{wp}.txt`; commit it.
- **Files**: `{wp}.txt`.

### Subtask T{n:03d}2 – Check the result
- **Purpose**: make sure the change is there.
- **Steps**: read the file back.

## Risks & Mitigations

{filler}

## Review Guidance

- Approve when `{wp}.txt` exists and nothing else changed.

## Activity Log

- 2026-01-01T00:00:00Z – system – lane=planned – Prompt created.
"""

_FILLER = (
    "The orchestrator runs each work package in its own worktree, on its own branch, with the branches of "
    "its dependencies merged in. Agents are slow and expensive, so the orchestrator's job is to keep them "
    "busy on the right work packages and to cost nothing itself. "
) * 6


def wp_text(dag: Dag, wp: str) -> str:
    """Return the WP file of *wp* in spec-kitty's style."""
    n = int(wp[2:])
    deps = ", ".join(f'"{d}"' for d in dag.deps[wp])
    title = f"Synthetic step {n}"
    frontmatter = (
        f'---\nwork_package_id: "{wp}"\nsubtasks:\n  - "T{n:03d}1"\n  - "T{n:03d}2"\ntitle: "{title}"\n'
        f'phase: "Phase 1 - Benchmark"\nlane: "planned"\nassignee: ""\nagent: ""\nshell_pid: ""\n'
        f'review_status: ""\nreviewed_by: ""\ndependencies: [{deps}]\nhistory:\n'
        f'  - timestamp: "2026-01-01T00:00:00Z"\n    lane: "planned"\n    agent: "system"\n'
        f'    shell_pid: ""\n    action: "Prompt generated via /spec-kitty.tasks"\n---\n'
    )
    return frontmatter + _BODY.format(wp=wp, title=title, n=n, filler=_FILLER)


def tasks_md(dag: Dag) -> str:
    """Return a tasks.md whose "Dependencies:" lines spec-kitty's finalize-tasks reads."""
    parts = ["# Work Packages: Benchmark\n"]
    for wp, deps in dag.deps.items():
        n = int(wp[2:])
        parts.append(f"\n## Work Package {wp}: Synthetic step {n} (Priority: P1)\n\n")
        parts.append(f"Dependencies: {', '.join(deps) if deps else 'None'}\n\n")
        parts.append(f"- [x] T{n:03d}1 Write the file\n- [x] T{n:03d}2 Check the result\n")
    return "".join(parts)


def write_feature(folder: Path, dag: Dag) -> None:
    """Write the WP files, tasks.md and plan.md of *dag* into the feature *folder*."""
    tasks = folder / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    for wp in dag.deps:
        (tasks / f"{wp}-synthetic-step.md").write_text(wp_text(dag, wp), encoding="utf-8")
    (folder / "tasks.md").write_text(tasks_md(dag), encoding="utf-8")
    (folder / "plan.md").write_text("# Plan\n\nA synthetic feature for benchmarks.\n", encoding="utf-8")


def agent_command(role: str) -> list[str]:
    """Return the argv of the benchmark's fake agent for *role*."""
    return [sys.executable, "-S", str(FAKE_AGENT), role]


def agents_yaml() -> str:
    """Return kittydoit's agent settings: the fake agent as implementer and reviewer."""

    def row(role: str) -> str:
        return json.dumps(agent_command(role))

    return (
        "agents:\n"
        f"  bench-coder:\n    command: {row('implement')}\n    roles: [implementation]\n"
        f"  bench-reviewer:\n    command: {row('review')}\n    roles: [review]\n"
        "defaults:\n  implementation: [bench-coder]\n  review: [bench-reviewer]\n"
        # doit's -n is to be the only limit: global_concurrency (default 5) caps the agents running at once and
        # is each agent's limit too, which would hold -n 8 to 5.
        "global_concurrency: 64\n"
    )


def make_kittydoit_repo(root: Path, dag: Dag) -> Path:
    """Create a committed git repository at *root* holding *dag* as feature 001-bench; return *root*."""
    folder = root / "kitty-specs" / FEATURE
    write_feature(folder, dag)
    (folder / "meta.json").write_text(
        json.dumps(
            {"feature_number": "001", "slug": FEATURE, "friendly_name": "Bench", "target_branch": "main"}
        )
    )
    (root / ".kittify").mkdir(parents=True, exist_ok=True)
    (root / ".kittify" / "agents.yaml").write_text(agents_yaml())
    (root / "README.md").write_text("benchmark repository\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "feature")
    return root


def git(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV, **(env or {})},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout
