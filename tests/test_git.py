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


def _branch_with(repo_root: Path, tool: Git, name: str, start: str, files: dict[str, str]) -> None:
    worktree = repo_root / ".worktrees" / name
    tool.prepare_worktree(worktree, name, start)
    for file, text in files.items():
        (worktree / file).write_text(text)
    assert tool.commit_all(worktree, f"{name} work")


def _history(cwd: Path, ref: str) -> list[tuple[int, str, str]]:
    """Return (number of parents, subject, tree) of each commit from *ref* back, first parents only."""
    lines = git(cwd, "log", "--first-parent", "--format=%P|%s|%T", ref).splitlines()
    return [(len(p.split()), s, t) for p, s, t in (line.split("|") for line in lines)]


def test_merges_made_before_the_checkout_are_the_ones_git_merge_makes_in_the_worktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    tool = Git(repo.root, tmp_path / "git.lock")
    _branch_with(repo.root, tool, "one", "main", {"one.txt": "1\n"})
    _branch_with(repo.root, tool, "two", "one", {"two.txt": "2\n"})  # contains one: merging it after one fast-forwards
    _branch_with(repo.root, tool, "three", "main", {"three.txt": "3\n"})  # diverges: a real merge
    deps = ["one", "two", "three", "no-such-branch"]
    old = repo.root / ".worktrees" / "old"
    assert tool.prepare_worktree(old, "old", "main")
    for dep in deps:
        tool.merge(old, dep, "wp")
    head, taken = tool.premerge("main", deps, "wp")
    assert taken == len(deps)
    assert _history(repo.root, head) == _history(repo.root, tool.rev("HEAD", cwd=old))  # parents, message, tree
    assert git(repo.root, "log", "-1", "--format=%B", head) == "kittydoit: merge three into wp\n\n"


def test_a_conflict_stops_the_merges_before_the_checkout_where_the_worktree_merge_reports_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    tool = Git(repo.root, tmp_path / "git.lock")
    _branch_with(repo.root, tool, "one", "main", {"same.txt": "one\n"})
    _branch_with(repo.root, tool, "two", "main", {"same.txt": "two\n"})
    head, taken = tool.premerge("main", ["one", "two"], "wp")
    assert (head, taken) == (tool.rev("one"), 1)
    worktree = repo.root / ".worktrees" / "wp"
    assert tool.prepare_worktree(worktree, "wp", head)
    with pytest.raises(GitError, match=r"merging branch two into wp conflicts \(same.txt\)"):
        tool.merge(worktree, "two", "wp")


def test_no_merge_is_made_before_the_checkout_where_git_settings_could_merge_otherwise(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    git(repo.root, "config", "merge.ff", "false")
    tool = Git(repo.root, tmp_path / "git.lock")
    _branch_with(repo.root, tool, "one", "main", {"one.txt": "1\n"})
    assert tool.premerge("main", ["one"], "wp") == (tool.rev("main"), 0)


def test_committing_what_is_left_then_diffing_sees_the_agents_commits_and_its_leftovers(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    tool = Git(repo.root, tmp_path / "git.lock")
    worktree = repo.root / ".worktrees" / "001-demo-WP01"
    tool.prepare_worktree(worktree, "001-demo-WP01", "main")
    base = tool.rev("HEAD", cwd=worktree)
    (worktree / "committed.txt").write_text("the agent committed this\n")
    git(worktree, "add", "committed.txt")
    git(worktree, "commit", "-q", "-m", "agent")
    change = tool.commit_all_then_diff(worktree, "left over", base)  # nothing left: status and diff side by side
    assert change.head == tool.rev("HEAD", cwd=worktree) and "committed.txt" in change.stat
    assert git(worktree, "log", "-1", "--format=%s").strip() == "agent"
    assert tool.diff(worktree, base) is change  # the review's diff: the same commits, not asked of git again
    (worktree / "left.txt").write_text("the agent left this uncommitted\n")
    after = tool.commit_all_then_diff(worktree, "left over", base)
    assert git(worktree, "log", "-1", "--format=%s").strip() == "left over"
    assert after.head == tool.rev("HEAD", cwd=worktree) != change.head
    assert "committed.txt" in after.stat and "left.txt" in after.stat
    assert git(worktree, "status", "--porcelain") == ""
    assert tool.commit_all_then_diff(worktree, "nothing", after.head).empty  # no change at all
