"""Git work for a WP on a real repository."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import git, make_repo

from kittydoit.git import Git


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
