"""Worktrees prepared ahead of their implement (kittydoit.ahead): what they hold, when they are used, and when not."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from conftest import FEATURE, Repo, git, make_repo

from kittydoit import ahead, workflow
from kittydoit.context import Context, load_context


def branch_with_file(repo: Repo, wp_id: str, name: str) -> str:
    """Give *wp_id* its kittydoit branch off main with one commit adding *name*; return the commit."""
    branch = f"{FEATURE}-{wp_id}"
    git(repo.root, "branch", branch, "main")
    scratch = repo.root.parent / f"scratch-{wp_id}"
    git(repo.root, "worktree", "add", "-q", str(scratch), branch)
    (scratch / name).write_text(f"{wp_id}\n")
    git(scratch, "add", name)
    git(scratch, "commit", "-q", "-m", f"{wp_id} work")
    return git(scratch, "rev-parse", "HEAD").strip()


@pytest.fixture
def two_done(diamond: Repo) -> tuple[Repo, Context]:
    """The diamond with WP02 and WP03 implemented on their branches (WP01 left out: it has no branch)."""
    branch_with_file(diamond, "WP02", "two.txt")
    branch_with_file(diamond, "WP03", "three.txt")
    return diamond, load_context(diamond.root, None, cache=False)


def files_beyond_main(cwd: Path, commit: str) -> list[str]:
    return sorted(git(cwd, "diff", "--name-only", "main", commit).split())


def test_a_prepared_worktree_holds_exactly_the_target_branch_and_every_dependency(
    two_done: tuple[Repo, Context],
) -> None:
    _, ctx = two_done
    workflow.prepare(ctx, "WP04")
    worktree = ctx.paths.worktree("WP04")
    head = git(worktree, "rev-parse", "HEAD").strip()
    assert files_beyond_main(worktree, head) == ["three.txt", "two.txt"]
    for ref in ("main", f"{FEATURE}-WP02", f"{FEATURE}-WP03"):
        git(worktree, "merge-base", "--is-ancestor", ref, head)  # raises when *ref* is not in the worktree
    assert git(worktree, "status", "--porcelain") == ""
    assert "worktree prepared ahead" in ctx.paths.log("WP04", "implement").read_text()
    # The implement takes it as it is: same worktree, the prepared HEAD as the review base, no merge made.
    assert workflow._prepare(ctx, ctx.feature.wps["WP04"], ctx.paths.log("WP04", "implement")) == (worktree, head)
    assert git(worktree, "rev-parse", "HEAD").strip() == head


def test_a_dependency_that_moved_after_the_preparation_is_merged_by_the_implement(
    two_done: tuple[Repo, Context],
) -> None:
    repo, ctx = two_done
    workflow.prepare(ctx, "WP04")
    scratch = repo.root.parent / "scratch-WP03"  # WP03 sent back by its review and changed
    (scratch / "three-fixed.txt").write_text("fixed\n")
    git(scratch, "add", "three-fixed.txt")
    git(scratch, "commit", "-q", "-m", "WP03 fix")
    worktree, base = workflow._prepare(ctx, ctx.feature.wps["WP04"], ctx.paths.log("WP04", "implement"))
    assert files_beyond_main(worktree, base) == ["three-fixed.txt", "three.txt", "two.txt"]


def test_nothing_is_prepared_once_the_implement_has_begun(two_done: tuple[Repo, Context]) -> None:
    _, ctx = two_done
    with workflow.preparing(ctx, "WP04", wait=True):  # the implement holds the WP
        workflow.prepare(ctx, "WP04")
    assert not ctx.paths.worktree("WP04").exists()


def test_a_run_prepares_the_dependant_while_the_last_review_runs_and_ends_done(diamond: Repo) -> None:
    diamond.plan({"WP03": {"review": [{"sleep": 1.5}]}})
    result = diamond.kittydoit("-n", "2", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "worktree prepared ahead" in (diamond.root / ".kittify" / "logs" / FEATURE / "WP04-implement.log").read_text()
    )
    worktree = diamond.root / ".worktrees" / f"{FEATURE}-WP04"
    assert files_beyond_main(worktree, "HEAD") == ["WP01.txt", "WP02.txt", "WP03.txt", "WP04.txt"]
    marker = json.loads(
        (diamond.root / ".kittify" / "kittydoit" / FEATURE / "markers" / "WP04-implement.json").read_text()
    )
    assert files_beyond_main(worktree, marker["base"]) == ["WP01.txt", "WP02.txt", "WP03.txt"]  # the review's base
    assert [diamond.lane(wp) for wp in ("WP01", "WP02", "WP03", "WP04")] == ["done"] * 4


def test_a_review_resumed_by_a_later_run_runs_in_the_wps_worktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": ["WP01"]})
    repo.plan({"WP01": {"review": [{"exit": 3}]}})  # every review fails: the run ends before approval
    first = repo.kittydoit("run")
    assert first.returncode != 0 and repo.lane("WP01") == "for_review"
    repo.plan({})
    again = repo.kittydoit("run")
    assert again.returncode == 0, again.stdout + again.stderr
    reviews = [c for c in repo.calls() if c["role"] == "review" and c["wp"] == "WP01" and "start" in c]
    assert len(reviews) >= 2
    assert {c["cwd"] for c in reviews} == {str(repo.root / ".worktrees" / f"{FEATURE}-WP01")}


def test_a_preparation_waits_for_doit_to_hand_out_the_next_task_and_runs_at_a_lower_priority(
    two_done: tuple[Repo, Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ctx = two_done
    for dep in ("WP02", "WP03"):  # both implemented: WP04 is ready to prepare
        ctx.paths.marker(dep, "implement").parent.mkdir(parents=True, exist_ok=True)
        ctx.paths.marker(dep, "implement").write_text("{}\n")
    monkeypatch.setattr(ahead, "GATE", 60.0)
    priorities: list[int] = []
    real_prepare = workflow.prepare

    def prepare(ctx: Context, wp_id: str) -> None:
        priorities.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        real_prepare(ctx, wp_id)

    monkeypatch.setattr(workflow, "prepare", prepare)
    preparer = ahead.Preparer(ctx)
    preparer.implemented("WP03")  # doit has not handed out WP03's review yet: nothing happens
    time.sleep(0.3)
    assert not ctx.paths.worktree("WP04").exists() and priorities == []
    preparer.started("WP03", "review")  # ... and now it has
    preparer.close()
    assert ctx.paths.worktree("WP04").exists()
    assert priorities == [os.getpriority(os.PRIO_PROCESS, 0) + ahead.NICE]


def test_a_run_prepares_the_wps_ready_from_the_start_a_few_at_a_time(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {f"WP0{n}": [] for n in range(1, 9)})
    ctx = load_context(repo.root, None, cache=False)
    order = [wp for wp in ctx.feature.schedule_order() if wp != "WP01"]
    preparer = ahead.Preparer(ctx)
    preparer.starting(["implement", "review"], "WP01")  # WP01 is the run's first task
    preparer.close()
    prepared = [wp for wp in order if ctx.paths.worktree(wp).exists()]
    assert prepared == order[: ahead.AHEAD]  # the next ones in doit's order, not all seven
    preparer.started(order[0], "implement")  # one of them starts: one more is prepared
    preparer.close()
    assert [wp for wp in order if ctx.paths.worktree(wp).exists()] == order[: ahead.AHEAD + 1]


def test_the_wps_ready_from_the_start_are_prepared_once_the_first_tasks_agents_have_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo", {f"WP0{n}": [] for n in range(1, 9)})
    ctx = load_context(repo.root, None, cache=False)
    order = [wp for wp in ctx.feature.schedule_order() if wp != "WP01"]
    monkeypatch.setattr(ahead, "WAVE", 60.0)
    preparer = ahead.Preparer(ctx, workers=3)  # `-n 3`: WP01 and the next two start at once
    preparer.starting(["implement", "review"], "WP01")
    time.sleep(0.3)
    assert not any(ctx.paths.worktree(wp).exists() for wp in order)  # no agent has started yet
    ctx.paths.pid_file("WP01").parent.mkdir(parents=True, exist_ok=True)
    ctx.paths.pid_file("WP01").write_text("1 1\n")  # the first task's agent started; the second's implement is done
    ctx.paths.marker(order[0], "implement").parent.mkdir(parents=True, exist_ok=True)
    ctx.paths.marker(order[0], "implement").write_text("{}\n")
    time.sleep(0.3)
    assert not any(ctx.paths.worktree(wp).exists() for wp in order)  # the third's agent has not started
    ctx.paths.pid_file(order[1]).write_text("1 1\n")
    preparer.close()
    assert [wp for wp in order if ctx.paths.worktree(wp).exists()] == order[2 : 2 + ahead.AHEAD]


def test_the_wps_ready_from_the_start_wait_for_the_first_tasks_agents_only_so_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo", {f"WP0{n}": [] for n in range(1, 5)})
    ctx = load_context(repo.root, None, cache=False)
    monkeypatch.setattr(ahead, "WAVE", 0.5)
    preparer = ahead.Preparer(ctx, workers=2)  # no agent ever starts (say, none is installed)
    started = time.monotonic()
    preparer.starting(["implement", "review"], "WP01")
    preparer.close()
    assert 0.5 <= time.monotonic() - started < 10
    assert [wp for wp in ("WP03", "WP04") if ctx.paths.worktree(wp).exists()] == ["WP03", "WP04"]


def test_the_wps_doit_hands_out_with_the_first_task_are_left_to_their_own_implements(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {f"WP0{n}": [] for n in range(1, 9)})
    ctx = load_context(repo.root, None, cache=False)
    order = [wp for wp in ctx.feature.schedule_order() if wp != "WP01"]
    preparer = ahead.Preparer(ctx, workers=3)  # `-n 3`: WP01 and the next two start at once
    preparer.starting(["implement", "review"], "WP01")
    preparer.close()
    assert [wp for wp in order if ctx.paths.worktree(wp).exists()] == order[2 : 2 + ahead.AHEAD]
