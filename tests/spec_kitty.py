"""spec-kitty-cli 3.2.7 for the tests, installed once per machine, and real 3.x missions made runnable with it.

The install goes to ``~/.cache/kittydoit-spec-kitty/3.2.7`` (``$KITTYDOIT_SPEC_KITTY_CACHE`` for another folder), a
virtual environment of its own, so its dependencies never meet kittydoit's. When the package index cannot be reached
and nothing is cached, :func:`install` raises :class:`Unavailable` and the tests that need spec-kitty are skipped
with that reason; any other install failure is a test failure. The install and the repository recipe live in
``bench/mission.py``, which the benchmark's 3.x suite shares.

:func:`mission_repo` turns a mission of the shared 3.x corpus into a git repository spec-kitty accepts, with its WPs
reopened (the recipe of spec-kitty-3x.md, section 11): every transition dropped but one ``genesis -> planned`` per
WP, every other line kept; ``lanes.json``'s planning commit set to the commit holding the mission; spec-kitty's
event-log merge driver; ``main`` unprotected (spec-kitty refuses to record status on a protected branch).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from conftest import agents_yaml

from bench.mission import (  # shared with the benchmark's 3.x suite
    CACHE,
    VERSION,
    Unavailable,
    bin_dir,
    environment,
    genesis,
    git,
    init_repo,
    install,
    pin_planning_commit,
    ulid,
    unprotect,
)

__all__ = ["CACHE", "VERSION", "Mission", "Unavailable", "bin_dir", "install", "mission_repo", "ulid"]

CORPUS = Path(__file__).with_name("corpus") / "v3" / "kitty-specs"


@dataclass
class Mission:
    """A git repository holding one reopened 3.x mission, set up to run with fake agents and spec-kitty."""

    root: Path
    slug: str
    state: Path
    plan_file: Path
    env: dict[str, str]

    @property
    def folder(self) -> Path:
        return self.root / "kitty-specs" / self.slug

    @property
    def log(self) -> Path:
        return self.folder / "status.events.jsonl"

    def plan(self, plan: Mapping[str, object]) -> None:
        self.plan_file.write_text(json.dumps(plan))

    def calls(self) -> list[dict[str, object]]:
        path = self.state / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def started(self, role: str) -> list[str]:
        return [str(c["wp"]) for c in self.calls() if "start" in c and c["role"] == role]

    def kittydoit(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kittydoit", *args], cwd=self.root, env=self.env, capture_output=True,
            text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip

    def spec_kitty(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["spec-kitty", *args], cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=120, check=False, stdin=subprocess.DEVNULL)  # fmt: skip

    def spec_kitty_json(self, *args: str) -> dict[str, object]:
        result = self.spec_kitty(*args)
        text = result.stdout.strip()
        return json.loads(text[text.index("{") :])

    def transitions(self) -> list[dict[str, object]]:
        lines = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [d for d in lines if "to_lane" in d and "kind" not in d]


def mission_repo(
    base: Path, name: str, *, spec_kitty: Path | None, implementers: Iterable[str] = ("fake-coder",),
    reviewers: Iterable[str] = ("fake-reviewer",), config_extra: str = "",
) -> Mission:
    """Return a repository under *base* holding the corpus mission *name* with its WPs reopened."""
    source = CORPUS / name
    root = base / "repo"
    meta = json.loads((source / "meta.json").read_text())
    slug = str(meta.get("mission_slug") or name)
    init_repo(root, str(meta.get("target_branch") or "main"))
    folder = root / "kitty-specs" / name
    shutil.copytree(source, folder)
    _reopen(folder / "status.events.jsonl", folder, slug, meta.get("mission_id"))
    state, plan = base / "agent-state", base / "plan.json"
    plan.write_text("{}")
    unprotect(root)
    (root / ".kittify" / "agents.yaml").write_text(agents_yaml(state, plan, config_extra, implementers, reviewers))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"mission {name}")
    pin_planning_commit(root, folder)
    env = environment(base / "home", spec_kitty)
    return Mission(root=root, slug=slug, state=state, plan_file=plan, env=env)


def _reopen(log: Path, folder: Path, slug: str, mission_id: object) -> None:
    """Keep every line but the transitions, and one ``genesis -> planned`` transition per WP file."""
    wps = sorted(p.name.split("-", 1)[0] for p in (folder / "tasks").glob("WP*.md"))
    kept, seeded = [], set()
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            data = json.loads(line)
            transition = "to_lane" in data and "kind" not in data and "event_type" not in data
            if not transition:
                kept.append(line)
            elif data.get("from_lane") == "genesis" and data["wp_id"] not in seeded and data["wp_id"] in wps:
                kept.append(line)
                seeded.add(data["wp_id"])
    for wp in wps:
        if wp not in seeded:
            kept.append(genesis(wp, slug, mission_id))
    log.write_text("\n".join(kept) + "\n")
