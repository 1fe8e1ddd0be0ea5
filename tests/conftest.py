"""Shared fixtures: real git repositories holding a spec-kitty feature, run by the real kittydoit command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

FAKE_AGENT = Path(__file__).with_name("fake_agent.py")
CORPUS = Path(__file__).with_name("corpus")  # copied from spec-kitty repositories: WP files as found in the wild
FEATURE = "001-demo"


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give git an identity and no user config, as on a clean CI machine."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var, value in {
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("DOIT_FILE", raising=False)


def wp_text(wp_id: str, deps: Iterable[str] = (), lane: str = "planned", title: str | None = None) -> str:
    """Return a small WP file in spec-kitty's style."""
    title = title or f"Title of {wp_id}"
    dep_list = ", ".join(f'"{d}"' for d in deps)
    return (
        f'---\nwork_package_id: "{wp_id}"\ntitle: "{title}"\nlane: "{lane}"\ndependencies: [{dep_list}]\n---\n\n'
        f"# Work Package Prompt: {wp_id} – {title}\n\nDo the work of {wp_id}.\n\n"
        "## Activity Log\n\n- 2026-01-01T00:00:00Z – system – lane=planned – Prompt created\n"
    )


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return result.stdout


@dataclass
class Repo:
    """A git repository with one feature under kitty-specs/ and fake agents configured."""

    root: Path
    state: Path
    plan_file: Path

    @property
    def tasks(self) -> Path:
        return self.root / "kitty-specs" / FEATURE / "tasks"

    def wp_file(self, wp_id: str) -> Path:
        return next(self.tasks.rglob(f"{wp_id}-*.md"))

    def lane(self, wp_id: str) -> str:
        for line in self.wp_file(wp_id).read_text().splitlines():
            if line.startswith("lane:"):
                return line.split(":", 1)[1].strip().strip("\"'")
        raise AssertionError(f"{wp_id} has no lane")

    def plan(self, plan: Mapping[str, object]) -> None:
        self.plan_file.write_text(json.dumps(plan))

    def calls(self) -> list[dict]:
        path = self.state / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def started(self, role: str | None = None) -> list[str]:
        """Return the WPs whose agent started, in order (for *role* when given)."""
        return [c["wp"] for c in self.calls() if "start" in c and (role is None or c["role"] == role)]

    def kittydoit(self, *args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run the real kittydoit command in the repository."""
        result = subprocess.run(
            [sys.executable, "-m", "kittydoit", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and result.returncode != 0:
            command = " ".join(args)
            raise AssertionError(f"kittydoit {command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def popen(self, *args: str, **kwargs: object) -> subprocess.Popen[str]:
        """Start the real kittydoit command in the repository without waiting for it."""
        return subprocess.Popen(
            [sys.executable, "-m", "kittydoit", *args],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,  # type: ignore[arg-type]
        )


def agents_yaml(
    state: Path,
    plan: Path,
    extra: str = "",
    implementers: Iterable[str] = ("fake-coder",),
    reviewers: Iterable[str] = ("fake-reviewer",),
) -> str:
    """Return an agents.yaml of fake agents (tests/fake_agent.py), each told its name with --name."""

    def command(role: str, name: str) -> str:
        parts = [sys.executable, str(FAKE_AGENT), role, "--state", str(state), "--plan", str(plan), "--name", name]
        return "[" + ", ".join(json.dumps(p) for p in parts) + "]"

    implementers, reviewers = list(implementers), list(reviewers)
    lines = ["agents:"]
    for role, names, kind in (("implement", implementers, "implementation"), ("review", reviewers, "review")):
        for name in names:
            lines += [f"  {name}:", f"    command: {command(role, name)}", f"    roles: [{kind}]"]
    return (
        "\n".join(lines) + "\n"
        f"defaults:\n  implementation: [{', '.join(implementers)}]\n  review: [{', '.join(reviewers)}]\n"
        + ("" if "retry_backoff_seconds" in extra else "retry_backoff_seconds: 0  # tests need no backoff\n")
        + extra
    )


def make_repo(
    root: Path,
    wps: Mapping[str, Iterable[str]],
    *,
    lanes: Mapping[str, str] | None = None,
    config_extra: str = "",
    layout: str = "flat",
    implementers: Iterable[str] = ("fake-coder",),
    reviewers: Iterable[str] = ("fake-reviewer",),
) -> Repo:
    """Create a committed repository whose feature 001-demo has *wps* (id -> dependencies)."""
    tasks = root / "kitty-specs" / FEATURE / "tasks"
    tasks.mkdir(parents=True)
    (tasks.parent / "meta.json").write_text(json.dumps({"slug": FEATURE, "target_branch": "main"}))
    for wp_id, deps in wps.items():
        lane = (lanes or {}).get(wp_id, "planned")
        folder = tasks / lane if layout == "lanes" else tasks
        folder.mkdir(exist_ok=True)
        (folder / f"{wp_id}-work.md").write_text(wp_text(wp_id, deps, lane))
    state = root.parent / f"{root.name}-agent-state"
    plan = root.parent / f"{root.name}-plan.json"
    plan.write_text("{}")
    (root / ".kittify").mkdir()
    (root / ".kittify" / "agents.yaml").write_text(agents_yaml(state, plan, config_extra, implementers, reviewers))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "feature")
    return Repo(root=root, state=state, plan_file=plan)


@pytest.fixture
def diamond(tmp_path: Path) -> Repo:
    """WP01; WP02 and WP03 after it; WP04 after both."""
    return make_repo(tmp_path / "repo", {"WP01": [], "WP02": ["WP01"], "WP03": ["WP01"], "WP04": ["WP02", "WP03"]})


@pytest.fixture(scope="session")
def spec_kitty_bin() -> Path:
    """The folder holding spec-kitty 3.2.7's ``spec-kitty`` (installed once per machine, see tests/spec_kitty.py).

    Skipped, with the reason, when the package index cannot be reached and nothing is cached, or when
    ``KITTYDOIT_SKIP_SPEC_KITTY`` is set.
    """
    from tests import spec_kitty  # noqa: PLC0415  # only the tests that need spec-kitty import it

    if os.environ.get("KITTYDOIT_SKIP_SPEC_KITTY"):
        pytest.skip("spec-kitty tier skipped: KITTYDOIT_SKIP_SPEC_KITTY is set")
    try:
        return spec_kitty.install()
    except spec_kitty.Unavailable as error:
        pytest.skip(f"spec-kitty tier skipped: {error}")
