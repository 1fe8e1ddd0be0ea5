"""Whole runs through the real kittydoit command, the real doit engine, git and fake agent processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FEATURE, Repo, git, make_repo
from test_process import alive, wait_gone

# doit as this Python has it installed (its venv's bin), whether or not the venv is on PATH
DOIT = shutil.which("doit", path=str(Path(sys.executable).parent)) or "doit"

pytestmark = pytest.mark.slow


def wait_for(condition, seconds: float = 30, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def agent_pids(repo: Repo) -> list[int]:
    pids = [c["pid"] for c in repo.calls() if "start" in c]
    children = repo.state / "children.txt"
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    return pids


def test_diamond_runs_in_parallel_and_ends_done_with_dependencies_merged(diamond: Repo) -> None:
    diamond.plan({wp: {"implement": [{"sleep": 0.6}]} for wp in ("WP02", "WP03")})
    result = diamond.kittydoit("-n", "2", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    for wp in ("WP01", "WP02", "WP03", "WP04"):
        text = diamond.wp_file(wp).read_text()
        assert diamond.lane(wp) == "done"
        assert 'review_status: "approved"' in text and 'reviewed_by: "fake-reviewer"' in text
        for lane in ("doing", "for_review", "done"):
            assert f"lane={lane} – " in text
    worktree = diamond.root / ".worktrees" / f"{FEATURE}-WP04"
    assert sorted(p.name for p in worktree.glob("WP*.txt")) == ["WP01.txt", "WP02.txt", "WP03.txt", "WP04.txt"]
    assert git(worktree, "branch", "--show-current").strip() == f"{FEATURE}-WP04"
    starts = {(c["wp"], c["role"]): c["start"] for c in diamond.calls() if "start" in c}
    ends = {(c["wp"], c["role"]): c["end"] for c in diamond.calls() if "end" in c}
    assert starts[("WP03", "implement")] < ends[("WP02", "implement")]  # the two branches overlapped
    assert starts[("WP04", "implement")] > max(ends[("WP02", "review")], ends[("WP03", "review")])
    assert "4/4 done" in result.stdout
    logs = diamond.root / ".kittify" / "logs" / FEATURE
    assert "WP04: implemented" in (logs / "WP04-implement.log").read_text()
    assert "VERDICT: APPROVED" in (logs / "WP04-review.log").read_text()
    review_prompt = (logs / "WP04-review.prompt.md").read_text()
    assert "+WP04 call 1" in review_prompt and "WP02.txt" not in review_prompt.split("## The change to review")[1]

    again = diamond.kittydoit("run")
    assert again.returncode == 0
    assert "4/4 done, 4 already done" in again.stdout
    assert len(diamond.started()) == 8


def test_review_loop_rejects_once_then_approves(diamond: Repo) -> None:
    diamond.plan(
        {"WP02": {"review": [{"verdict": "CHANGES_REQUESTED", "say": "Please add a docstring."},
                             {"verdict": "APPROVED"}]}}
    )
    result = diamond.kittydoit("-n", "2", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert diamond.started("implement").count("WP02") == 2
    assert diamond.started("review").count("WP02") == 2
    text = diamond.wp_file("WP02").read_text()
    assert "## Review Feedback" in text and "Please add a docstring." in text
    assert 'review_status: "approved"' in text
    assert "lane=planned – Changes requested in review" in text
    assert "Started re-implementation after review feedback" in text
    prompt = (diamond.root / ".kittify/logs" / FEATURE / "WP02-implement.prompt.md").read_text()
    assert "Please add a docstring." in prompt and "(re-implementation 1)" in prompt
    worktree = diamond.root / ".worktrees" / f"{FEATURE}-WP02"
    assert (worktree / "WP02.txt").read_text() == "WP02 call 2\n"
    assert diamond.lane("WP04") == "done"


def test_review_cycles_exhausted_fails_the_wp_and_blocks_dependants(diamond: Repo) -> None:
    diamond.plan({"WP02": {"review": [{"verdict": "CHANGES_REQUESTED", "say": "Still wrong."}]}})
    result = diamond.kittydoit("-n", "2", "run")
    assert result.returncode == 1
    assert diamond.started("review").count("WP02") == 3  # review_cycles defaults to 3
    assert "changes still requested after 3 reviews" in result.stdout
    assert diamond.lane("WP02") == "planned" and diamond.lane("WP03") == "done"
    assert "WP04" not in diamond.started()
    assert "WP04 blocked: waits for WP02" in result.stdout
    assert "2/4 done, 1 failed, 1 blocked" in result.stdout


def test_a_parallel_run_asks_git_for_its_identity_and_settings_once_not_once_per_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo", {f"WP0{n}": [] for n in range(1, 5)})
    trace = tmp_path / "git-trace"
    monkeypatch.setenv("GIT_TRACE", str(trace))  # every git process the run and its agents start
    result = repo.kittydoit("-n", "4", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4/4 done" in result.stdout
    commands = [line.split("trace: built-in: ", 1)[1] for line in trace.read_text().splitlines() if "built-in:" in line]
    # asked before doit forked its four workers, which inherited the answers (Git.ask_once)
    assert commands.count("git var GIT_COMMITTER_IDENT") == 1
    assert len([c for c in commands if c.startswith("git config --get-regexp")]) == 1
    assert len([c for c in commands if c.startswith("git reset --hard")]) == 4  # each WP's worktree checked out


def test_answer_without_verdict_is_a_failed_review_never_an_approval(diamond: Repo) -> None:
    diamond.plan({"WP03": {"review": [{"stdout": "This is NOT APPROVED.\nVERDICT: maybe\n"}]}})
    result = diamond.kittydoit("-n", "2", "run")
    assert result.returncode == 1
    assert "WP03 needs a human: review failed, every agent failed (fake-reviewer (4 attempts) unusable_output: " \
        "answer has no VERDICT line" in result.stdout
    assert diamond.started("review").count("WP03") == 4  # a try and max_retries (3) retries
    assert diamond.lane("WP03") == "for_review"


def test_failed_implementer_fails_its_wp_and_independent_ones_go_on(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": ["WP01"], "WP03": []})
    repo.plan({"WP01": {"implement": [{"exit": 3, "stderr": "boom: no network\n"}]}})
    result = repo.kittydoit("-n", "2", "run")
    assert result.returncode == 1
    assert "WP01 needs a human: implement failed, every agent failed (fake-coder (4 attempts) crash: exit code 3 " \
        "[boom: no network" in result.stdout
    assert "Logs: .kittify/logs/001-demo/WP01-implement.log. Fix the cause, then `doit run`" in result.stdout
    assert repo.lane("WP01") == "planned" and repo.lane("WP03") == "done"
    assert "lane=planned – Implementation failed: exit code 3 (crash)" in repo.wp_file("WP01").read_text()
    assert "WP02" not in repo.started()
    assert result.stdout.count("failed  WP01") == 1


def test_implementation_that_changes_nothing_fails(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    repo.plan({"WP01": {"implement": [{"noop": True}]}})
    result = repo.kittydoit("run")
    assert result.returncode == 1
    assert "fake-coder no_change: finished without changing anything" in result.stdout
    assert repo.started("implement") == ["WP01"]  # no change is not retried with the same agent
    assert repo.started("review") == []


def test_forget_reruns_the_wp_and_then_its_dependants(diamond: Repo) -> None:
    assert diamond.kittydoit("-n", "2", "run").returncode == 0
    before = len(diamond.calls())
    assert diamond.kittydoit("forget", "WP02").returncode == 0
    result = diamond.kittydoit("-n", "2", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    rerun = [c["wp"] for c in diamond.calls()[before:] if "start" in c]
    assert sorted(set(rerun)) == ["WP02", "WP04"]
    assert "4/4 done, 2 already done" in result.stdout


def test_spec_changes_make_the_wp_and_its_dependants_stale_but_bookkeeping_does_not(diamond: Repo) -> None:
    assert diamond.kittydoit("-n", "2", "run").returncode == 0
    count = len(diamond.started())
    path = diamond.wp_file("WP03")
    path.write_text(path.read_text().replace('agent: "fake-coder"', 'agent: "somebody"') + "- note – x\n")
    assert diamond.kittydoit("run").returncode == 0
    assert len(diamond.started()) == count
    path.write_text(path.read_text().replace("Do the work of WP03.", "Do the work of WP03, twice."))
    assert diamond.kittydoit("run").returncode == 0
    assert sorted(set(diamond.started()[count:])) == ["WP03", "WP04"]


def test_template_override_makes_wps_stale(diamond: Repo) -> None:
    assert diamond.kittydoit("-n", "2", "run").returncode == 0
    count = len(diamond.started())
    templates = diamond.root / ".kittify" / "templates"
    templates.mkdir()
    shipped = Path(__file__).resolve().parents[1] / "templates" / "implement.md.j2"
    (templates / "implement.md.j2").write_text("CUSTOM PROMPT for {{ wp.id }}\n" + shipped.read_text())
    assert diamond.kittydoit("-n", "2", "run").returncode == 0
    assert sorted(set(diamond.started()[count:])) == ["WP01", "WP02", "WP03", "WP04"]
    prompt = (diamond.root / ".kittify/logs" / FEATURE / "WP01-implement.prompt.md").read_text()
    assert prompt.startswith("CUSTOM PROMPT for WP01")


def test_misspelt_template_variable_is_rejected_before_anything_runs(diamond: Repo) -> None:
    templates = diamond.root / ".kittify" / "templates"
    templates.mkdir()
    (templates / "review.md.j2").write_text("Review {{ wp.titel }}\n")
    result = diamond.kittydoit("run")
    assert result.returncode == 3
    assert "ERROR: .kittify/templates/review.md.j2:" in result.stderr and "titel" in result.stderr
    assert diamond.calls() == []


def test_wps_already_done_do_not_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": ["WP01"]}, lanes={"WP01": "done"})
    result = repo.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert repo.started() == ["WP02", "WP02"]
    assert "2/2 done, 1 already done" in result.stdout
    assert repo.lane("WP02") == "done"


def test_lane_folder_layout_runs_and_moves_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": ["WP01"]}, layout="lanes")
    result = repo.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.relative_to(repo.tasks).as_posix() for p in repo.tasks.rglob("*.md")) == [
        "done/WP01-work.md",
        "done/WP02-work.md",
    ]


def test_merge_conflict_between_dependencies_fails_with_the_branch_names(diamond: Repo) -> None:
    diamond.plan({
        "WP02": {"implement": [{"write": {"shared.txt": "two\n"}}]},
        "WP03": {"implement": [{"write": {"shared.txt": "three\n"}}]},
    })  # fmt: skip
    result = diamond.kittydoit("-n", "2", "run")
    assert result.returncode == 1
    assert f"merging branch {FEATURE}-WP03 into {FEATURE}-WP04 conflicts (shared.txt)" in result.stdout
    worktree = diamond.root / ".worktrees" / f"{FEATURE}-WP04"
    assert git(worktree, "status", "--porcelain") == ""  # the failed merge was aborted


def test_commit_lane_changes_commits_each_move_in_the_main_checkout(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []}, config_extra="commit_lane_changes: true\n")
    (repo.root / "unrelated.txt").write_text("staged by the user\n")
    git(repo.root, "add", "unrelated.txt")
    assert repo.kittydoit("run").returncode == 0
    subjects = git(repo.root, "log", "--format=%s").splitlines()
    assert subjects[:3] == [
        "WP01: lane done (Review passed: Looks fine.)",
        "WP01: lane for_review (Implementation ready for review)",
        "WP01: lane doing (Started implementation)",
    ]
    assert git(repo.root, "status", "--porcelain", "unrelated.txt").startswith("A ")


def test_second_run_is_refused_while_one_is_going(diamond: Repo) -> None:
    diamond.plan({"WP01": {"implement": [{"sleep": 5}]}})
    first = diamond.popen("run")
    try:
        wait_for(lambda: diamond.started() == ["WP01"], what="the first run's agent")
        second = diamond.kittydoit("run")
        assert second.returncode != 0
        assert "another kittydoit run (pid" in second.stdout + second.stderr
        assert "is working on 001-demo" in second.stdout + second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)


def test_kill_9_mid_run_keeps_finished_work_and_leaves_no_agent(diamond: Repo) -> None:
    diamond.plan({"WP02": {"implement": [{"sleep": 60, "child": 60}, {}]}})
    run = diamond.popen("-n", "2", "run")
    wait_for(lambda: "WP02" in diamond.started("implement") and "WP03" in diamond.started("review"), what="WP02")
    wait_for(lambda: diamond.lane("WP03") == "done", what="WP03 approved")
    time.sleep(0.5)  # let doit record WP03:review
    os.kill(run.pid, signal.SIGKILL)
    run.communicate()
    assert wait_gone(agent_pids(diamond), seconds=20) == []
    done_before = {c["wp"] for c in diamond.calls() if c.get("role") == "review" and "end" in c}
    assert done_before == {"WP01", "WP03"}
    count = len(diamond.started())
    result = diamond.kittydoit("-n", "2", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(set(diamond.started()[count:])) == ["WP02", "WP04"]
    assert all(diamond.lane(wp) == "done" for wp in ("WP01", "WP02", "WP03", "WP04"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_run_stops_every_agent_and_the_next_run_completes(diamond: Repo, sig: signal.Signals) -> None:
    diamond.plan({"WP01": {"implement": [{"sleep": 60, "child": 60}, {}]}})
    run = diamond.popen("-n", "2", "run", start_new_session=True)
    wait_for(lambda: diamond.started() == ["WP01"], what="WP01's agent")
    wait_for((diamond.state / "children.txt").exists, what="the grandchild")
    if sig == signal.SIGINT:
        os.killpg(run.pid, sig)  # Ctrl-C reaches the whole foreground process group
    else:
        run.send_signal(sig)  # `kill PID` reaches the orchestrator only
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, out + err
    log = (diamond.root / ".kittify/logs" / FEATURE / "WP01-implement.log").read_text()
    assert wait_gone(agent_pids(diamond), seconds=20) == [], out + err + log
    assert not list((diamond.root / ".kittify/kittydoit" / FEATURE / "pids").glob("*.pid"))
    result = diamond.kittydoit("-n", "2", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert diamond.lane("WP04") == "done"


def test_timeout_fails_the_wp_and_stops_its_processes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []}, config_extra="global_timeout: 2\nmax_retries: 0\n")
    repo.plan({"WP01": {"implement": [{"sleep": 60, "child": 60}]}})
    started = time.monotonic()
    result = repo.kittydoit("run")
    assert result.returncode == 1
    assert time.monotonic() - started < 30
    assert "fake-coder timeout: timed out after 2 s" in result.stdout
    assert wait_gone(agent_pids(repo)) == []


def test_plain_doit_with_the_dodo_file_runs_the_feature(diamond: Repo) -> None:
    dodo = Path(__file__).resolve().parents[1] / "dodo.py"
    (diamond.root / "dodo.py").write_text(dodo.read_text())
    listing = subprocess.run([DOIT, "list"], cwd=diamond.root, capture_output=True, text=True, check=True)
    assert listing.stdout.splitlines()[:4] == [
        "WP01        Title of WP01",
        "WP02        Title of WP02",
        "WP03        Title of WP03",
        "WP04        Title of WP04",
    ]
    result = subprocess.run([DOIT, "-n", "2"], cwd=diamond.root, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert diamond.lane("WP04") == "done"
    state = json.loads((diamond.root / ".kittify/kittydoit" / FEATURE / "markers" / "WP04-review.json").read_text())
    assert state["agent"] == "fake-reviewer" and state["implementer"] == "fake-coder"
    assert not [p for p in agent_pids(diamond) if alive(p)]


def test_plain_doit_takes_options_before_run_as_the_issue_writes_it(diamond: Repo) -> None:
    dodo = Path(__file__).resolve().parents[1] / "dodo.py"
    (diamond.root / "dodo.py").write_text(dodo.read_text())

    def doit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([DOIT, *args], cwd=diamond.root, capture_output=True, text=True, check=False)

    first = doit("-n", "2", "run", "WP01:implement")  # doit reads `run` here as a task name
    assert first.returncode == 0, first.stdout + first.stderr
    assert diamond.started() == ["WP01"] and diamond.lane("WP01") == "for_review"
    assert "summary: 0/4 done, 1 implemented, not reviewed, 3 not run in " in first.stdout
    assert "  implemented WP01: not reviewed; `doit run WP01` reviews it" in first.stdout
    rest = doit("-n", "2", "run", "implement", "review")
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert [diamond.lane(wp) for wp in ("WP01", "WP02", "WP03", "WP04")] == ["done"] * 4
    assert diamond.started("implement").count("WP01") == 1  # implemented once, then reviewed
    assert "run " not in doit("list").stdout  # the stand-in task exists only for such a command line
    again = doit("-n", "2", "run")
    assert again.returncode == 0 and "4/4 done, 4 already done" in again.stdout
