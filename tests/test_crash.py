"""Crash-proof at any instant: kill -9, Ctrl-C and hang-ups at chosen instants, through whole runs.

Each instant is reached through a gate, not a sleep: a fake agent that waits for a file, a git filter or hook that
waits for one, or the orchestrator stopped (SIGSTOP) while its worker finishes. Every run is started in a process
group of its own, as a shell starts a job, so signals reach it as they would from a terminal.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import FEATURE, Repo, git, make_repo
from terminal import PtyRun
from test_process import alive, wait_gone
from test_run import agent_pids, wait_for

pytestmark = pytest.mark.slow

# An agent outlives the orchestrator by well under a second (its supervisor is told by the kernel); a loaded
# machine may take longer to schedule it, so the tests allow this much.
DIES_WITHIN = 2.0


def children(repo: Repo) -> list[int]:
    path = repo.state / "children.txt"
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def kill_9(run: object) -> None:
    """SIGKILL the run's whole process group, as `kill -9 -PGID` does, and collect it."""
    os.killpg(run.pid, signal.SIGKILL)  # type: ignore[attr-defined]
    run.communicate(timeout=30)  # type: ignore[attr-defined]


def run_lock_free(repo: Repo) -> bool:
    with (repo.root / ".kittify" / "kittydoit" / FEATURE / "run.lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def log(repo: Repo, wp: str, phase: str) -> str:
    return (repo.root / ".kittify" / "logs" / FEATURE / f"{wp}-{phase}.log").read_text()


@pytest.mark.parametrize("workers", ["0", "2"])
def test_kill_9_at_the_instant_an_agent_starts_leaves_no_agent_running(diamond: Repo, workers: str) -> None:
    diamond.plan({"WP01": {"implement": [{"sleep": 60, "child": 60, "escape": 60}, {}]}})
    run = diamond.popen("-n", workers, "run", start_new_session=True)
    wait_for(lambda: len(children(diamond)) == 2, what="WP01's agent and its two children")
    pids = agent_pids(diamond)
    kill_9(run)
    assert wait_gone(pids, seconds=DIES_WITHIN) == []  # the child that left the agent's session too
    shown = diamond.kittydoit("status", check=True).stdout
    assert "aborted (the orchestrator (pid" in shown and "is gone: it was killed" in shown
    assert "running for" not in shown
    result = diamond.kittydoit("-n", "2", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "left by a killed run" not in result.stderr  # nothing was left for this run to stop
    assert [diamond.lane(wp) for wp in ("WP01", "WP02", "WP03", "WP04")] == ["done"] * 4


def test_kill_9_during_git_worktree_add_is_repaired_by_the_next_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": ["WP01"]})
    gate = tmp_path / "gate"
    (repo.root / ".gitattributes").write_text("*.slow filter=gate\n")
    (repo.root / "data.slow").write_text("checked out through a filter that waits for the gate\n")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "a file checked out through a gated filter")
    git(repo.root, "config", "filter.gate.smudge", f"sh -c 'while [ ! -e {gate} ]; do sleep 0.02; done; cat'")
    run = repo.popen("run", start_new_session=True)
    admin = repo.root / ".git" / "worktrees"
    wait_for(lambda: list(admin.glob("*/locked")), what="git worktree add")
    kill_9(run)
    gate.touch()
    assert list(admin.glob("*/locked"))  # what broke every later run
    result = repo.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"repaired: removed the half-made worktree .worktrees/{FEATURE}-WP01" in log(repo, "WP01", "implement")
    assert repo.lane("WP01") == "done" and repo.lane("WP02") == "done"
    worktree = repo.root / ".worktrees" / f"{FEATURE}-WP01"
    assert git(worktree, "branch", "--show-current").strip() == f"{FEATURE}-WP01"
    git(repo.root, "worktree", "remove", "--force", str(worktree))  # the README's start-over recipe works


@pytest.mark.parametrize("instant", ["merge commit", "merge checkout"])
def test_kill_9_during_a_dependency_merge_is_repaired_by_the_next_run(diamond: Repo, instant: str) -> None:
    gate = diamond.root.parent / "gate"
    # The hook or filter that holds git says when it runs: git writes MERGE_HEAD a moment before MERGE_MSG, which
    # tells kittydoit's merges apart, and an index lock is there while WP04's worktree is checked out, too.
    reached = diamond.root.parent / "reached"
    if instant == "merge commit":  # MERGE_HEAD is written, the commit not yet: git runs this hook in between
        hook = diamond.root / ".git" / "hooks" / "prepare-commit-msg"
        hook.write_text(f'#!/bin/sh\nif [ -f "$(git rev-parse --git-dir)/MERGE_HEAD" ]; then\n'
                        f"  touch {reached}; while [ ! -e {gate} ]; do sleep 0.02; done\nfi\n")  # fmt: skip
        hook.chmod(0o755)
        left = "MERGE_HEAD"
    else:  # the merge is writing WP02's file into WP04's worktree, holding the index lock
        (diamond.root / ".gitattributes").write_text("*.slow filter=gate\n")
        git(diamond.root, "add", "-A")
        git(diamond.root, "commit", "-q", "-m", "a gated filter")
        smudge = f"sh -c 'touch {reached}; while [ ! -e {gate} ]; do sleep 0.02; done; cat'"
        git(diamond.root, "config", "filter.gate.smudge", smudge)
        # A merge setting (git's default value here) has kittydoit merge in the worktree, not before its checkout
        # (see Git.premerge): the instant this case is about.
        git(diamond.root, "config", "merge.conflictStyle", "merge")
        diamond.plan({"WP02": {"implement": [{"write": {"WP02.txt": "two\n", "WP02.slow": "gated\n"}}]}})
        left = "index.lock"
    run = diamond.popen("-n", "2", "run", start_new_session=True)
    admin = diamond.root / ".git" / "worktrees" / f"{FEATURE}-WP04"
    wait_for(lambda: reached.exists() and (admin / left).exists(), what=f"WP04's {instant}")
    kill_9(run)
    gate.touch()
    assert (admin / left).exists()
    result = diamond.kittydoit("-n", "2", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "repaired: " in log(diamond, "WP04", "implement")
    assert "where it was before the dependency merges a killed run cut off" in log(diamond, "WP04", "implement")
    worktree = diamond.root / ".worktrees" / f"{FEATURE}-WP04"
    assert sorted(p.name for p in worktree.glob("WP*.txt")) == ["WP01.txt", "WP02.txt", "WP03.txt", "WP04.txt"]
    assert git(worktree, "status", "--porcelain") == ""
    assert diamond.lane("WP04") == "done"


def test_a_merge_kittydoit_did_not_start_is_never_touched(diamond: Repo) -> None:
    assert diamond.kittydoit("run", "WP02", "WP03").returncode == 0
    worktree = diamond.root / ".worktrees" / f"{FEATURE}-WP03"
    (worktree / "WP03.txt").write_text("changed by a person\n")
    git(worktree, "commit", "-q", "-am", "a person's change")
    git(worktree, "checkout", "-q", "-b", "side", "HEAD~1")
    (worktree / "WP03.txt").write_text("changed on the side\n")
    git(worktree, "commit", "-q", "-am", "side")
    git(worktree, "checkout", "-q", f"{FEATURE}-WP03")
    conflicted = os.system(f"git -C {worktree} merge -q side >/dev/null 2>&1")  # noqa: S605  # a person's merge
    assert conflicted != 0 and (diamond.root / ".git" / "worktrees" / f"{FEATURE}-WP03" / "MERGE_HEAD").exists()
    assert diamond.kittydoit("forget", "WP03").returncode == 0
    result = diamond.kittydoit("run", "WP03")
    assert result.returncode == 1
    assert f".worktrees/{FEATURE}-WP03 has a merge in progress that kittydoit did not start" in result.stdout
    assert f"git -C .worktrees/{FEATURE}-WP03 merge --abort" in result.stdout
    assert "<<<<<<<" in (worktree / "WP03.txt").read_text()  # the person's conflict is as they left it


def test_kill_9_between_approval_and_doits_record_never_reviews_again(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": ["WP01"]})
    gate = tmp_path / "gate"
    repo.plan({"WP01": {"review": [{"wait": str(gate)}]}})
    run = repo.popen("run", start_new_session=True)
    wait_for(lambda: repo.started("review") == ["WP01"], what="WP01's reviewer")
    os.kill(run.pid, signal.SIGSTOP)  # the orchestrator records nothing from now on; its worker goes on
    try:
        gate.touch()
        wait_for(lambda: repo.lane("WP01") == "done", what="WP01 approved")
        marker = repo.root / ".kittify" / "kittydoit" / FEATURE / "markers" / "WP01-review.json"
        wait_for(marker.exists, what="WP01's review done-marker")
        time.sleep(0.2)  # let the worker hand its result to the stopped orchestrator
    finally:
        kill_9(run)
    result = repo.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert repo.started("review").count("WP01") == 1  # approved work is never put to a reviewer again
    assert repo.started("implement").count("WP01") == 1
    assert "review was already complete" in log(repo, "WP01", "review")
    assert repo.lane("WP02") == "done"
    assert repo.kittydoit("forget", "WP01").returncode == 0  # and forget still means: do it again
    again = repo.kittydoit("run")
    assert again.returncode == 0, again.stdout + again.stderr
    assert repo.started("review").count("WP01") == 2 and repo.started("review").count("WP02") == 2


def test_ctrl_c_at_30_instants_always_stops_promptly_without_a_traceback(tmp_path: Path) -> None:
    # WP01 first, then five WPs at once: with -n 3 some workers wait for work while others run agents.
    wps = {"WP01": [], **{f"WP0{i}": ["WP01"] for i in range(2, 7)}}
    plan = {"WP01": {"implement": [{"sleep": 0.3}]}, **{f"WP0{i}": {"implement": [{"sleep": 5}]} for i in range(2, 7)}}
    for attempt in range(30):
        repo = make_repo(tmp_path / f"repo{attempt}", wps)
        repo.plan(plan)
        run = repo.popen("-n", "3", "run", start_new_session=True)
        # From kittydoit reading the feature (Ctrl-C while Python itself starts is Python's to report) on, the
        # instant varies over loading, starting the workers, git and agents running and workers waiting for work.
        wait_for((repo.root / ".kittify" / "kittydoit" / FEATURE / "parsed").exists, what="kittydoit loading")
        time.sleep(0.03 * attempt)
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
        pressed = time.monotonic()
        out, err = run.communicate(timeout=60)
        took = time.monotonic() - pressed
        context = f"attempt {attempt}: exit {run.returncode} after {took:.1f} s\n{out}\n{err}"
        assert run.returncode == 130, context
        assert "Traceback" not in out + err, context
        assert took < 5 + 1 + 4, context  # the agents' grace period, a second, and room for a loaded machine
        if "work packages" in out:  # the run had started: it says how it ended
            assert "summary: " in out and "interrupted" in err, context
        assert wait_gone(agent_pids(repo), seconds=DIES_WITHIN) == [], context
        if (repo.root / ".kittify" / "kittydoit" / FEATURE / "run.lock").exists():
            assert run_lock_free(repo), context


def tgkill(pid: int, tid: int, sig: signal.Signals) -> None:
    """Send *sig* to thread *tid* of process *pid* alone: the kernel may hand a signal sent to a process to any
    thread of it that does not block it, and that is the thread it goes to here."""
    if ctypes.CDLL(None, use_errno=True).tgkill(pid, tid, sig) != 0:
        raise OSError(ctypes.get_errno(), "tgkill failed")


def other_threads(pid: int) -> list[int]:
    return [int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid]


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_ctrl_c_that_another_thread_of_the_orchestrator_takes_stops_the_run_at_once(diamond: Repo) -> None:
    # The orchestrator's main thread waits for a worker's result, with the only agent at 60 s to go: Python runs
    # signal handlers in the main thread only, and a signal taken by another thread must still wake it.
    diamond.plan({"WP01": {"implement": [{"sleep": 60}]}})
    run = diamond.popen("-n", "2", "run", start_new_session=True)
    wait_for(lambda: len(diamond.started()) == 1, what="WP01's agent")
    pids = agent_pids(diamond)
    time.sleep(0.2)  # the orchestrator is back to waiting for a result
    threads = other_threads(run.pid)
    assert threads, "the orchestrator runs threads beside its main thread"
    tgkill(run.pid, threads[0], signal.SIGINT)
    pressed = time.monotonic()
    out, err = communicate(run)
    took = time.monotonic() - pressed
    assert run.returncode == 130, out + err
    assert "interrupted" in err and "Traceback" not in out + err
    assert took < 5, out + err  # the agent stops at its SIGTERM; room for a loaded machine
    assert wait_gone(pids, seconds=DIES_WITHIN) == []


def test_a_sigterm_that_another_thread_of_an_idle_worker_takes_ends_that_worker_at_once(tmp_path: Path) -> None:
    # WP01 and WP02 first, one on each worker (each worker then has a queue-feeder thread), then WP03 alone: one
    # worker runs its agent, the other waits for work. The SIGTERM doit sends a worker when a run stops must not
    # be lost in the waiting worker's other thread.
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": [], "WP03": ["WP01", "WP02"]})
    repo.plan({"WP03": {"implement": [{"sleep": 60}]}})
    run = repo.popen("-n", "2", "run", start_new_session=True)
    wait_for(lambda: "WP03" in repo.started(), what="WP03's agent")
    pids = [c["pid"] for c in repo.calls() if "start" in c and c["wp"] == "WP03"]
    busy = parent(parent(pids[0]))  # the agent's supervisor's parent
    idle = [pid for pid in doit_workers(run.pid) if pid != busy]
    assert len(idle) == 1, idle
    time.sleep(0.2)  # the idle worker is back to waiting for work
    threads = other_threads(idle[0])
    assert threads, "a worker that ran a task runs its queue's feeder thread"
    tgkill(idle[0], threads[0], signal.SIGTERM)
    sent = time.monotonic()
    out, err = communicate(run)
    took = time.monotonic() - sent
    assert run.returncode == 130, out + err  # the worker stopped: doit stops the run, as it does for a Ctrl-C
    assert "Traceback" not in out + err
    assert took < 5, out + err
    assert wait_gone(pids, seconds=DIES_WITHIN) == []


def communicate(run: subprocess.Popen[str], timeout: float = 30) -> tuple[str, str]:
    """Return the run's output once it has ended; kill it, and fail, when it has not ended within *timeout*."""
    try:
        return run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_9(run)
        raise


def doit_workers(orchestrator: int) -> list[int]:
    """Return the pids of the orchestrator's doit workers (its children running `python -m kittydoit`, not git)."""
    found = []
    for pid in (int(entry) for entry in os.listdir("/proc") if entry.isdigit()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
            if parent(pid) == orchestrator and alive(pid) and argv[1:3] == ["-m", "kittydoit"]:
                found.append(pid)
        except OSError:  # it ended while we looked
            continue
    return found


def test_ctrl_c_with_agents_that_ignore_sigterm_stops_within_the_grace_period_and_twice_at_once(
    diamond: Repo,
) -> None:
    diamond.plan({"WP01": {"implement": [{"sleep": 60, "ignore_term": True, "child": 60}]}})
    for presses in (1, 2):
        (diamond.state / "children.txt").unlink(missing_ok=True)
        run = diamond.popen("-n", "2", "run", start_new_session=True)
        wait_for(lambda: len(children(diamond)) == 1, what="WP01's agent")
        pids = agent_pids(diamond)
        os.killpg(run.pid, signal.SIGINT)
        pressed = time.monotonic()
        if presses == 2:
            time.sleep(0.5)
            os.killpg(run.pid, signal.SIGINT)
        out, err = run.communicate(timeout=60)
        took = time.monotonic() - pressed
        assert run.returncode == 130, out + err
        assert "Traceback" not in out + err
        if presses == 1:
            assert 4 < took < 5 + 1 + 4  # SIGTERM ignored: SIGKILL after the 5 s grace period
        else:
            assert took < 4  # the second Ctrl-C does not wait for the grace period
        assert wait_gone(pids, seconds=DIES_WITHIN) == []
        assert run_lock_free(diamond)


def test_hang_up_stops_the_run_like_sigterm_and_the_next_run_completes(diamond: Repo) -> None:
    diamond.plan({"WP01": {"implement": [{"sleep": 60, "child": 60}, {}]}})
    run = PtyRun(diamond.root, "-n", "2", "run")
    wait_for(lambda: len(children(diamond)) == 1, what="WP01's agent")
    pids = agent_pids(diamond)
    os.close(run.master)  # the terminal goes away...
    os.killpg(run.process.pid, signal.SIGHUP)  # ...and its foreground job is hung up
    run.process.wait(timeout=60)
    assert wait_gone(pids, seconds=DIES_WITHIN) == []
    assert run_lock_free(diamond)
    state = json.loads((diamond.root / ".kittify" / "orchestration-state.json").read_text())["runs"][FEATURE]
    assert state["run"]["status"] == "aborted" and "SIGHUP" in state["run"]["reason"]
    assert not [p for p in pids if alive(p)]
    result = diamond.kittydoit("-n", "2", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert diamond.lane("WP04") == "done"


def test_a_run_refused_because_another_is_going_is_a_user_error_on_stderr(diamond: Repo) -> None:
    gate = diamond.root.parent / "gate"
    diamond.plan({"WP01": {"implement": [{"wait": str(gate)}]}})
    first = diamond.popen("run", start_new_session=True)
    try:
        wait_for(lambda: diamond.started() == ["WP01"], what="the first run's agent")
        second = diamond.kittydoit("run")
        assert second.returncode == 3
        assert second.stderr.startswith("ERROR: .kittify/kittydoit/001-demo/run.lock: another kittydoit run (pid")
        assert len(second.stderr.splitlines()) == 1 and "Traceback" not in second.stderr
        assert second.stdout == ""
    finally:
        gate.touch()
        first.communicate(timeout=60)
    assert first.returncode == 0
