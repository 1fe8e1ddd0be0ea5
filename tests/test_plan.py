"""`kittydoit plan` starts nothing, changes nothing and matches what a run then does; `graph`, `list`, `--help`."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CORPUS, FAKE_AGENT, FEATURE, Repo, git, make_repo
from test_run import wait_for

RUN_AFTER = "runs again after"


def snapshot(root: Path) -> dict[str, str]:
    """Return a hash of every file in the repository and its git metadata except git's index stat cache."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "index"
    }


def plan(repo: Repo, *args: str) -> dict:
    result = repo.kittydoit("plan", "--json", *args, check=True)
    return json.loads(result.stdout)


def started_implementations(repo: Repo, since: int = 0) -> list[str]:
    return [c["wp"] for c in repo.calls()[since:] if "start" in c and c["role"] == "implement"]


def test_plan_starts_nothing_and_changes_no_file(diamond: Repo) -> None:
    before, status = snapshot(diamond.root), git(diamond.root, "status", "--porcelain", "--ignored")
    result = diamond.kittydoit("plan", "-n", "2", check=True)
    assert diamond.calls() == []
    assert snapshot(diamond.root) == before
    assert git(diamond.root, "status", "--porcelain", "--ignored") == status
    out = result.stdout
    assert out.startswith("Plan for 001-demo: 4 work packages, 4 to run, 0 up to date. Nothing was started or changed.")
    assert "  implementation  fake-coder\n  review          fake-reviewer\n" in out
    assert "Order (longest remaining chain first; with -n 2, WP01 starts at once)" in out
    assert "   1. WP01  implement, review  after -            Title of WP01  (not done yet)" in out
    assert "   4. WP04  implement, review  after WP02, WP03   Title of WP04  (not done yet)" in out
    assert "\n".join([
        "  WP01 Title of WP01 [planned · runs]",
        "  ├─ WP02 Title of WP02 [planned · runs]",
        "  │  └─ WP04 Title of WP04 [planned · runs]",
        "  └─ WP03 Title of WP03 [planned · runs]",
        "     └─ WP04 (shown above)",
    ]) in out  # fmt: skip


def test_plan_counts_global_concurrency_as_a_cap_on_workers(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": [], "WP03": []})
    config = repo.root / ".kittify" / "agents.yaml"
    config.write_text(config.read_text() + "global_concurrency: 2\n")
    planned = plan(repo, "-n", "3")
    assert planned["num_process"] == 3 and planned["agents_at_once"] == 2
    assert planned["starts_first"] == ["WP01", "WP02"]
    shown = repo.kittydoit("plan", "-n", "3", check=True).stdout
    order = "Order (longest remaining chain first; with -n 3 and global_concurrency 2, WP01, WP02 start at once)"
    assert order in shown


@pytest.mark.slow
def test_plan_matches_what_a_run_then_does(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": [], "WP03": ["WP01"], "WP04": ["WP02", "WP03"]})
    planned = plan(repo, "-n", "2")
    assert planned["order"] == ["WP01", "WP02", "WP03", "WP04"]  # longest remaining chain first
    assert planned["starts_first"] == ["WP01", "WP02"]
    assert planned["agents"]["implementation"]["agent"] == "fake-coder"
    assert planned["agents"]["review"]["agent"] == "fake-reviewer"

    # Hold the agents of the WPs the plan says start at once: both start while neither can finish.
    gate = tmp_path / "gate"
    repo.plan({wp: {"implement": [{"wait": str(gate)}]} for wp in planned["starts_first"]})
    run = repo.popen("-n", "2", "run")
    wait_for(lambda: len(repo.started()) == 2, what="two agents")
    assert sorted(repo.started()) == planned["starts_first"]
    gate.write_text("")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    calls = [c for c in repo.calls() if "start" in c]
    assert {c["wp"] for c in calls} == set(planned["order"])
    assert {c["agent"] for c in calls if c["role"] == "implement"} == {planned["agents"]["implementation"]["agent"]}
    assert {c["agent"] for c in calls if c["role"] == "review"} == {planned["agents"]["review"]["agent"]}
    starts = {(c["wp"], c["role"]): c["start"] for c in calls}
    ends = {(c["wp"], c["role"]): c["end"] for c in repo.calls() if "end" in c}
    position = {wp: index for index, wp in enumerate(planned["order"])}
    for wp in planned["wps"]:  # every dependency comes first, in the plan and in the run
        for dep in wp["dependencies"]:
            assert position[dep] < position[wp["id"]]
            assert ends[(dep, "review")] < starts[(wp["id"], "implement")]

    assert plan(repo)["order"] == []
    assert repo.kittydoit("forget", "WP03").returncode == 0
    planned = plan(repo)
    assert planned["order"] == ["WP03", "WP04"] and planned["up_to_date"] == ["WP01", "WP02"]
    why = {wp["id"]: wp["why"] for wp in planned["wps"]}
    assert why["WP04"] == f"{RUN_AFTER} WP03" and why["WP01"] == "done, and nothing it depends on changed since"
    count = len(repo.calls())
    assert repo.kittydoit("run").returncode == 0
    assert started_implementations(repo, count) == planned["order"]

    path = repo.wp_file("WP02")
    path.write_text(path.read_text().replace("Do the work of WP02.", "Do the work of WP02, with tests."))
    planned = plan(repo)
    assert planned["order"] == ["WP02", "WP04"]
    why = {wp["id"]: wp["why"] for wp in planned["wps"]}
    assert why["WP02"] == "its spec, the prompts or the agent settings changed"
    count = len(repo.calls())
    assert repo.kittydoit("run").returncode == 0
    assert started_implementations(repo, count) == planned["order"]


@pytest.mark.slow
def test_plan_after_a_run_reads_the_database_without_touching_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": ["WP01"]}, lanes={"WP01": "done"})
    assert repo.kittydoit("run").returncode == 0
    state = repo.root / ".kittify" / "kittydoit" / FEATURE
    assert not (state / "doit.sqlite3-wal").exists()  # closed cleanly
    before = snapshot(repo.root)
    shown = repo.kittydoit("plan", check=True).stdout
    only = repo.kittydoit("plan", "WP02", check=True).stdout
    assert snapshot(repo.root) == before  # no -wal or -shm file appeared either
    assert "Nothing to run: every selected work package is up to date." in shown
    assert "  WP01  Title of WP01  (lane done before kittydoit)" in shown
    assert "  WP02  Title of WP02  (done, and nothing it depends on changed since)" in shown
    assert only.startswith("Plan for 001-demo: 1 work package, 0 to run, 1 up to date.")  # WP01 is not waited for


def test_plan_marks_agents_that_are_missing_cooling_down_or_reviewing_their_own_work(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    fake = [sys.executable, str(FAKE_AGENT), "implement", "--state", str(repo.state)]
    (repo.root / ".kittify" / "agents.yaml").write_text(
        "agents:\n"
        "  ghost:\n    command: [no-such-agent-binary, --yes]\n    roles: [implementation]\n"
        f"  solo:\n    command: {json.dumps(fake)}\n"
        "  busy:\n    command: [echo, busy]\n    roles: [implementation]\n"
        "defaults:\n  implementation: [ghost, busy, solo]\n  review: [solo]\n"
    )
    health = repo.root / ".kittify" / "kittydoit" / FEATURE / "agent-health.json"
    health.parent.mkdir(parents=True)
    cooling = {"cooling_down_until_epoch": 4e9, "cooling_down_until": "2096-10-02T07:06:40Z"}
    health.write_text(json.dumps({"busy": cooling}))
    planned = plan(repo)
    implementation, review = planned["agents"]["implementation"], planned["agents"]["review"]
    assert implementation["agent"] == "solo"
    assert implementation["candidates"] == [
        {"agent": "ghost", "note": "'no-such-agent-binary' not on PATH"},
        {"agent": "solo", "note": ""},
        {"agent": "busy", "note": "cooling down until 2096-10-02T07:06:40Z"},
    ]
    assert review == {"agent": "solo", "single_agent": True, "candidates": [{"agent": "solo", "note": ""}]}
    shown = repo.kittydoit("plan", check=True).stdout
    assert "  review          solo (single-agent mode: it reviews its own work)" in shown
    assert "                    ghost: 'no-such-agent-binary' not on PATH" in shown


def test_graph_as_mermaid_and_dot_coloured_by_lane_with_titles_escaped(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": ["WP01"], "WP03": ["WP01", "WP02"]},
                     lanes={"WP01": "done", "WP02": "for_review"})  # fmt: skip
    odd = repo.wp_file("WP03")
    odd.write_text(odd.read_text().replace('title: "Title of WP03"', """title: 'Say "hi" to <b> #1 \\ now'"""))
    mermaid = repo.kittydoit("graph", check=True).stdout.splitlines()
    assert mermaid[0] == "flowchart TD"
    assert '    WP03["WP03: Say #quot;hi#quot; to #lt;b#gt; #35;1 \\ now"]' in mermaid
    edges = [line.strip() for line in mermaid if "-->" in line]
    assert edges == ["WP01 --> WP02", "WP01 --> WP03", "WP02 --> WP03"]
    assert {"    class WP01 done", "    class WP02 for_review", "    class WP03 planned"} <= set(mermaid)
    assert "    classDef done fill:#d3f9d8,stroke:#2f9e44,color:#212529" in mermaid
    dot = repo.kittydoit("graph", "--format", "dot", check=True).stdout.splitlines()
    assert dot[0] == 'digraph "001-demo" {' and dot[-1] == "}"
    assert ('  "WP03" [label="WP03\\nSay \\"hi\\" to <b> #1 \\\\ now", fillcolor="#f1f3f5", color="#868e96", '
            'tooltip="lane: planned"];') in dot  # fmt: skip
    assert '  "WP01" -> "WP03";' in dot and '  "WP02" -> "WP03";' in dot
    tree = repo.kittydoit("graph", "--format", "text", check=True).stdout.splitlines()
    assert tree == [
        "WP01 Title of WP01 [done]",
        "├─ WP02 Title of WP02 [for_review]",
        '│  └─ WP03 Say "hi" to <b> #1 \\ now [planned]',
        "└─ WP03 (shown above)",
    ]


def test_list_stays_doits_own_with_titles(diamond: Repo) -> None:
    listing = diamond.kittydoit("list", check=True).stdout.splitlines()
    assert listing[:4] == ["WP01        Title of WP01", "WP02        Title of WP02", "WP03        Title of WP03",
                           "WP04        Title of WP04"]  # fmt: skip


@pytest.mark.parametrize("command", ["plan", "graph", "status", "abort", "init", "example"])
def test_every_commands_help_explains_its_options_with_an_example(diamond: Repo, command: str) -> None:
    shown = diamond.kittydoit(command, "--help", check=True).stdout
    assert f"kittydoit {command}" in shown
    options, description = shown.split("\nOPTIONS\n")[1].split("\nDESCRIPTION\n")
    lines = options.splitlines()
    for index, option in enumerate(lines):  # doit prints each option, then what it does, indented below it
        if option.lstrip().startswith("-"):
            text = lines[index + 1]
            assert text.strip() and len(text) - len(text.lstrip()) > len(option) - len(option.lstrip()), option
    assert re.search(r"^ {6,}(cd |kittydoit )", description, re.MULTILINE), description  # a command line to copy


RECORDED = Path(__file__).with_name("recorded") / "spec-kitty-3.2.7"


@pytest.mark.slow
def test_list_and_plan_agree_with_spec_kitty_on_every_corpus_mission(tmp_path: Path) -> None:
    """The lanes `kittydoit list` and `plan` show are those `spec-kitty agent tasks status --json` reported."""
    root = tmp_path / "repo"
    shutil.copytree(CORPUS / "v3", root)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "missions")
    for recorded in sorted(RECORDED.glob("*.json")):
        mission = recorded.stem
        expected = {wp: ("planned" if lane == "genesis" else lane)
                    for wp, lane in json.loads(recorded.read_text())["lanes"].items()}  # fmt: skip
        result = subprocess.run(
            [sys.executable, "-m", "kittydoit", "--feature", mission, "list"], cwd=root, capture_output=True,
            text=True, timeout=120, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        listed = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines() if line.startswith("WP")}
        assert listed == expected, mission
        shown = subprocess.run(
            [sys.executable, "-m", "kittydoit", "plan", "--json", "--feature", mission], cwd=root,
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert {wp["id"]: wp["lane"] for wp in json.loads(shown.stdout)["wps"]} == expected, mission
    assert not (root / ".kittify" / "agents.yaml").exists()


@pytest.mark.parametrize("args", [["--help"], ["status", "--help"], ["help", "run"]])
def test_help_read_by_a_reader_that_goes_away_is_not_a_traceback(tmp_path: Path, args: list[str]) -> None:
    command = " ".join([sys.executable, "-m", "kittydoit", *args]) + " | head -1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
