"""Git work for a WP on a real repository."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import git, make_repo
from test_run import wait_for

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


def _made_by(trace: Path) -> str:
    """Return how the traced git calls made a worktree: with `git worktree add`, or kittydoit's own way."""
    calls = trace.read_text()
    return "git worktree add" if "built-in: git worktree add" in calls else "directly"


def test_a_new_worktree_is_made_without_git_worktree_add_and_git_sees_it_as_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    (repo.root / "src").mkdir()
    for n in range(20):
        (repo.root / "src" / f"f{n}.txt").write_text(f"{n}\n")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "files")
    trace = tmp_path / "trace"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    tool = Git(repo.root, tmp_path / "git.lock")
    worktree = repo.root / ".worktrees" / "001-demo-WP01"
    assert tool.prepare_worktree(worktree, "001-demo-WP01", "main")
    assert _made_by(trace) == "directly"
    monkeypatch.delenv("GIT_TRACE")
    listed = git(repo.root, "worktree", "list", "--porcelain")
    assert f"worktree {worktree}\nHEAD {tool.rev('main')}\nbranch refs/heads/001-demo-WP01\n" in listed
    assert "locked" not in listed and not git(worktree, "status", "--porcelain")  # whole and clean
    assert sorted(p.name for p in (worktree / "src").iterdir()) == sorted(f"f{n}.txt" for n in range(20))
    assert "branch: Created from main" in git(repo.root, "reflog", "show", "001-demo-WP01")
    (worktree / "work.txt").write_text("work\n")
    assert tool.commit_all(worktree, "work")
    assert git(repo.root, "log", "-1", "--format=%s", "001-demo-WP01") == "work\n"
    git(repo.root, "worktree", "remove", str(worktree))  # the README's start-over recipe
    assert git(repo.root, "worktree", "prune", "--dry-run", "-v") == ""  # nothing dangling left


@pytest.mark.parametrize("setting", ["post-checkout hook", "sparse checkout", "existing branch", "stale registration"])
def test_git_worktree_add_makes_the_worktree_where_it_would_do_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    worktree = repo.root / ".worktrees" / "001-demo-WP01"
    if setting == "post-checkout hook":
        hook = repo.root / ".git" / "hooks" / "post-checkout"
        hook.write_text('#!/bin/sh\ntouch "$(git rev-parse --show-toplevel)/checked-out"\n')
        hook.chmod(0o755)
    elif setting == "sparse checkout":
        git(repo.root, "config", "core.sparseCheckout", "true")
    elif setting == "existing branch":
        git(repo.root, "branch", "001-demo-WP01", "main")
    else:  # a folder deleted by hand: still registered under its name
        git(repo.root, "worktree", "add", "-q", "-b", "other", str(worktree))
        shutil.rmtree(worktree)
    trace = tmp_path / "trace"
    monkeypatch.setenv("GIT_TRACE", str(trace))
    tool = Git(repo.root, tmp_path / "git.lock")
    tool.prepare_worktree(worktree, "001-demo-WP01", "main")
    assert _made_by(trace) == "git worktree add"
    assert git(worktree, "branch", "--show-current").strip() == "001-demo-WP01"
    assert not (repo.root / ".git" / "worktrees" / "001-demo-WP01" / "locked").exists()
    if setting == "post-checkout hook":
        assert (worktree / "checked-out").exists()


def test_a_worktree_that_cannot_be_checked_out_is_undone_and_left_to_git_to_report(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    (repo.root / ".gitattributes").write_text("*.bad filter=broken\n")
    (repo.root / "data.bad").write_text("checked out through a filter that fails\n")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "a file checked out through a failing filter")
    git(repo.root, "config", "filter.broken.smudge", "false")
    git(repo.root, "config", "filter.broken.required", "true")
    tool = Git(repo.root, tmp_path / "git.lock")
    worktree = repo.root / ".worktrees" / "001-demo-WP01"
    with pytest.raises(GitError, match=r"git worktree add .* failed: fatal: data\.bad: smudge filter broken failed"):
        tool.prepare_worktree(worktree, "001-demo-WP01", "main")
    assert not worktree.exists() and not list((repo.root / ".git" / "worktrees").iterdir())  # nothing half-made


def test_a_worktree_being_checked_out_does_not_hold_back_the_making_of_another(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    gate = tmp_path / "gate"
    (repo.root / ".gitattributes").write_text("*.slow filter=gate\n")
    (repo.root / "data.slow").write_text("checked out through a filter that waits for the gate in WP01 only\n")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "a gated filter")
    wait = f"case \"$PWD\" in *WP01) while [ ! -e {gate} ]; do sleep 0.02; done;; esac; cat"
    git(repo.root, "config", "filter.gate.smudge", f"sh -c '{wait}'")
    worktrees = repo.root / ".worktrees"
    first = threading.Thread(target=Git(repo.root, tmp_path / "git.lock").prepare_worktree,
                             args=(worktrees / "WP01", "WP01", "main"))  # fmt: skip
    first.start()
    try:
        wait_for((repo.root / ".git" / "worktrees" / "WP01" / "locked").exists, what="WP01's checkout")
        time.sleep(0.2)  # well into its checkout, which waits for the gate
        second = threading.Thread(target=Git(repo.root, tmp_path / "git.lock").prepare_worktree,
                                  args=(worktrees / "WP02", "WP02", "main"))  # fmt: skip
        second.start()
        second.join(10)
        assert not second.is_alive() and first.is_alive()  # WP02 was made while WP01 was still being checked out
    finally:
        gate.touch()
        first.join(30)
    for wp in ("WP01", "WP02"):
        assert git(worktrees / wp, "status", "--porcelain") == ""
        assert not (repo.root / ".git" / "worktrees" / wp / "locked").exists()


def test_whether_a_branch_exists_is_read_off_gits_files_as_git_answers_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    tool = Git(repo.root, tmp_path / "git.lock")
    for name in ("WP1", "packed/WP2", "xWP3", "WP4-later", "WP5"):
        git(repo.root, "branch", name, "main")
    git(repo.root, "pack-refs", "--all")  # all but the next ones packed
    git(repo.root, "branch", "WP5-loose", "main")
    git(repo.root, "symbolic-ref", "refs/heads/WP6", "refs/heads/main")  # a loose ref that is not a commit id
    asked = ["WP1", "WP2", "packed/WP2", "packed", "WP3", "xWP3", "WP4", "WP5", "WP5-loose", "WP6", "main", "nope"]
    expected = {b: subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{b}"], cwd=repo.root,
                                  capture_output=True, check=False).returncode == 0 for b in asked}  # fmt: skip
    assert {b: tool.branch_exists(b) for b in asked} == expected
    assert [b for b in asked if expected[b]] == ["WP1", "packed/WP2", "xWP3", "WP5", "WP5-loose", "WP6", "main"]
    (repo.root / ".git" / "packed-refs").unlink()
    assert not tool.branch_exists("WP1") and tool.branch_exists("WP5-loose")


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


def _worktree_with_agents_commit(tmp_path: Path, name: str, text: str) -> tuple[Git, Path, str]:
    """Return a Git, WP01's new worktree holding one commit of *name* as its agent made it, and its base."""
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    tool = Git(repo.root, tmp_path / "git.lock")
    worktree = repo.root / ".worktrees" / "001-demo-WP01"
    tool.prepare_worktree(worktree, "001-demo-WP01", "main")
    base = tool.rev("HEAD", cwd=worktree)
    (worktree / name).write_text(text)
    git(worktree, "add", name)
    git(worktree, "commit", "-q", "-m", "agent")
    return tool, worktree, base


def test_committing_what_is_left_then_diffing_sees_the_agents_commits_and_its_leftovers(tmp_path: Path) -> None:
    tool, worktree, base = _worktree_with_agents_commit(tmp_path, "committed.txt", "the agent committed this\n")
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


def test_the_implements_diff_is_kept_for_a_review_in_another_process_and_only_for_the_same_commits(
    tmp_path: Path,
) -> None:
    implementer, worktree, base = _worktree_with_agents_commit(tmp_path, "change.txt", "the agent's change\n")
    keep = tmp_path / "state" / "diffs" / "WP01.json"
    change = implementer.commit_all_then_diff(worktree, "left over", base, keep=keep)
    assert "change.txt" in change.stat and keep.exists()
    # A reviewer in another worker (a Git of its own: nothing cached) reads the kept diff instead of asking git:
    # doctored here, so what it returns shows where it came from.
    kept = json.loads(keep.read_text())
    keep.write_text(json.dumps({**kept, "patch": "from the kept file"}))
    assert Git(implementer.root, tmp_path / "git.lock").diff(worktree, base, keep=keep).patch == "from the kept file"
    # Other commits (the WP was implemented again), a smaller cut, or a file that cannot be read: git is asked,
    # and what it says is kept.
    assert Git(implementer.root, tmp_path / "git.lock").diff(worktree, base, 10, keep=keep).patch == change.patch[:10]
    (worktree / "more.txt").write_text("a second attempt\n")
    git(worktree, "add", "more.txt")
    git(worktree, "commit", "-q", "-m", "again")
    again = Git(implementer.root, tmp_path / "git.lock").diff(worktree, base, keep=keep)
    assert "more.txt" in again.stat and json.loads(keep.read_text())["head"] == again.head
    keep.write_text('{"base": "half written')
    assert Git(implementer.root, tmp_path / "git.lock").diff(worktree, base, keep=keep) == again


def test_git_is_looked_up_on_path_once_and_then_started_by_its_full_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Started by its bare name, each git process is looked for again through every folder of PATH before git's.
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    early = tmp_path / "early"
    early.mkdir()
    real = shutil.which("git")
    assert real is not None
    monkeypatch.setenv("PATH", f"{early}:{Path(real).parent}")
    tool = Git(repo.root, tmp_path / "git.lock")
    head = tool.rev("HEAD")
    impostor = early / "git"  # a git that appears on PATH ahead of the one found: not the one kittydoit runs
    impostor.write_text("#!/bin/sh\nexit 3\n")
    impostor.chmod(0o755)
    assert tool.rev("HEAD") == head
    worktree = repo.root / ".worktrees" / "001-demo-WP01"
    tool.prepare_worktree(worktree, "001-demo-WP01", "main")
    (worktree / "work.txt").write_text("work\n")
    change = tool.commit_all_then_diff(worktree, "work", head)  # its status is started on its own
    assert "work.txt" in change.stat
    fresh = Git(repo.root, tmp_path / "git.lock")  # a new one looks it up again
    assert fresh.run("rev-parse", "HEAD", check=False).returncode == 3
