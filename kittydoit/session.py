"""What one ``doit run`` of a feature holds while it works: the run lock, the run state, signals, leftovers.

doit calls the reporter's ``initialize`` in the main process before any worker starts, and ``complete_run``
at the end, whatever happened; kittydoit's reporter opens and closes the session there.

- The run lock (``flock`` on ``.kittify/kittydoit/<feature>/run.lock``) refuses a second run of the same
  feature. doit's worker processes inherit it, so the lock is free only when every process of a run is gone.
- SIGINT, SIGTERM and SIGHUP (the terminal closed) become KeyboardInterrupt, once: doit then saves its database
  and stops its workers, and each worker has its agent stopped before it exits (:mod:`kittydoit.workers`). A
  second one makes the stop hurry: workers still stopping are killed, and their agents with them. The run is
  recorded as ``aborted`` with the reason (Ctrl-C, SIGTERM, SIGHUP, ``kittydoit abort``). Python drops an
  exception a signal handler raises inside some callbacks (a fork hook, a finalizer), and some code must not be cut
  in half by one (:func:`kittydoit.workers.interruptible`): a stop that came there is raised at the reporter's next
  event, or asked for again (:meth:`Session.stop_lost`, :meth:`Session.ask_again`). A signal another thread took
  reaches the main thread at once (:class:`kittydoit.process.SignalRelay`).
- Agents die with their worker or orchestrator (:mod:`kittydoit.supervisor`); an agent process group recorded
  in ``pids/`` that still outlived them is stopped before work starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import multiprocessing.util
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from types import FrameType
from typing import IO, Any

from kittydoit import workers
from kittydoit.context import Context, Paths, utc_now
from kittydoit.errors import RunLockedError
from kittydoit.process import HELD_SIGNALS, SignalRelay, discard_spare, stop_recorded
from kittydoit.speckitty import INSTALL, SpecKittyFailure, SpecKittyMissing
from kittydoit.state import RunState, read_json

log = logging.getLogger(__name__)

# Runtime files kittydoit writes inside the repository; kept out of `git status` through .git/info/exclude.
_EXCLUDES = ("/.worktrees/", "/.kittify/logs/", "/.kittify/kittydoit/", "/.kittify/reports/",
             "/.kittify/orchestration-state.json*")  # fmt: skip
_FLUSH_EVERY = 0.5  # seconds between writes of orchestration-state.json during a run, at least
# ... and at most this share of the run's time: the file holds every WP, so each write costs more the more WPs
# there are (10 ms at 500); at a fixed pace, writing it would cost each WP in proportion to the number of WPs.
_FLUSH_SHARE = 0.01
_AGAIN = signal.SIGUSR2  # sent to the main thread only, to raise a KeyboardInterrupt that was lost


class Session:
    """The run lock, run state and process hygiene of one run."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.state = RunState(ctx.paths.root, ctx.paths.feature, ctx.paths.state, ctx.clock)
        self.run_id: str | None = None
        self.stop_reason: str | None = None
        self.hurry = False  # asked to stop a second time: stop at once
        self.stopping = False  # the run has begun to stop (the reporter's complete_run)
        self._asked = 0.0
        self._forking = False
        self.stopped_leftovers: list[int] = []
        self._lock: IO[str] | None = None
        self._pid = os.getpid()
        self._previous: dict[int, Any] = {}
        self._relay: SignalRelay | None = None
        self._pending: dict[str, tuple[str | None, str | None]] = {}
        self._flushed = 0.0
        self._flush_every = _FLUSH_EVERY
        self.monotonic = time.monotonic  # the clock that paces state-file writes (a test's own clock in tests)
        self.speckitty_note: str | None = None

    def start(self, wps: Mapping[str, str]) -> None:
        """Take the run lock, stop leftovers of a killed run, record the run, and take over SIGINT/SIGTERM/SIGHUP."""
        paths = self.ctx.paths
        paths.state.mkdir(parents=True, exist_ok=True)
        self._lock = acquire_run_lock(paths)
        paths.abort_request.unlink(missing_ok=True)
        self.stopped_leftovers = stop_recorded(paths.pids)
        if self.stopped_leftovers:
            log.warning("stopped %d agent process group(s) left by a killed run", len(self.stopped_leftovers))
        self._start_speckitty(wps)
        self.run_id = self.state.start(wps=wps, pid=os.getpid(), argv=sys.argv)
        self._pid = os.getpid()
        for sig in HELD_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        self._previous[_AGAIN] = signal.signal(_AGAIN, self._on_ask_again)
        self._relay = SignalRelay()
        multiprocessing.util.register_after_fork(self, Session._in_worker)  # doit's -n workers
        # Python drops what a handler raises inside fork hooks (logging has some): hold the KeyboardInterrupt
        # while doit forks a worker; the reporter raises it at the next event (see stop_lost).
        this = weakref.ref(self)
        os.register_at_fork(before=lambda: _forking(this, True), after_in_parent=lambda: _forking(this, False))
        _exclude_runtime_files(self.ctx)

    def _start_speckitty(self, wps: Mapping[str, str]) -> None:
        """For a 3.x mission: check spec-kitty's contract and the agents' policies, and start its server.

        Refusals (spec-kitty missing or too old, a policy spec-kitty would refuse) stop the run here, before any
        agent starts.
        """
        speckitty = self.ctx.speckitty
        if speckitty is None or all(self.ctx.feature.wps[w].lane in self.ctx.feature.finished for w in wps):
            return  # a 0.x feature, or nothing the run could change (starting spec-kitty costs seconds)
        try:
            self.speckitty_note = speckitty.start(
                self.ctx.paths.logs / "spec-kitty-server.log", plain_flag=self.ctx.paths.state / "spec-kitty-plain"
            )
            from kittydoit.lanes.orchestrated import refused_policies  # noqa: PLC0415  # 3.x only

            problems = refused_policies(speckitty, self.ctx.config)
        except SpecKittyFailure as failure:  # spec-kitty is there but broken: nothing can move a lane
            speckitty.close()
            raise SpecKittyMissing(None, f"{failure}; fix spec-kitty (`spec-kitty --version`) or {INSTALL}") from None
        if problems:
            speckitty.close()
            raise SpecKittyMissing(self.ctx.config.path, "; ".join(problems))

    def wp(self, wp_id: str, status: str | None = None, reason: str | None = None, *, write: bool = True) -> None:
        """Record WP news in the state file: at most every half second, less often when writing it takes over
        1 % of that (the last news at the end of the run). The per-WP records that ``kittydoit status`` also
        reads are always current. Without *write* the news waits for the next :meth:`flush_due` (the reporter
        gives news of a finished task so, while doit is about to hand out the next one)."""
        self._pending[wp_id] = (status, reason)
        if self.ctx.speckitty is not None:
            self.ctx.speckitty.compare()  # the plain command's contract-version, once it has answered
        if write:
            self.flush_due()

    def flush_due(self) -> None:
        """Write the pending news when the last write is long enough ago (see :meth:`wp`)."""
        if self._pending and self.monotonic() - self._flushed >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        """Write pending WP news to the state file."""
        pending, self._pending = self._pending, {}
        if pending:
            started = self.monotonic()
            self.state.wps(pending)  # one write for all: a no-op rerun of 500 WPs has 500 pieces of news
            self._flush_every = max(_FLUSH_EVERY, (self.monotonic() - started) / _FLUSH_SHARE)
        self._flushed = self.monotonic()

    def close(self, status: str) -> None:
        """Record the end of the run, release the run lock and give the signals back."""
        try:
            if self.run_id is not None:
                self.flush()
                if status == "aborted" and not self.stop_reason:
                    aborted = self.ctx.paths.abort_request.exists()
                    self.stop_reason = "aborted with `kittydoit abort`" if aborted else "interrupted"
                self.state.finish("aborted" if self.stop_reason else status, self.stop_reason)
        finally:
            discard_spare()  # with -n 1 the agents ran here
            if self.ctx.speckitty is not None:
                self.ctx.speckitty.close()
            if self._relay is not None:
                self._relay.close()
                self._relay = None
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            self._previous = {}
            if self._lock is not None:
                self._lock.close()
                self._lock = None

    def stop_lost(self, after: float = 0.0) -> bool:
        """Tell whether a stop was asked for (more than *after* seconds ago) and the run has not begun to stop."""
        return self.stop_reason is not None and not self.stopping and time.monotonic() - self._asked > after

    def ask_again(self) -> None:
        """From another thread: interrupt the main thread again, for a stop whose KeyboardInterrupt was lost."""
        signal.pthread_kill(threading.main_thread().ident or 0, _AGAIN)

    def reap_workers(self) -> list[int]:
        """Wait for doit's workers to stop their agents (the grace period and a second), then kill what is left."""
        return workers.reap(self.ctx.runner.grace_seconds, lambda: self.hurry)

    def _in_worker(self) -> None:
        if self._relay is not None:
            self._relay.forget()  # the orchestrator's; the worker makes its own
        workers.adopt(self._pid)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:
            return  # a doit worker between its fork and workers.adopt: the orchestrator stops the run
        if self.stop_reason:
            self.hurry = True  # asked again: workers still stopping are killed (see reap_workers)
            return
        if signum == signal.SIGINT:
            self.stop_reason = "interrupted (Ctrl-C)"
        elif self.ctx.paths.abort_request.exists():
            self.stop_reason = "aborted with `kittydoit abort`"
        elif signum == signal.SIGHUP:
            self.stop_reason = "stopped by SIGHUP (the terminal was closed)"
        else:
            self.stop_reason = "stopped by SIGTERM"
        self._asked = time.monotonic()
        if not self._forking and workers.interruptible(frame):
            raise KeyboardInterrupt

    def _on_ask_again(self, signum: int, frame: FrameType | None) -> None:
        del signum, frame
        if self.stop_lost():
            raise KeyboardInterrupt


def _forking(session: weakref.ref[Session], now: bool) -> None:
    found = session()
    if found is not None:
        found._forking = now  # the fork hooks are the session's own


def acquire_run_lock(paths: Paths) -> IO[str]:
    """Take the feature's run lock, or raise RunLockedError naming the run that holds it."""
    paths.state.mkdir(parents=True, exist_ok=True)
    handle = paths.run_lock.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = lock_holder(handle.read())
        handle.close()
        shown = f" (pid {holder})" if holder else ""
        raise RunLockedError(
            paths.rel(paths.run_lock),
            f"another kittydoit run{shown} is working on {paths.feature}; wait for it to finish, "
            "or stop it with `kittydoit abort`",
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid()}))
    handle.flush()
    return handle


def running_pid(paths: Paths) -> int | None:
    """Return the pid of the orchestrator running the feature, or None when no run holds the lock."""
    if not paths.run_lock.exists():
        return None
    with paths.run_lock.open("r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return lock_holder(handle.read()) or -1
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def lock_holder(text: str) -> int | None:
    with contextlib.suppress(ValueError, TypeError, KeyError):  # an old or empty lock file says nothing
        return int(json.loads(text)["pid"])
    return None


def _exclude_runtime_files(ctx: Context) -> None:
    """Add kittydoit's runtime folders to .git/info/exclude, once."""
    path = ctx.git.common_path("info/exclude")
    if path is None:
        return
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    missing = [line for line in _EXCLUDES if line not in text.splitlines()]
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = "" if not text or text.endswith("\n") else "\n"
        path.write_text(text + prefix + "# kittydoit runtime files\n" + "\n".join(missing) + "\n", encoding="utf-8")


def abort(paths: Paths, git: Any, *, remove_worktrees: bool, timeout: float = 60.0) -> list[str]:
    """Stop the run of a feature from another terminal; return lines saying what was done.

    The orchestrator gets SIGTERM (as from Ctrl-C, it stops its workers, which stop their agents' process
    groups, and records the run as aborted). If it is still there after *timeout* seconds it is killed, and any
    agent process group left behind is stopped. Worktrees are kept unless *remove_worktrees*.
    """
    lines: list[str] = []
    pid = running_pid(paths)
    if pid is None:
        lines.append(f"no kittydoit run is going for {paths.feature}")
    else:
        paths.abort_request.parent.mkdir(parents=True, exist_ok=True)
        paths.abort_request.write_text(str(os.getpid()))
        if pid > 0:
            with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
                os.kill(pid, signal.SIGTERM)
        if not _wait_unlocked(paths, timeout) and pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            lines.append(f"the orchestrator (pid {pid}) did not stop within {timeout:.0f} s: killed it")
            _wait_unlocked(paths, timeout)
        lines.append(f"stopped the run of {paths.feature} (orchestrator pid {pid})")
    leftovers = stop_recorded(paths.pids)
    if leftovers:
        lines.append(f"stopped {len(leftovers)} agent process group(s) left behind")
    run = RunState(paths.root, paths.feature, paths.state, utc_now)
    if pid is not None and (read_json(paths.run_file) or {}).get("status") == "running":
        run.finish("aborted", "aborted with `kittydoit abort`")
    worktrees = sorted(paths.worktree("WP").parent.glob(f"{paths.feature}-WP*"))
    if remove_worktrees:
        for worktree in worktrees:
            git.run("worktree", "remove", "--force", "--force", str(worktree), check=False)
        lines.append(f"removed {len(worktrees)} worktree(s); their branches are kept")
    elif worktrees:
        lines.append(f"kept {len(worktrees)} worktree(s) in .worktrees/ (--remove-worktrees removes them)")
    return lines


def _wait_unlocked(paths: Paths, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if running_pid(paths) is None:
            return True
        time.sleep(0.1)
    return False
