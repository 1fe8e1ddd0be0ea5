"""Zero set-up: real spec-kitty features that never saw kittydoit (no .kittify/ at all) list, plan, graph and run.

The features are copies of the corpus (WP files of real spec-kitty repositories). The agents a run finds are
`claude` and `codex` on PATH: tests/fake_cli.py, speaking just enough of each CLI's output format.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CORPUS, git

from kittydoit import scaffold
from kittydoit.context import load_context
from kittydoit.tasks import task_dicts

FAKE_CLI = Path(__file__).with_name("fake_cli.py")
# One of each kind: lane folders (0.8), one WP left planned, done WPs after ones being done, a deep graph
LAYOUTS = [
    "v0.8.0-lane-folders/kitty-specs/002-lightweight-pypi-release",
    "v0.16.2/kitty-specs/005-refactor-mission-system",
    "v0.16.2/kitty-specs/017-smarter-feature-merge-with-preflight",
    "v0.16.2/kitty-specs/010-workspace-per-work-package-for-parallel-development",
]
INIT_HINT = "`kittydoit init` writes this as a file you can edit"


def copy_feature(source: Path, root: Path) -> Path:
    """Return a committed git repository at *root* holding only the corpus feature *source*."""
    shutil.copytree(source, root / "kitty-specs" / source.name)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "feature")
    return root


def bin_folder(folder: Path, *agents: str) -> Path:
    """Return a folder to be the whole PATH: git, and a fake CLI for each of *agents* (``claude``, ``codex``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "git").symlink_to(shutil.which("git") or "git")
    for agent in agents:
        script = folder / agent
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CLI}" {agent} "$@"\n')
        script.chmod(0o755)
    return folder


def kittydoit(
    root: Path, *args: str, path: Path | None = None, state: Path | None = None, module: str = "kittydoit"
) -> subprocess.CompletedProcess[str]:
    """Run the real kittydoit (or doit) command in *root*, with *path* as the whole PATH when given."""
    env = {key: value for key, value in os.environ.items() if key != "KITTYDOIT_PROGRESS"}
    if path is not None:
        env["PATH"] = str(path)
    if state is not None:
        env["FAKE_CLI_STATE"] = str(state)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=180, stdin=subprocess.DEVNULL, check=False)  # fmt: skip


def calls(state: Path) -> list[dict]:
    path = state / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def snapshot(root: Path) -> dict[str, str]:
    """Return a hash of every file under *root*, .git included (but git's index stat cache)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "index"
    }


def set_lane(path: Path, lane: str) -> None:
    text = path.read_text()
    path.write_text(re.sub(r"^lane:.*$", f'lane: "{lane}"', text, count=1, flags=re.MULTILINE))


def test_every_corpus_feature_reads_without_kittify(tmp_path: Path) -> None:
    for corpus in sorted(CORPUS.iterdir()):
        root = tmp_path / corpus.name
        shutil.copytree(corpus, root)
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "features")
        for source in sorted((root / "kitty-specs").iterdir()):
            ctx = load_context(root, source.name, cache=False, for_run=False)
            wps = sorted(p.name[:4] for p in (source / "tasks").rglob("WP*.md"))
            assert sorted(ctx.feature.wps) == wps
            assert sorted(t["basename"] for t in task_dicts(ctx) if t.get("name", "") is None) == wps
        assert not (root / ".kittify").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", LAYOUTS)
def test_list_plan_and_graph_show_every_wp_of_a_corpus_feature_without_kittify(tmp_path: Path, name: str) -> None:
    source = CORPUS / name
    root = copy_feature(source, tmp_path / "repo")
    wps = sorted(p.name[:4] for p in (root / "kitty-specs" / source.name / "tasks").rglob("WP*.md"))
    listed = kittydoit(root, "list", path=bin_folder(tmp_path / "bin"))
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()][: len(wps)] == wps
    assert listed.stderr == ""  # nothing to warn about: having no agents.yaml is normal
    planned = kittydoit(root, "plan", "--json", path=bin_folder(tmp_path / "bin2", "claude", "codex"))
    assert planned.returncode == 0, planned.stderr
    shown = json.loads(planned.stdout)
    assert sorted(wp["id"] for wp in shown["wps"]) == wps and shown["agents_source"] == "defaults"
    assert shown["agents"]["implementation"]["agent"] == "claude-code" and shown["agents"]["review"]["agent"] == "codex"
    graph = kittydoit(root, "graph", "--format", "text")
    assert graph.returncode == 0, graph.stderr
    assert sorted({line.split("WP", 1)[1][:2] for line in graph.stdout.splitlines()}) == [w[2:] for w in wps]
    assert not (root / ".kittify" / "agents.yaml").exists()


@pytest.mark.slow
def test_run_without_kittify_runs_exactly_the_wps_not_done_in_dependency_order(tmp_path: Path) -> None:
    source = CORPUS / "v0.16.2" / "kitty-specs" / "017-smarter-feature-merge-with-preflight"
    root = copy_feature(source, tmp_path / "repo")  # WP01, WP02, WP06 done; WP03, WP04, WP05 doing
    path, state = bin_folder(tmp_path / "bin", "claude", "codex"), tmp_path / "state"
    plan = kittydoit(root, "plan", path=path)
    assert "Agents (no .kittify/agents.yaml: those `kittydoit init` would write" in plan.stdout
    assert "  implementation  claude-code\n                    codex: fallback\n  review          codex\n" in (
        plan.stdout
    )

    result = kittydoit(root, "-n", "4", "run", path=path, state=state)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].endswith(f"no .kittify/agents.yaml: using claude-code and codex as found on PATH; {INIT_HINT}")
    assert "summary: 6/6 done, 3 already done" in result.stdout
    made = calls(state)
    assert sorted((c["wp"], c["role"], c["agent"]) for c in made) == [
        (wp, role, agent) for wp in ("WP03", "WP04", "WP05") for role, agent in (("implement", "claude"),
                                                                                   ("review", "codex"))
    ]  # fmt: skip
    when = {(c["wp"], c["role"]): c["time"] for c in made}
    assert when["WP03", "implement"] < when["WP03", "review"]
    assert when["WP03", "review"] < min(when["WP04", "implement"], when["WP05", "implement"])
    assert (root / ".worktrees" / f"{source.name}-WP04" / "WP03.txt").exists()  # WP03's work merged in
    assert not (root / ".kittify" / "agents.yaml").exists() and not (root / "dodo.py").exists()
    assert git(root, "status", "--porcelain").splitlines() == [
        f" M kitty-specs/{source.name}/tasks/{name}"
        for name in ("WP03-smart-merge-ordering.md", "WP04-conflict-forecast.md", "WP05-status-file-auto-resolution.md")
    ]  # the lanes moved; kittydoit's own files are kept out of git status

    assert kittydoit(root, "init", path=path).returncode == 0  # the file holds the defaults the run used ...
    again = kittydoit(root, "run", path=path, state=state)
    assert again.returncode == 0 and "summary: 6/6 done, 6 already done" in again.stdout  # ... so nothing reruns
    assert "no .kittify/agents.yaml" not in again.stdout and len(calls(state)) == 6


@pytest.mark.slow
def test_run_with_no_agent_on_path_lists_how_to_install_each_and_changes_nothing(tmp_path: Path) -> None:
    root = copy_feature(CORPUS / "v0.16.2" / "kitty-specs" / "005-refactor-mission-system", tmp_path / "repo")
    before = snapshot(root)
    result = kittydoit(root, "-n", "4", "run", path=bin_folder(tmp_path / "bin"))
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert result.stderr.startswith("ERROR: no .kittify/agents.yaml, and no agent CLI found on PATH to run with.")
    for line in ("claude-code  npm install -g @anthropic-ai/claude-code@", "codex        npm install -g @openai/codex@",
                 "cursor       curl https://cursor.com/install"):  # fmt: skip
        assert line in result.stderr
    assert snapshot(root) == before and git(root, "status", "--porcelain", "--ignored") == ""


def test_a_done_wp_depending_on_a_deleted_wp_is_a_warning_and_the_rest_runs(tmp_path: Path) -> None:
    source = CORPUS / "v0.16.2" / "kitty-specs" / "020-autonomous-multi-agent-orchestrator"
    root = copy_feature(source, tmp_path / "repo")  # every WP done
    tasks = root / "kitty-specs" / source.name / "tasks"
    (tasks / "WP04-state-management.md").unlink()  # WP05 and WP06 (done) depend on it
    set_lane(tasks / "WP09-integration-and-polish.md", "planned")
    git(root, "commit", "-qam", "WP04 deleted, WP09 to do again")
    path, state = bin_folder(tmp_path / "bin", "claude", "codex"), tmp_path / "state"
    warnings = [
        f"kittydoit: kitty-specs/{source.name}/tasks/{name}: dependency 'WP04' does not exist; {wp} is done, "
        "so it is skipped and nothing waits for WP04"
        for wp, name in (("WP05", "WP05-scheduler.md"), ("WP06", "WP06-executor.md"))
    ]
    listed = kittydoit(root, "list", path=path)
    assert listed.returncode == 0 and listed.stderr.splitlines() == warnings
    assert [line.split()[0] for line in listed.stdout.splitlines()][:8] == [
        "WP01", "WP02", "WP03", "WP05", "WP06", "WP07", "WP08", "WP09"
    ]  # fmt: skip
    result = kittydoit(root, "run", path=path, state=state)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.splitlines() == warnings
    assert "WP05 up to date (already done)" in result.stdout and "summary: 8/8 done, 7 already done" in result.stdout
    assert [(c["wp"], c["role"]) for c in calls(state)] == [("WP09", "implement"), ("WP09", "review")]


def test_wps_that_would_run_with_deleted_dependencies_are_refused_naming_every_one(tmp_path: Path) -> None:
    source = CORPUS / "v0.16.2" / "kitty-specs" / "020-autonomous-multi-agent-orchestrator"
    root = copy_feature(source, tmp_path / "repo")
    tasks = root / "kitty-specs" / source.name / "tasks"
    for name in ("WP01-foundation-and-config.md", "WP04-state-management.md"):
        (tasks / name).unlink()
    set_lane(tasks / "WP02-agent-invokers-core.md", "planned")  # needs WP01
    set_lane(tasks / "WP05-scheduler.md", "doing")  # needs WP01 and WP04
    git(root, "commit", "-qam", "WP01 and WP04 deleted")
    before = snapshot(root)
    result = kittydoit(root, "run", path=bin_folder(tmp_path / "bin", "claude", "codex"), state=tmp_path / "state")
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    error = result.stderr[result.stderr.index("ERROR: "):].splitlines()
    assert error[0].startswith("ERROR: 3 dependencies of work packages that would run do not exist")
    assert error[1:] == [
        f"  - kitty-specs/{source.name}/tasks/{name}: dependency '{dep}' does not exist"
        for name, dep in (("WP02-agent-invokers-core.md", "WP01"), ("WP05-scheduler.md", "WP01"),
                          ("WP05-scheduler.md", "WP04"))
    ]  # fmt: skip
    assert snapshot(root) == before and calls(tmp_path / "state") == []
    planned = kittydoit(root, "plan", "--json", path=bin_folder(tmp_path / "bin2", "claude", "codex"))
    assert planned.returncode == 0
    assert len(json.loads(planned.stdout)["run_refused"]) == 3


@pytest.mark.slow
def test_plain_doit_from_the_dodo_py_works_the_same_without_agents_yaml(tmp_path: Path) -> None:
    source = CORPUS / "v0.16.2" / "kitty-specs" / "017-smarter-feature-merge-with-preflight"
    root = copy_feature(source, tmp_path / "repo")
    (root / "dodo.py").write_text(scaffold.dodo_text())
    git(root, "add", "dodo.py")
    git(root, "commit", "-qm", "dodo.py")
    path, state = bin_folder(tmp_path / "bin", "claude", "codex"), tmp_path / "state"
    listed = kittydoit(root, "list", path=bin_folder(tmp_path / "none"), module="doit")
    assert listed.returncode == 0 and listed.stderr == "" and listed.stdout.startswith("WP01 ")
    result = kittydoit(root, "-n", "2", path=path, state=state, module="doit")  # plain `doit -n 2`
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"no .kittify/agents.yaml: using claude-code and codex as found on PATH; {INIT_HINT}" in result.stdout
    assert sorted({c["wp"] for c in calls(state)}) == ["WP03", "WP04", "WP05"] and len(calls(state)) == 6
    assert not (root / ".kittify" / "agents.yaml").exists()

    tasks = root / "kitty-specs" / source.name / "tasks"
    (tasks / "WP03-smart-merge-ordering.md").unlink()  # kittydoit finished it; WP04, WP05 and WP06 need it
    again = kittydoit(root, "run", path=path, state=state, module="doit")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "summary: 5/5 done, 5 already done" in again.stdout and len(calls(state)) == 6  # nothing ran again
    assert [line.split(": ", 2)[2] for line in again.stderr.splitlines()] == [
        f"dependency 'WP03' does not exist; {wp} is done, so it is skipped and nothing waits for WP03"
        for wp in ("WP04", "WP05", "WP06")
    ]
    set_lane(tasks / "WP04-conflict-forecast.md", "planned")
    refused = kittydoit(root, "run", path=path, state=state, module="doit")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert refused.stderr.splitlines()[-1] == (
        f"ERROR: kitty-specs/{source.name}/tasks/WP04-conflict-forecast.md: dependency 'WP03' does not exist "
        "(work packages: WP01, WP02, WP04, WP05, WP06); remove it from dependencies (or restore WP03's file)"
    )
    assert refused.stdout == "" and len(calls(state)) == 6
