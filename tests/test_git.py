"""Git work for a WP on a real repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import git, make_repo

from kittydoit.git import Git, GitError


def test_a_worktree_deleted_by_hand_is_made_again(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    tool = Git(repo.root, tmp_path / "git.lock")
    worktree = repo.root / ".worktrees" / "001-demo-WP01"
    tool.prepare_worktree(worktree, "001-demo-WP01", "main")
    (worktree / "work.txt").write_text("work\n")
    assert tool.commit_all(worktree, "work")
    shutil.rmtree(worktree)  # still registered in .git/worktrees: a plain `git worktree add` refuses it
    tool.prepare_worktree(worktree, "001-demo-WP01", "main")
    assert (worktree / "work.txt").read_text() == "work\n"  # the branch's work is back
    assert git(worktree, "branch", "--show-current").strip() == "001-demo-WP01"


def test_a_new_worktree_is_fresh_and_its_base_is_the_target_plus_dependencies(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": ["WP01"]})
    tool = Git(repo.root, tmp_path / "git.lock")
    dep, wp = repo.root / ".worktrees" / "dep", repo.root / ".worktrees" / "wp"
    assert tool.prepare_worktree(dep, "dep", "main")
    (dep / "dep.txt").write_text("dep\n")
    assert tool.commit_all(dep, "dep work")
    assert tool.prepare_worktree(wp, "wp", "main")
    assert tool.merge(wp, "dep", "wp")
    assert not tool.merge(wp, "no-such-branch", "wp")  # a dependency done before kittydoit has no branch
    fresh_base = tool.rev("HEAD", cwd=wp)
    (wp / "own.txt").write_text("own\n")
    assert tool.commit_all(wp, "own work")
    assert not tool.prepare_worktree(wp, "wp", "main")  # reused: its base must be computed, not read off HEAD
    base = tool.base(wp, "main", ["dep"])
    assert tool.same_tree(base, fresh_base, cwd=wp)
    assert tool.diff(wp, base).stat.split()[0] == "own.txt"


def test_a_lock_left_in_the_users_checkout_is_named_with_the_command_that_removes_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    tool = Git(repo.root, tmp_path / "git.lock")
    (repo.root / ".git" / "index.lock").write_text("")  # a git command cut off in the user's own checkout
    (repo.root / "notes.txt").write_text("notes\n")
    with pytest.raises(GitError) as failure:
        tool.commit_paths([repo.root / "notes.txt"], "notes")
    assert "failed: .git/index.lock exists" in str(failure.value)
    assert "remove it (rm .git/index.lock)" in str(failure.value)
    assert (repo.root / ".git" / "index.lock").exists()  # the user's checkout is theirs to repair
