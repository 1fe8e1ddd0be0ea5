"""spec-kitty-cli 3.2.7 for the tests, installed once per machine, and real 3.x missions made runnable with it.

The install goes to ``~/.cache/kittydoit-spec-kitty/3.2.7`` (``$KITTYDOIT_SPEC_KITTY_CACHE`` for another folder), a
virtual environment of its own, so its dependencies never meet kittydoit's. When the package index cannot be reached
and nothing is cached, :func:`install` raises :class:`Unavailable` and the tests that need spec-kitty are skipped
with that reason; any other install failure is a test failure.

:func:`mission_repo` turns a mission of the shared 3.x corpus into a git repository spec-kitty accepts, with its WPs
reopened (the recipe of spec-kitty-3x.md, section 11): every transition dropped but one ``genesis -> planned`` per
WP, every other line kept; ``lanes.json``'s planning commit set to the commit holding the mission; spec-kitty's
event-log merge driver; ``main`` unprotected (spec-kitty refuses to record status on a protected branch).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

VERSION = "3.2.7"
CACHE = Path(os.environ.get("KITTYDOIT_SPEC_KITTY_CACHE") or Path.home() / ".cache" / "kittydoit-spec-kitty") / VERSION
CORPUS = Path(__file__).with_name("corpus") / "v3" / "kitty-specs"
FAKE_AGENT = Path(__file__).with_name("fake_agent.py")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Unavailable(Exception):
    """The package index cannot be reached and spec-kitty is not cached: the tier cannot run."""


def bin_dir() -> Path:
    return CACHE / "bin"


def install() -> Path:
    """Install spec-kitty-cli (once per machine) and return the folder holding its ``spec-kitty``."""
    done = CACHE / ".installed"
    if done.exists():
        return bin_dir()
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with (CACHE.parent / f".{VERSION}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions on one machine install it once
        if done.exists():
            return bin_dir()
        shutil.rmtree(CACHE, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(CACHE)], check=True, capture_output=True)
        pip = subprocess.run(
            [str(CACHE / "bin" / "pip"), "install", "-q", f"spec-kitty-cli=={VERSION}"],
            capture_output=True, text=True, timeout=900, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if pip.returncode != 0:
            shutil.rmtree(CACHE, ignore_errors=True)
            reason = _index_unreachable()
            if reason:
                raise Unavailable(reason)
            raise AssertionError(f"pip could not install spec-kitty-cli=={VERSION}:\n{pip.stderr[-2000:]}")
        done.write_text(VERSION + "\n")
    return bin_dir()


def _index_unreachable() -> str | None:
    index = "https://pypi.org/simple/spec-kitty-cli/"
    config = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                            capture_output=True, text=True, check=False)  # fmt: skip
    if config.returncode == 0 and config.stdout.strip().startswith("http"):
        index = config.stdout.strip().rstrip("/") + "/spec-kitty-cli/"
    try:
        with urllib.request.urlopen(index, timeout=20):  # noqa: S310  # a fixed https address
            return None
    except OSError as error:
        return f"the package index ({index}) cannot be reached: {error}"


def ulid() -> str:
    number = (int(time.time() * 1000) << 80) | random.getrandbits(80)
    return "".join(_CROCKFORD[(number >> (5 * i)) & 31] for i in reversed(range(26)))


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


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
    target = str(meta.get("target_branch") or "main")
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", target)
    git(root, "config", "user.name", "Test")
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "merge.spec-kitty-event-log.driver", "spec-kitty merge-driver-event-log %O %A %B")
    (root / ".gitattributes").write_text("kitty-specs/**/status.events.jsonl merge=spec-kitty-event-log\n")
    (root / "README.md").write_text("A project planned with spec-kitty.\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")
    folder = root / "kitty-specs" / name
    shutil.copytree(source, folder)
    _reopen(folder / "status.events.jsonl", folder, slug, meta.get("mission_id"))
    state, plan = base / "agent-state", base / "plan.json"
    plan.write_text("{}")
    kittify = root / ".kittify"
    kittify.mkdir()
    (kittify / "config.yaml").write_text("protection:\n  protected_branches: []\n")
    (kittify / "agents.yaml").write_text(_agents_yaml(state, plan, implementers, reviewers) + config_extra)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"mission {name}")
    lanes = folder / "lanes.json"
    if lanes.exists():
        data = json.loads(lanes.read_text())
        data["planning_commit_sha"] = git(root, "rev-parse", "HEAD").strip()
        lanes.write_text(json.dumps(data, indent=2) + "\n")
        git(root, "commit", "-q", "-am", "lanes.json: the planning commit of this repository")
    home = base / "home"
    home.mkdir()
    path = os.environ["PATH"] if spec_kitty is None else f"{spec_kitty}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "HOME": str(home), "SPEC_KITTY_HOME": str(home / ".spec-kitty"),
           "SPEC_KITTY_ENABLE_SAAS_SYNC": "0", "SPEC_KITTY_NO_UPGRADE_CHECK": "1", "CI": "true"}  # fmt: skip
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
            event = {"event_id": ulid(), "wp_id": wp, "from_lane": "genesis", "to_lane": "planned",
                     "at": "2026-01-01T00:00:00.000000+00:00", "actor": "finalize-tasks", "force": False,
                     "execution_mode": "worktree", "mission_slug": slug, "mission_id": mission_id, "reason": None,
                     "review_ref": None, "evidence": None, "policy_metadata": None}  # fmt: skip
            kept.append(json.dumps(event, sort_keys=True))
    log.write_text("\n".join(kept) + "\n")


def _agents_yaml(state: Path, plan: Path, implementers: Iterable[str], reviewers: Iterable[str]) -> str:
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
        "retry_backoff_seconds: 0\n"
    )
