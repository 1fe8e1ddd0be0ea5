"""Repairing git leftovers in a WP's own worktree: only when the run that left them is gone and git is not busy."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import FEATURE, Repo, make_repo

from kittydoit import repair
from kittydoit.context import Context, load_context
from kittydoit.git import GitError
from kittydoit.session import acquire_run_lock


@pytest.fixture
def ready(tmp_path: Path) -> tuple[Repo, Context, Path]:
    """A repository whose WP01 has a worktree with a lock a cut-off git command left, and this run's run lock."""
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    ctx = load_context(repo.root, None, cache=False)
    ctx.git.prepare_worktree(ctx.paths.worktree("WP01"), ctx.paths.branch("WP01"), "main")
    lock = repo.root / ".git" / "worktrees" / f"{FEATURE}-WP01" / "index.lock"
    lock.write_text("")
    return repo, ctx, lock


def test_a_lock_is_removed_when_the_run_that_left_it_is_gone(ready: tuple[Repo, Context, Path]) -> None:
    _, ctx, lock = ready
    with acquire_run_lock(ctx.paths):  # this run holds the feature: the one that left the lock is gone
        done = repair.repair(ctx, "WP01")
    assert done == [f"repaired: removed .git/worktrees/{FEATURE}-WP01/index.lock (left by a git command cut off "
                    "by a killed run)"]  # fmt: skip
    assert not lock.exists()
    assert repair.repair(ctx, "WP01") == []


def test_nothing_is_touched_while_git_works_in_the_worktree(
    ready: tuple[Repo, Context, Path], tmp_path: Path
) -> None:
    _, ctx, lock = ready
    fake_git = tmp_path / "bin" / "git"  # a process named git working in the WP's worktree
    fake_git.parent.mkdir()
    fake_git.symlink_to(shutil.which("sleep") or "/bin/sleep")
    busy = subprocess.Popen([str(fake_git), "30"], cwd=ctx.paths.worktree("WP01"))
    comm = Path(f"/proc/{busy.pid}/comm")
    end = time.monotonic() + 10
    while not comm.read_text().startswith("git") and time.monotonic() < end:  # the kernel names it once exec is done
        time.sleep(0.01)
    try:
        with acquire_run_lock(ctx.paths), pytest.raises(GitError) as failure:
            repair.repair(ctx, "WP01")
    finally:
        busy.kill()
        busy.wait()
    assert f"git (pid {busy.pid}: " in str(failure.value)
    assert f"rm .git/worktrees/{FEATURE}-WP01/index.lock" in str(failure.value)
    assert lock.exists()


def test_nothing_is_touched_unless_this_run_holds_the_feature(ready: tuple[Repo, Context, Path]) -> None:
    _, ctx, lock = ready
    with pytest.raises(GitError) as failure:
        repair.repair(ctx, "WP01")
    assert "cannot prove the run that left it is gone" in str(failure.value)
    assert f"(rm .git/worktrees/{FEATURE}-WP01/index.lock)" in str(failure.value)
    assert lock.exists()


def test_a_half_made_worktree_is_found_under_the_name_git_gave_it_on_a_clash(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    ctx = load_context(repo.root, None, cache=False)
    name = f"{FEATURE}-WP01"
    # Another worktree with the same basename takes .git/worktrees/<name>; git then names WP01's <name>1.
    subprocess.run(["git", "worktree", "add", "-q", "-b", "other", str(tmp_path / name), "main"], cwd=repo.root,
                   check=True)  # fmt: skip
    worktree = ctx.paths.worktree("WP01")
    ctx.git.prepare_worktree(worktree, ctx.paths.branch("WP01"), "main")
    admins = repo.root / ".git" / "worktrees"
    assert (admins / f"{name}1" / "gitdir").read_text().strip() == str(worktree / ".git")
    (admins / f"{name}1" / "locked").write_text("initializing")  # `git worktree add` cut off before it wrote .git
    (worktree / ".git").unlink()
    with acquire_run_lock(ctx.paths):
        done = repair.repair(ctx, "WP01")
    assert done == [f"repaired: removed the half-made worktree .worktrees/{name} (its checkout cut off by a killed "
                    "run)"]  # fmt: skip
    assert not worktree.exists() and not (admins / f"{name}1").exists()
    assert (admins / name / "gitdir").exists() and (tmp_path / name / ".git").exists()  # the other one is untouched


@pytest.mark.parametrize("journaled", [True, False])
def test_a_merge_cut_off_before_git_wrote_its_message_is_kittydoits_only_by_its_journal(
    tmp_path: Path, journaled: bool
) -> None:
    # git writes MERGE_HEAD a moment before MERGE_MSG: a kill in between leaves a merge with no message, which
    # repair takes for kittydoit's when kittydoit noted it was merging the WP's dependencies, and never otherwise.
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    ctx = load_context(repo.root, None, cache=False)
    worktree = ctx.paths.worktree("WP01")
    ctx.git.prepare_worktree(worktree, ctx.paths.branch("WP01"), "main")
    head = ctx.git.head(worktree)
    admin = repo.root / ".git" / "worktrees" / f"{FEATURE}-WP01"
    if journaled:
        repair.merge_started(ctx, "WP01", head)
    (admin / "MERGE_HEAD").write_text(f"{head}\n")
    with acquire_run_lock(ctx.paths):
        if journaled:
            done = repair.repair(ctx, "WP01")
        else:
            with pytest.raises(GitError) as failure:
                repair.repair(ctx, "WP01")
    if journaled:
        assert done == [f"repaired: reset .worktrees/{FEATURE}-WP01 to {head[:12]}, where it was before the "
                        "dependency merges a killed run cut off; they are made again"]  # fmt: skip
        assert not (admin / "MERGE_HEAD").exists()
        assert repair.repair(ctx, "WP01") == []
    else:
        assert "has a merge in progress that kittydoit did not start" in str(failure.value)
        assert (admin / "MERGE_HEAD").exists()
