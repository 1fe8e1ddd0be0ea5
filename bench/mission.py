"""spec-kitty 3.x missions for the benchmark and the tests: spec-kitty-cli 3.2.7, a repository it accepts, a mission.

- :func:`install`: spec-kitty-cli 3.2.7 in a virtual environment of its own, once per machine, in
  ``~/.cache/kittydoit-spec-kitty/3.2.7`` (``$KITTYDOIT_SPEC_KITTY_CACHE`` for another folder). When the package
  index cannot be reached and nothing is cached it raises :class:`Unavailable`.
- :func:`init_repo`, :func:`unprotect`, :func:`pin_planning_commit`, :func:`environment`: what a git repository
  needs before spec-kitty 3.2.7 runs a mission in it (``shared/reference/spec-kitty-3x.md``, section 11): a git
  identity, spec-kitty's event-log merge driver, ``main`` unprotected (spec-kitty refuses to record status on a
  protected branch), ``lanes.json``'s planning commit naming a commit of this repository, and a private home.
- :func:`write_mission`: a synthetic DAG as the mission ``finalize-tasks`` leaves behind, modelled on the corpus
  mission ``mission-type-guard-registry-01KZY2FG``: meta.json (topology ``lanes``), WP files with
  ``dependencies`` and ``subtasks``, tasks.md, ``lanes.json`` with one lane per WP and ``depends_on_lanes``
  following the dependencies, and an event log holding one ``genesis -> planned`` transition per WP.

``tests/spec_kitty.py`` builds its corpus missions with the same helpers.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.dags import Dag
from bench.measure import BenchError

VERSION = "3.2.7"
CACHE = (
    Path(os.environ.get("KITTYDOIT_SPEC_KITTY_CACHE") or Path.home() / ".cache" / "kittydoit-spec-kitty") / VERSION
)
MISSION_ID = "01KZZ0BENCH0D1AM0ND0000000"  # a fixed ULID: the same mission in every benchmark run
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_AT = "2026-01-01T00:00:00.000000+00:00"


class Unavailable(Exception):
    """The package index cannot be reached and spec-kitty is not cached."""


# ---- spec-kitty-cli 3.2.7 ----------------------------------------------------------------------------------


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
            raise RuntimeError(f"pip could not install spec-kitty-cli=={VERSION}:\n{pip.stderr[-2000:]}")
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


# ---- a repository spec-kitty accepts -----------------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def init_repo(root: Path, branch: str = "main") -> None:
    """Make *root* a git repository on *branch* with an identity and spec-kitty's event-log merge driver."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", branch)
    git(root, "config", "user.name", "Test")
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "merge.spec-kitty-event-log.driver", "spec-kitty merge-driver-event-log %O %A %B")
    (root / ".gitattributes").write_text("kitty-specs/**/status.events.jsonl merge=spec-kitty-event-log\n")
    (root / "README.md").write_text("A project planned with spec-kitty.\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")


def unprotect(root: Path) -> None:
    """Let spec-kitty record status on ``main`` (it refuses to on a protected branch, ``main`` by default)."""
    kittify = root / ".kittify"
    kittify.mkdir(exist_ok=True)
    (kittify / "config.yaml").write_text("protection:\n  protected_branches: []\n")


def pin_planning_commit(root: Path, folder: Path) -> None:
    """Point ``lanes.json`` at the commit holding the mission (start-implementation merges it) and commit that."""
    lanes = folder / "lanes.json"
    if not lanes.exists():
        return
    data = json.loads(lanes.read_text())
    data["planning_commit_sha"] = git(root, "rev-parse", "HEAD").strip()
    lanes.write_text(json.dumps(data, indent=2) + "\n")
    git(root, "commit", "-q", "-am", "lanes.json: the planning commit of this repository")


def environment(home: Path, spec_kitty: Path | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return an environment for spec-kitty: *spec_kitty* first on PATH, a private home, no network look-ups."""
    env = dict(os.environ if base is None else base)
    if spec_kitty is not None:
        env["PATH"] = f"{spec_kitty}{os.pathsep}{env.get('PATH', '')}"
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), SPEC_KITTY_HOME=str(home / ".spec-kitty"), SPEC_KITTY_ENABLE_SAAS_SYNC="0",
               SPEC_KITTY_NO_UPGRADE_CHECK="1", CI="true")  # fmt: skip
    return env


def genesis(wp: str, slug: str, mission_id: object) -> str:
    """Return the ``genesis -> planned`` transition ``finalize-tasks`` writes for *wp*, as one log line."""
    event = {"event_id": ulid(), "wp_id": wp, "from_lane": "genesis", "to_lane": "planned", "at": _AT,
             "actor": "finalize-tasks", "force": False, "execution_mode": "worktree", "mission_slug": slug,
             "mission_id": mission_id, "reason": "canonical bootstrap", "review_ref": None, "evidence": None,
             "policy_metadata": None}  # fmt: skip
    return json.dumps(event, sort_keys=True)


# ---- a synthetic mission -----------------------------------------------------------------------------------


def slug_of(dag: Dag) -> str:
    name = dag.name.split("/")[0].replace("_", "-")
    return f"bench-{name}-{MISSION_ID[:8]}"


def subtasks(wp: str) -> list[str]:
    """Return the subtask ids of *wp*: unique across the mission, as spec-kitty's mark-status needs."""
    n = int(wp[2:])
    return [f"T{n:02d}{k}" for k in (1, 2)]


def lanes(dag: Dag) -> list[dict[str, Any]]:
    """Return ``lanes.json``'s lanes for *dag*: one lane per WP, ``depends_on_lanes`` from its dependencies."""
    lane_of = {wp: f"lane-{_letters(i)}" for i, wp in enumerate(dag.deps)}
    depth: dict[str, int] = {}
    for wp, deps in dag.deps.items():  # dependencies come first in a Dag
        depth[wp] = 1 + max((depth[d] for d in deps), default=-1)
    return [
        {
            "lane_id": lane_of[wp],
            "wp_ids": [wp],
            "write_scope": [f"{wp}.txt"],
            "predicted_surfaces": [],
            "depends_on_lanes": [lane_of[d] for d in deps],
            "parallel_group": depth[wp],
        }
        for wp, deps in dag.deps.items()
    ]


def _letters(index: int) -> str:
    """Return lane letters as spec-kitty names lanes: a, b, ..., z, aa, ab, ..."""
    text = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        text = chr(ord("a") + rest) + text
    return text


def write_mission(folder: Path, dag: Dag, slug: str, target: str = "main") -> None:
    """Write *dag* into *folder* as a 3.x mission with every WP planned (status.json is left to spec-kitty)."""
    tasks = folder / "tasks"
    tasks.mkdir(parents=True)
    meta = {"created_at": _AT, "flattened": False, "friendly_name": f"benchmark {dag.name}", "mission_id": MISSION_ID,
            "mission_number": None, "mission_slug": slug, "mission_type": "software-dev", "slug": slug,
            "target_branch": target, "topology": "lanes", "vcs": "git", "vcs_locked_at": _AT}  # fmt: skip
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    for wp in dag.deps:
        (tasks / f"{wp}-synthetic-step.md").write_text(_wp_file(dag, wp, target))
    (folder / "tasks.md").write_text(_tasks_md(dag))
    (folder / "spec.md").write_text("# Specification\n\nA synthetic mission for benchmarks.\n")
    (folder / "plan.md").write_text("# Plan\n\nEach work package writes one file.\n")
    lanes_json = {"version": 1, "mission_slug": slug, "mission_id": MISSION_ID,
                  "mission_branch": f"kitty/mission-{slug}", "target_branch": target, "lanes": lanes(dag),
                  "computed_at": _AT, "computed_from": "dependency_graph+ownership", "planning_artifact_wps": [],
                  "planning_commit_sha": ""}  # fmt: skip
    (folder / "lanes.json").write_text(json.dumps(lanes_json, indent=2) + "\n")
    (folder / "status.events.jsonl").write_text("".join(genesis(wp, slug, MISSION_ID) + "\n" for wp in dag.deps))


def _wp_file(dag: Dag, wp: str, target: str) -> str:
    n = int(wp[2:])
    deps = "".join(f"- {d}\n" for d in dag.deps[wp])
    ids = subtasks(wp)
    return (
        f"---\nwork_package_id: {wp}\ntitle: Synthetic step {n}\ndependencies:{' []' if not deps else ''}\n{deps}"
        f"requirement_refs:\n- FR-{n:03d}\nplanning_base_branch: {target}\nmerge_target_branch: {target}\n"
        "branch_strategy: Planning artifacts were generated on main; completed changes must merge back into main.\n"
        f"subtasks:\n" + "".join(f"- {t}\n" for t in ids) + "phase: Phase 1 - Benchmark\n"
        f"execution_mode: code_change\nowned_files:\n- {wp}.txt\nhistory:\n- at: '2026-01-01T00:00:00Z'\n"
        "  actor: system\n  action: Prompt generated for the benchmark\n---\n\n"
        f"# Work Package Prompt: {wp} – Synthetic step {n}\n\n## Objectives & Success Criteria\n\n"
        f"Write `{wp}.txt` and commit it. The work is synthetic: the benchmark's fake agent does it.\n\n"
        f"## Subtasks & Detailed Guidance\n\n### Subtask {ids[0]} – Write the file\n\n"
        f"- Write `{wp}.txt`; commit it.\n\n"
        f"### Subtask {ids[1]} – Check the result\n\n- Read the file back.\n\n## Review Guidance\n\n"
        f"- Approve when `{wp}.txt` exists and nothing else changed.\n"
    )


def _tasks_md(dag: Dag) -> str:
    parts = ["# Work Packages: Benchmark\n"]
    for wp, deps in dag.deps.items():
        n = int(wp[2:])
        first, second = subtasks(wp)
        parts.append(f"\n## Work Package {wp}: Synthetic step {n} (Priority: P1)\n\n")
        parts.append(f"Dependencies: {', '.join(deps) if deps else 'None'}\n**Requirement Refs**: FR-{n:03d}\n\n")
        parts.append(f"- [ ] {first} Write the file\n- [ ] {second} Check the result\n")
    return "".join(parts)


def make_mission_repo(root: Path, dag: Dag, agents_yaml: str) -> str:
    """Create a committed repository at *root* holding *dag* as a runnable 3.x mission; return its slug."""
    slug = slug_of(dag)
    init_repo(root)
    folder = root / "kitty-specs" / slug
    write_mission(folder, dag, slug)
    unprotect(root)
    (root / ".kittify" / "agents.yaml").write_text(agents_yaml)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"mission {slug}")
    pin_planning_commit(root, folder)
    return slug


def prepare(root: Path, dag: Dag, agents_yaml: str, env: Mapping[str, str]) -> str:
    """Make the runnable mission of *dag* at *root*, with status.json from spec-kitty; return its slug.

    spec-kitty itself checks the result: ``agent status validate`` passes and every WP is planned.
    """
    slug = make_mission_repo(root, dag, agents_yaml)
    spec_kitty_json(root, env, "agent", "status", "materialize", "--mission", slug, "--json")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "status.json")
    verdict = ending(root, slug, env)
    if not verdict["valid"] or set(verdict["lanes"].values()) != {"planned"}:
        raise BenchError(f"spec-kitty does not accept the mission written at {root}: {verdict}")
    return slug


def ending(root: Path, slug: str, env: Mapping[str, str]) -> dict[str, Any]:
    """Ask spec-kitty how the mission ended: each WP's lane, whether the log validates, forced moves per WP."""
    status = spec_kitty_json(root, env, "agent", "tasks", "status", "--mission", slug, "--json")
    lanes = {str(w["id"]): str(w["lane"]) for w in status["work_packages"]}
    validate = spec_kitty_json(root, env, "agent", "status", "validate", "--mission", slug, "--json")
    snapshot = json.loads((root / "kitty-specs" / slug / "status.json").read_text())
    return {
        "lanes": lanes,
        "valid": validate.get("passed") is True,
        "validate_errors": [str(e) for e in validate.get("errors", [])][:5],
        "force_count": {wp: int(v.get("force_count", 0)) for wp, v in snapshot["work_packages"].items()},
    }


def spec_kitty_json(root: Path, env: Mapping[str, str], *args: str) -> dict[str, Any]:
    """Run ``spec-kitty ARGS`` in *root* and return the JSON object it prints."""
    result = subprocess.run(["spec-kitty", *args], cwd=root, env=dict(env), capture_output=True, text=True,
                            timeout=300, check=False, stdin=subprocess.DEVNULL)  # fmt: skip
    text = result.stdout.strip()
    try:
        return dict(json.loads(text[text.index("{") :]))
    except ValueError:
        raise BenchError(f"spec-kitty {' '.join(args)} gave no JSON in {root}: {result.stderr[-1000:]}") from None
