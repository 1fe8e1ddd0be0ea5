"""The git work behind each WP: its worktree and branch, dependency merges, commits and the change to review.

Every command is an argv list run with stdin closed and prompts disabled. Operations that change the shared
repository (worktree and branch creation, commits in the main checkout) hold one repository-wide file lock, so
parallel doit workers never race on git; work inside a WP's own worktree needs no lock.

kittydoit's own commits skip hooks and signing (``--no-verify``, ``commit.gpgsign=false``): they record what
an agent left behind, and a hook or a passphrase prompt must not stall an unattended run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from kittydoit.process import signals_held
from kittydoit.state import locked, write_atomic

_IDENTITY = {
    "GIT_AUTHOR_NAME": "kittydoit",
    "GIT_AUTHOR_EMAIL": "kittydoit@localhost",
    "GIT_COMMITTER_NAME": "kittydoit",
    "GIT_COMMITTER_EMAIL": "kittydoit@localhost",
}
# No automatic housekeeping after kittydoit's own merges and commits (each would start more git processes).
_CONFIG = (
    "-c", "gc.auto=0", "-c", "maintenance.auto=false", "-c", "commit.gpgsign=false", "-c", "core.quotepath=false",
)  # fmt: skip
# The hooks `git merge` runs for a merge commit; with any of them, merges are made in the worktree.
_MERGE_HOOKS = ("pre-merge-commit", "prepare-commit-msg", "commit-msg", "post-merge")
# The git settings asked for once per process: those that make git's merges (Git.premerge) or a new worktree
# (Git._register) differ from what kittydoit makes itself. A repository extension other than the object format
# (relative worktree paths, reftable, per-worktree configuration) changes a worktree's files.
_MERGE_SETTING = re.compile(r"merge\.|branch\..*\.mergeoptions$")
_WORKTREE_SETTING = re.compile(r"core\.sparsecheckout|worktree\.|extensions\.(?!objectformat$)")
_SETTINGS = r"^(merge\..*|branch\..*\.mergeoptions|core\.hookspath|core\.sparsecheckout.*|worktree\..*|extensions\..*)$"
# A worktree basename git keeps as it is for the name of its folder under .git/worktrees/.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]+")
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_LOCK_EXISTS = re.compile(r"Unable to create '([^']+\.lock)': File exists")
_STATUS = ("status", "--porcelain", "--untracked-files=normal")
_DIFFS_KEPT = 8  # diffs kept per process (see Git.diff); a patch is at most 200,000 characters


class GitError(Exception):
    """A git operation for a WP failed; the message says which and how to recover."""


@dataclass(frozen=True)
class Diff:
    """The change a WP made: a stat summary and the patch, cut to a size a prompt can hold."""

    base: str
    head: str
    stat: str
    patch: str
    truncated: bool

    @property
    def empty(self) -> bool:
        """Whether git shows no change at all (the trees may still differ in what git's diff settings hide)."""
        return not self.stat.strip() and not self.patch


class Git:
    """Run git for one repository root."""

    def __init__(self, root: Path, lock_path: Path) -> None:
        self.root = root
        self.lock_path = lock_path
        self._env: dict[str, str] | None = None
        self._program = "git"  # git's full path once env() has looked it up (see there; _argv uses it)
        self._found: list[str] | None = None  # see _settings
        self._diffs: dict[tuple[str, str, int], Diff] = {}  # see diff

    # ---- plumbing ---------------------------------------------------------------------------------------

    def run(self, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``git args`` in *cwd* (the root by default); raise GitError on failure when *check*.

        A stop signal waits until git is done: git killed midway leaves locks behind (see kittydoit.repair).
        """
        with signals_held():
            result = subprocess.run(
                self._argv(*args),
                cwd=cwd or self.root,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
            )
        if check:
            self._check(args, result)
        return result

    def _check(self, args: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        """Raise GitError, saying what to do, when ``git args`` failed."""
        if result.returncode != 0:
            text = (result.stderr or result.stdout).strip()
            lock = _LOCK_EXISTS.search(text)
            if lock:  # git's own advice ("remove the file manually") does not say which file
                shown = os.path.relpath(lock.group(1), self.root)
                raise GitError(
                    f"git {' '.join(args)} failed: {shown} exists: a git command is running there, or one was "
                    f"cut off; when none is running, remove it (rm {shown}) and run again"
                )
            detail = text.splitlines()
            raise GitError(f"git {' '.join(args)} failed: {detail[-1] if detail else result.returncode}")

    def env(self) -> dict[str, str]:
        """Return the environment for git: no prompts, and an identity when the user has none configured.

        git's full path is looked up on that environment's PATH here, once: started by its bare name, every git
        process is looked for through each folder of PATH before git's, one failed exec apiece. On a PATH of twelve
        folders with git in the tenth, after 0.3 s of idling (as between agents), git's status and diff side by side
        took 4.1 ms by name and 3.6 ms by full path. A PATH that finds git through a relative folder keeps the bare
        name, as git runs in several folders.
        """
        if self._env is None:
            env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
            found = shutil.which("git", path=env.get("PATH", os.defpath))
            if found is not None and os.path.isabs(found):
                self._program = found
            probe = subprocess.run(
                [self._program, "var", "GIT_COMMITTER_IDENT"],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=False,
            )
            if probe.returncode != 0:
                env.update({k: env.get(k) or v for k, v in _IDENTITY.items()})
            self._env = env
        return self._env

    def _argv(self, *args: str) -> list[str]:
        """Return the command line of ``git args``: git by its full path (see :meth:`env`), with kittydoit's
        settings (:data:`_CONFIG`)."""
        self.env()
        return [self._program, *_CONFIG, *args]

    def ask_once(self) -> None:
        """Ask git now what each process asks it once (the identity check of :meth:`env`, the settings of
        :meth:`_settings`), so that processes forked from this one inherit the answers.

        For a parallel run, before doit forks its workers: each worker asked again at its first task, two git
        processes apiece in the burst of first tasks that a run starts with (the later of them waited for one
        another's, as the settings are read while the repository-wide lock is held), and on two cores the first eight
        agents started 30-50 ms later for it (10 wide WPs at ``-n 8``).
        """
        self.env()
        self._settings()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the repository-wide lock for operations that change shared git state."""
        with locked(self.lock_path):
            yield

    # ---- queries ----------------------------------------------------------------------------------------

    def is_repository(self) -> bool:
        if _git_dirs(self.root) is not None:  # the root holds its own .git: no git process needed to say so
            return True
        return self.run("rev-parse", "--git-dir", check=False).returncode == 0

    def common_dir(self) -> Path:
        """Return the repository's common git directory (read off ``.git`` where that is plain)."""
        dirs = _git_dirs(self.root)
        if dirs is not None:
            return dirs[1]
        return Path(self.run("rev-parse", "--path-format=absolute", "--git-common-dir").stdout.strip())

    def common_path(self, name: str) -> Path | None:
        """Return where git keeps *name* of the repository's common directory (``info/exclude``), or None."""
        try:
            return self.common_dir() / name
        except GitError:
            return None

    def current_branch(self, cwd: Path | None = None) -> str | None:
        result = self.run("symbolic-ref", "--quiet", "--short", "HEAD", cwd=cwd, check=False)
        return result.stdout.strip() or None

    def branch_exists(self, branch: str) -> bool:
        """Tell whether *branch* exists: read off git's files where they are plain (the answer for a new WP, whose
        branch is in neither a loose ref file nor ``packed-refs``), asked of git otherwise."""
        if self.tips([branch], quick=True):  # a loose ref: there
            return True
        dirs = _git_dirs(self.root)
        if dirs is not None and not (dirs[1] / "reftable").exists() and not (dirs[1] / "refs/heads" / branch).exists():
            try:
                return f" refs/heads/{branch}\n" in (dirs[1] / "packed-refs").read_text(encoding="utf-8")
            except FileNotFoundError:
                return False  # nothing was ever packed
            except (OSError, UnicodeDecodeError):
                pass
        return self.run("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0

    def rev(self, ref: str, cwd: Path | None = None) -> str:
        return self.run("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=cwd).stdout.strip()

    def head(self, worktree: Path) -> str:
        """Return the commit checked out in *worktree*.

        Read off git's own files when they are plain (``HEAD`` naming a branch whose ref is a loose file, or a
        detached ``HEAD``), which takes microseconds; asked of ``git rev-parse`` otherwise (packed refs, reftable,
        anything unexpected). A loose ref always wins over a packed one, and git replaces ref files atomically.
        """
        return _read_head(worktree) or self.rev("HEAD", cwd=worktree)

    def tips(self, branches: Sequence[str], *, quick: bool = False) -> dict[str, str]:
        """Return the commit of each of *branches* that exists.

        *quick*: read only loose ref files (microseconds; a branch whose ref is packed is left out), for a check
        that falls back to git when the answer differs from what it expects.
        """
        if quick:
            dirs = _git_dirs(self.root)
            found = {branch: dirs and _read_ref(dirs[1], f"refs/heads/{branch}") for branch in branches}
            return {branch: sha for branch, sha in found.items() if sha}
        if not branches:
            return {}
        refs = [f"refs/heads/{branch}" for branch in branches]
        listed = self.run("for-each-ref", "--format=%(refname) %(objectname)", *refs).stdout.split("\n")
        named = dict(line.split(" ", 1) for line in listed if " " in line)
        return {branch: named[ref] for branch, ref in zip(branches, refs, strict=True) if ref in named}

    def is_ancestor(self, ancestor: str, ref: str, cwd: Path | None = None) -> bool:
        return self.run("merge-base", "--is-ancestor", ancestor, ref, cwd=cwd, check=False).returncode == 0

    def same_tree(self, a: str, b: str, cwd: Path | None = None) -> bool:
        trees = self.run("rev-parse", f"{a}^{{tree}}", f"{b}^{{tree}}", cwd=cwd).stdout.split()
        return trees[0] == trees[1]

    # ---- a WP's worktree --------------------------------------------------------------------------------

    def prepare_worktree(self, path: Path, branch: str, start: str) -> bool:
        """Make sure *path* is a worktree on *branch*, creating the branch from *start* when it is new.

        Return True when the worktree was made here, on a branch just created from *start*: it then holds
        nothing but *start*. The common case, a new WP, takes two git calls (see :meth:`_register`), and the
        repository-wide lock is held only while the worktree is registered, not while its files are written.
        """
        with self.lock():
            if (path / ".git").exists():
                current = self.run("rev-parse", "--abbrev-ref", "HEAD", cwd=path, check=False).stdout.strip()
                if current != branch:
                    raise GitError(
                        f"worktree {path} is on branch '{current}', not '{branch}'; "
                        f"switch it back (git -C {path} switch {branch}) or remove it"
                    )
                return False
            if path.exists() and any(path.iterdir()):
                raise GitError(f"{path} exists but is not a git worktree; move it away and run again")
            made = not path.exists()
            admin = self._register(path, branch, start, made)
            if admin is None:
                return self._add_with_git(path, branch, start)
        if self._check_out(path, branch, admin, made):
            return True
        with self.lock():
            return self._add_with_git(path, branch, start)

    def _add_with_git(self, path: Path, branch: str, start: str) -> bool:
        """Make the worktree with ``git worktree add`` (see :meth:`prepare_worktree`; the lock held)."""
        if self.run("worktree", "add", "-b", branch, str(path), start, check=False).returncode == 0:
            return True
        new = not self.branch_exists(branch)
        add = ["worktree", "add", "-b", branch, str(path), start] if new else ["worktree", "add", str(path), branch]
        # A worktree folder deleted by hand stays registered until pruned, and then `add` refuses it.
        # Pruning reads every worktree of the repository, so it is done only when `add` fails.
        if new or self.run(*add, check=False).returncode != 0:
            self.run("worktree", "prune")
            self.run(*add)
        return new

    def _register(self, path: Path, branch: str, start: str, made: bool) -> Path | None:
        """Register *path* (an empty folder, or none: *made* tells) as a new worktree on a new *branch* at *start*
        as ``git worktree add -b`` does, but without reading every registered worktree first, and return its folder
        under ``.git/worktrees/``, locked as "initializing" until :meth:`_check_out` has written its files; None,
        having changed nothing, where that is not plain here (the lock held).

        ``git worktree add`` checks that neither the path nor the branch is some other worktree's, and to do so
        reads the files of every worktree of the repository: 5,000 files and 35 ms with 500 WPs' worktrees, the one
        cost per WP that grew with the feature. Here a new branch and an unregistered path (the lock held, both
        checked) need no such check. So the branch is created by ``git update-ref`` (which refuses a branch that
        exists), and the worktree's files under ``.git/worktrees/<name>`` are written as git writes them
        (gitrepository-layout(5)). A run killed before the checkout is done leaves what a cut-off
        ``git worktree add`` leaves, and kittydoit.repair mends it. ``git worktree add`` is left to do it all where
        git settings or hooks could make it do more (:meth:`_plain_worktrees`), or where the worktree's name is not
        one git keeps as it is.
        """
        dirs = _git_dirs(self.root)
        if dirs is None or not PLAIN_NAME.fullmatch(path.name) or not self._plain_worktrees():
            return None
        admin = dirs[1] / "worktrees" / path.name
        if admin.exists():  # a stale registration of this name: git's way picks another name
            return None
        created = self.run("update-ref", "-m", f"branch: Created from {start}", f"refs/heads/{branch}",
                           f"{start}^{{commit}}", "", check=False)  # fmt: skip
        if created.returncode != 0:
            return None
        try:
            admin.mkdir(parents=True)
            (admin / "locked").write_text("initializing\n", encoding="utf-8")
            path.mkdir(parents=True, exist_ok=True)
            (admin / "gitdir").write_text(f"{os.path.realpath(path / '.git')}\n", encoding="utf-8")
            (path / ".git").write_text(f"gitdir: {os.path.realpath(admin)}\n", encoding="utf-8")
            (admin / "HEAD").write_text(f"ref: refs/heads/{branch}\n", encoding="utf-8")
            (admin / "commondir").write_text("../..\n", encoding="utf-8")
        except OSError:
            self._unregister(path, branch, admin, made)
            return None
        return admin

    def _check_out(self, path: Path, branch: str, admin: Path, made: bool) -> bool:
        """Write the files of the worktree :meth:`_register` registered, and unlock it; False, having undone it all,
        when that fails (git's way then says what is wrong). The lock is not needed: git works only on this
        worktree's own files and index, and ``git worktree prune`` leaves a locked worktree alone."""
        try:
            self.run("reset", "--hard", "--quiet", "--no-recurse-submodules", cwd=path)
            (admin / "locked").unlink()
        except (OSError, GitError):
            with self.lock():
                self._unregister(path, branch, admin, made)
            return False
        return True

    def _unregister(self, path: Path, branch: str, admin: Path, made: bool) -> None:
        """Undo :meth:`_register`: *path* as it was (removed when *made* there), no folder under .git/worktrees/,
        no *branch*."""
        shutil.rmtree(admin, ignore_errors=True)
        if made:
            shutil.rmtree(path, ignore_errors=True)
        else:
            (path / ".git").unlink(missing_ok=True)
        self.run("update-ref", "-d", f"refs/heads/{branch}", check=False)

    def premerge(self, start: str, branches: Sequence[str], into: str) -> tuple[str, int]:
        """Return the commit a new worktree of *into* holds once *branches* are merged one by one into *start*, made
        without a worktree, and how many of *branches* that takes in.

        Each merge is what ``git merge`` makes (a fast-forward where it can be one, else a merge commit with the
        same parents, tree and message), but from ``git merge-base``, ``git merge-tree`` and ``git commit-tree``:
        no files are written until the worktree is checked out, once, at the end. (Merged in the worktree, each
        merge wrote files and re-read every file the checkout had just written.) It stops before a branch whose
        merge conflicts or has no common history, which the worktree merge then reports as before; and it takes
        none where git settings or hooks could make ``git merge`` do otherwise (``merge.*``,
        ``branch.<name>.mergeoptions``, ``core.hooksPath``, a hook ``git merge`` runs).
        """
        head = self.tips([start], quick=True).get(start) or self.rev(start)
        if not self._plain_merges():
            return head, 0
        tips = self.tips(branches)
        for count, branch in enumerate(branches):
            tip = tips.get(branch)
            if tip is None:
                continue  # no such branch: a dependency done before kittydoit (git.merge says so too)
            common = self.run("merge-base", head, tip, check=False).stdout.strip()
            if common == tip:
                continue  # in already
            if common == head:
                head = tip  # a fast-forward
                continue
            merged = self.run("merge-tree", "--write-tree", "--no-messages", head, tip, check=False)
            if not common or merged.returncode != 0:
                return head, count
            message = f"kittydoit: merge {branch} into {into}"
            head = self.run(
                "commit-tree", merged.stdout.split()[0], "-p", head, "-p", tip, "-m", message
            ).stdout.strip()
        return head, len(branches)

    def _plain_merges(self) -> bool:
        """Tell whether ``git merge`` here does what :meth:`premerge` does."""
        settings = self._settings()
        return not any(_MERGE_SETTING.match(key) for key in settings) and not self._hooks(*_MERGE_HOOKS)

    def _plain_worktrees(self) -> bool:
        """Tell whether ``git worktree add`` here does no more than :meth:`_register` and :meth:`_check_out` do: no
        hook, no sparse checkout, no per-worktree configuration and no repository extension that changes a
        worktree's files."""
        settings = self._settings()
        dirs = _git_dirs(self.root)
        sparse = dirs is not None and (dirs[1] / "info" / "sparse-checkout").exists()
        return (
            not any(_WORKTREE_SETTING.match(key) for key in settings)
            and not sparse
            and not self._hooks("post-checkout")
        )

    def _hooks(self, *names: str) -> bool:
        """Tell whether the repository has any of the hooks *names* (or settings say hooks live elsewhere)."""
        dirs = _git_dirs(self.root)
        return (
            dirs is None
            or "core.hookspath" in self._settings()
            or any((dirs[1] / "hooks" / name).exists() for name in names)
        )

    def _settings(self) -> list[str]:
        """Return the names of the git settings that make git's merges or worktrees differ from kittydoit's own
        (asked once per process; section and key in lower case, as git prints them)."""
        if self._found is None:
            found = self.run("config", "--get-regexp", _SETTINGS, check=False).stdout.splitlines()
            self._found = [line.split(" ", 1)[0] for line in found if line]
        return self._found

    def merge(self, worktree: Path, branch: str, into: str) -> bool:
        """Merge *branch* into the worktree's branch *into*; False when there is no branch *branch*.

        Merging a branch already merged changes nothing. A conflict aborts the merge and raises GitError.
        """
        result = self.run(
            "merge", "--no-edit", "-m", f"kittydoit: merge {branch} into {into}", branch,
            cwd=worktree, check=False,
        )  # fmt: skip
        if result.returncode == 0:
            return True
        if not self.branch_exists(branch):
            return False  # git refused before touching anything: "not something we can merge"
        conflicted = self.run("diff", "--name-only", "--diff-filter=U", cwd=worktree, check=False)
        self.run("merge", "--abort", cwd=worktree, check=False)
        files = ", ".join(conflicted.stdout.split()) or (result.stderr or result.stdout).strip()
        raise GitError(
            f"merging branch {branch} into {into} conflicts ({files}); merge it by hand in {worktree}, "
            "commit, then run again"
        )

    def base(self, worktree: Path, target: str, dependencies: Sequence[str]) -> str:
        """Return a commit holding the target branch (as the WP branch forked from it) plus every dependency.

        The WP's own change is the difference between this commit and its HEAD. It is computed without
        touching any worktree (``git merge-tree``), so it stays right after dependencies are re-merged.
        """
        base = self.run("merge-base", target, "HEAD", cwd=worktree).stdout.strip()
        for branch in dependencies:
            tip = self.rev(branch, cwd=worktree)
            if self.is_ancestor(tip, base, cwd=worktree):
                continue
            if self.is_ancestor(base, tip, cwd=worktree):
                base = tip
                continue
            merged = self.run("merge-tree", "--write-tree", base, tip, cwd=worktree, check=False)
            if merged.returncode != 0:
                raise GitError(f"dependency branches conflict when merged together ({branch})")
            tree = merged.stdout.split()[0]
            base = self.run(
                "commit-tree", tree, "-p", base, "-p", tip, "-m", "kittydoit: review base", cwd=worktree
            ).stdout.strip()
        return base

    def commit_all(self, worktree: Path, message: str) -> bool:
        """Commit everything uncommitted in *worktree*; False when there was nothing to commit."""
        if not self.run(*_STATUS, cwd=worktree).stdout.strip():
            return False  # one git call in the common case: the agent committed, or nothing was left
        return self._commit_leftovers(worktree, message)

    def commit_all_then_diff(self, worktree: Path, message: str, base: str, *, keep: Path | None = None) -> Diff:
        """Commit everything uncommitted in *worktree* (as :meth:`commit_all`), then return the diff from *base*
        (kept in *keep* too: see :meth:`diff`).

        In the usual case the agent left nothing to commit, and git's status and the diff of the agent's own
        commits run side by side: one git process less between an implementer's exit and its reviewer's start.
        """
        with signals_held():
            status = subprocess.Popen(
                self._argv(*_STATUS), cwd=worktree, env=self.env(), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                diff = self.diff(worktree, base, keep=keep)
            finally:
                out, err = status.communicate()
        self._check(_STATUS, subprocess.CompletedProcess(status.args, status.returncode, out, err))
        if out.strip() and self._commit_leftovers(worktree, message):
            return self.diff(worktree, base, keep=keep)
        return diff

    def _commit_leftovers(self, worktree: Path, message: str) -> bool:
        """Commit what status showed uncommitted in *worktree*; False when git ignores all of it after all."""
        self.run("add", "-A", cwd=worktree)
        if self.run("diff", "--cached", "--quiet", cwd=worktree, check=False).returncode == 0:
            return False  # only changes git ignores after all (say, a file mode with core.fileMode off)
        self.run("commit", "--no-verify", "-q", "-m", message, cwd=worktree)
        return True

    def diff(self, worktree: Path, base: str, limit: int = 200_000, *, keep: Path | None = None) -> Diff:
        """Return the change from *base* to the worktree's HEAD, the patch cut at *limit* characters.

        The diff of two commits never changes, so the last few are kept for this process, and the last one in the
        file *keep* (one per WP) for the others: the implement that checks its agent changed something and the
        review that shows the change ask git once, in the same doit worker or not (a git diff off the hand-off
        between the two agents, 3-4 ms, in about half of them at ``-n 4``). A *keep* that is unreadable or holds
        another pair of commits is not used; one that cannot be written is left as it is.
        """
        head = self.head(worktree)
        key = (base, head, limit)
        if key in self._diffs:
            return self._diffs[key]
        diff = _kept_diff(keep, key) if keep is not None else None
        if diff is None:
            both = self.run("diff", "--patch-with-stat", base, head, cwd=worktree).stdout
            start = both.find("diff --git ")
            stat, patch = (both[:start], both[start:]) if start >= 0 else (both, "")
            truncated = len(patch) > limit
            diff = Diff(base=base, head=head, stat=stat, patch=patch[:limit], truncated=truncated)
            if keep is not None:
                with contextlib.suppress(OSError):  # only a git process saved later
                    keep.parent.mkdir(parents=True, exist_ok=True)
                    write_atomic(keep, json.dumps({"limit": limit, **asdict(diff)}))
        while len(self._diffs) >= _DIFFS_KEPT:
            del self._diffs[next(iter(self._diffs))]  # the oldest
        self._diffs[key] = diff
        return diff

    # ---- the main checkout ------------------------------------------------------------------------------

    def commit_paths(self, paths: Sequence[Path], message: str) -> None:
        """Commit exactly *paths* in the main checkout (other staged changes stay as they are)."""
        names = [os.path.relpath(p, self.root) for p in paths]
        with self.lock():
            self.run("add", "-A", "--", *names)
            if self.run("diff", "--cached", "--quiet", "--", *names, check=False).returncode == 0:
                return
            self.run("commit", "--no-verify", "-q", "-m", message, "--", *names)


def _read_head(worktree: Path) -> str | None:
    """Return the commit of *worktree*'s HEAD from git's files, or None when they are not plain (see Git.head)."""
    dirs = _git_dirs(worktree)
    if dirs is None:
        return None
    try:
        head = (dirs[0] / "HEAD").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if head.startswith("ref: refs/heads/"):
        return _read_ref(dirs[1], head[len("ref: ") :])
    return head if _SHA.fullmatch(head) else None


def _git_dirs(worktree: Path) -> tuple[Path, Path] | None:
    """Return the git directory of *worktree* and the repository's common one, or None when that is not plain."""
    dot_git = worktree / ".git"
    if dot_git.is_dir():
        return dot_git, dot_git
    try:
        text = dot_git.read_text(encoding="utf-8").strip()
        if not text.startswith("gitdir: "):
            return None
        git_dir = (worktree / text[len("gitdir: ") :]).resolve()
        return git_dir, (git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    except (OSError, UnicodeDecodeError):
        return None


def _read_ref(common: Path, ref: str) -> str | None:
    """Return the commit of *ref* from its loose file in the git directory *common*, or None (not a loose ref)."""
    try:
        sha = (common / ref).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return sha if _SHA.fullmatch(sha) else None


def _kept_diff(keep: Path, key: tuple[str, str, int]) -> Diff | None:
    """Return the diff kept in *keep* when it is the one of *key* (base, head, limit); else None (see Git.diff)."""
    try:
        data = json.loads(keep.read_text(encoding="utf-8"))
        if (data["base"], data["head"], data["limit"]) != key:
            return None
        return Diff(base=key[0], head=key[1], stat=str(data["stat"]), patch=str(data["patch"]),
                    truncated=bool(data["truncated"]))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None
