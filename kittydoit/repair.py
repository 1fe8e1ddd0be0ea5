"""Repair what a killed run left in a WP's own git worktree and branch, before the WP's next step.

A run killed in the middle of a git command leaves git's markers of an unfinished operation: a worktree still
``locked`` as "initializing" by ``git worktree add`` (or by kittydoit, which makes a WP's worktree as git does:
see kittydoit.git.Git._register), an ``index.lock``, a ``HEAD.lock`` or a lock on the WP's
branch ref, a ``MERGE_HEAD`` of a merge that never committed. git refuses to go on while they are there, and tells
the user to remove them by hand. kittydoit removes them itself, and says so in the WP's log, only when all hold:

- they are in what kittydoit owns: the WP's worktree ``.worktrees/<feature>-WPxx`` (its files under
  ``.git/worktrees/``) and its branch ``<feature>-WPxx``; never anything of the user's own checkout;
- the run that left them is provably gone: this run holds the feature's run lock;
- no git process is working in that worktree or on that branch.

A half-made worktree (locked as initializing, not on its branch) is removed and made again from its branch. A merge
cut off while kittydoit merged a WP's dependencies is undone back to the commit the worktree was at before the
merges began, which kittydoit notes first (the worktree was clean then: what it left uncommitted was committed), and
the merges are made again. A merge that is not kittydoit's (``MERGE_MSG`` not ``kittydoit: merge ...``), say one
a person is resolving by hand, is never touched; one without a ``MERGE_MSG`` yet (git writes it a moment after
``MERGE_HEAD``) is kittydoit's only when kittydoit noted that it was merging that WP's dependencies. When something
cannot be repaired, the WP fails with a message naming the file and the command that fixes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from kittydoit.context import Context
from kittydoit.git import PLAIN_NAME, GitError
from kittydoit.session import running_pid
from kittydoit.state import read_json, write_atomic

_OURS = "kittydoit: merge "  # how kittydoit's merge messages start (see kittydoit.git.Git.merge)


@dataclass(frozen=True)
class _Where:
    """The git files of one WP's worktree and branch."""

    worktree: Path
    branch: str
    common: Path  # the repository's .git folder
    admin: Path | None  # the worktree's folder under .git/worktrees/, when it is registered

    def locks(self) -> list[Path]:
        found = [self.common / "refs" / "heads" / f"{self.branch}.lock"]
        if self.admin is not None:
            found += [self.admin / "index.lock", self.admin / "HEAD.lock"]
        return [path for path in found if path.exists()]

    def half_made(self) -> bool:
        """Tell whether the making of the worktree was cut off: it is still locked as it is while it is made.

        git (and kittydoit: see kittydoit.git.Git._register) locks a worktree while it makes it, with the reason
        "initializing" (translated in other locales, so a lock on a worktree that has no index yet counts too); a
        lock a person set on a finished worktree does not.
        """
        if self.admin is None:
            return False
        try:
            reason = (self.admin / "locked").read_text(encoding="utf-8").strip()
        except OSError:
            return False
        return reason == "initializing" or not (self.admin / "index").exists()


def merge_started(ctx: Context, wp_id: str, head: str) -> None:
    """Note that kittydoit starts merging the WP's dependencies into its clean worktree, now at *head*."""
    journal = _journal(ctx, wp_id)
    journal.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(journal, json.dumps({"head": head}) + "\n")


def merge_done(ctx: Context, wp_id: str) -> None:
    """Note that the WP's dependency merges are done."""
    _journal(ctx, wp_id).unlink(missing_ok=True)


def repair(ctx: Context, wp_id: str) -> list[str]:
    """Clean up git leftovers of a killed run in the WP's worktree and branch; return lines saying what was done.

    Raise GitError naming the file and the fix when leftovers are there that must not be touched.
    """
    where = _where(ctx, wp_id)
    merge_head = where.admin / "MERGE_HEAD" if where.admin is not None else None
    merging = merge_head is not None and merge_head.exists()
    half_made, locks = where.half_made(), where.locks()
    if not (half_made or locks or merging):
        merge_done(ctx, wp_id)  # a note of merges a killed run began is void once git shows nothing cut off
        return []
    shown = ctx.paths.rel(where.worktree)
    found = [where.admin / "locked"] if half_made and where.admin else []
    found += locks + ([merge_head] if merging and merge_head else [])
    first = ctx.paths.rel(found[0])
    if merging and merge_head is not None and not _ours(merge_head, _journal(ctx, wp_id).exists()):
        raise GitError(
            f"{shown} has a merge in progress that kittydoit did not start ({ctx.paths.rel(merge_head)}); finish "
            f"it (git -C {shown} commit) or abort it (git -C {shown} merge --abort), then run again"
        )
    holder = running_pid(ctx.paths)
    if holder != ctx.main_pid:
        raise GitError(
            f"{first} was left by a git command that did not finish, and this run cannot prove the run that left it "
            f"is gone; when no kittydoit or git command is running, remove it (rm {first}) and run again"
        )
    busy = _git_processes(where)
    if busy:
        pid, command = busy[0]
        raise GitError(
            f"{first} is there and git (pid {pid}: {command}) is still working in {shown}; let it finish, "
            f"or stop it and remove the file (rm {first}), then run again"
        )
    with ctx.git.lock():
        done = _repair(ctx, wp_id, where, half_made=half_made, merging=merging)
    merge_done(ctx, wp_id)
    return done


def _repair(ctx: Context, wp_id: str, where: _Where, *, half_made: bool, merging: bool) -> list[str]:
    shown = ctx.paths.rel(where.worktree)
    done: list[str] = []
    if half_made and where.admin is not None:
        shutil.rmtree(where.worktree, ignore_errors=True)
        shutil.rmtree(where.admin, ignore_errors=True)
        done.append(f"repaired: removed the half-made worktree {shown} (its checkout cut off by a killed run)")
    for lock in where.locks():
        lock.unlink(missing_ok=True)
        done.append(f"repaired: removed {ctx.paths.rel(lock)} (left by a git command cut off by a killed run)")
    if half_made:
        return done
    journal = read_json(_journal(ctx, wp_id))
    if journal and journal.get("head"):
        ctx.git.run("reset", "-q", "--hard", str(journal["head"]), cwd=where.worktree)
        done.append(f"repaired: reset {shown} to {str(journal['head'])[:12]}, where it was before the dependency "
                    "merges a killed run cut off; they are made again")  # fmt: skip
    elif merging:
        ctx.git.run("merge", "--abort", cwd=where.worktree)
        done.append(f"repaired: aborted the merge a killed run left in {shown}")
    return done


def _where(ctx: Context, wp_id: str) -> _Where:
    worktree = ctx.paths.worktree(wp_id)
    common = ctx.git.common_dir()
    admin = None
    with contextlib.suppress(OSError, ValueError):  # no .git file: the worktree was never (fully) made
        text = (worktree / ".git").read_text(encoding="utf-8").strip()
        admin = Path(text.split("gitdir:", 1)[1].strip())
    if admin is None:
        admin = _registered(common / "worktrees", worktree)
    if admin is not None and not admin.is_absolute():
        admin = (worktree / admin).resolve()
    return _Where(worktree, ctx.paths.branch(wp_id), common, admin if admin and admin.exists() else None)


def _registered(admins: Path, worktree: Path) -> Path | None:
    """Return the folder under ``.git/worktrees/`` whose ``gitdir`` names *worktree*, if there is one.

    git names that folder after the worktree's basename (a number added on a clash), so only folders so named
    are read: reading every worktree's ``gitdir`` cost each WP's step time in proportion to the number of WPs.
    A basename git may rewrite for the folder's name (not a plain ``[A-Za-z0-9_-]`` name) is looked for in all.
    """
    name, target, found = worktree.name, str(worktree / ".git"), None
    every = PLAIN_NAME.fullmatch(name) is None
    with contextlib.suppress(OSError):  # no .git/worktrees/: no worktree was ever added
        for folder in sorted(entry for entry in os.listdir(admins) if every or entry.startswith(name)):
            with contextlib.suppress(OSError):
                if (admins / folder / "gitdir").read_text(encoding="utf-8").strip() == target:
                    found = admins / folder
    return found


def _journal(ctx: Context, wp_id: str) -> Path:
    return ctx.paths.state / "merging" / f"{wp_id}.json"


def _ours(merge_head: Path, journaled: bool) -> bool:
    """Tell whether the merge in progress is kittydoit's: its message says so, or there is no message yet while
    kittydoit's journal says it was merging the WP's dependencies (git writes MERGE_HEAD a moment before MERGE_MSG,
    and a person's merge always has both)."""
    try:
        return (merge_head.parent / "MERGE_MSG").read_text(encoding="utf-8").startswith(_OURS)
    except FileNotFoundError:
        return journaled
    except OSError:
        return False


def _git_processes(where: _Where) -> list[tuple[int, str]]:
    """Return the git processes working in the worktree or naming it or its branch (pid, command line)."""
    found = []
    inside = str(where.worktree)
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if not Path(f"/proc/{entry}/comm").read_text().startswith("git"):
                continue
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue  # it ended, or is not ours to look at
        if cwd == inside or cwd.startswith(inside + os.sep) or inside in command or where.branch in command:
            found.append((int(entry), command.strip()))
    return found
