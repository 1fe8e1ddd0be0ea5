"""What one ``doit run`` of a feature holds while it works: the run lock, signal handling, leftover cleanup.

doit calls the reporter's ``initialize`` in the main process before any worker starts, and ``complete_run``
at the end, whatever happened; kittydoit's reporter opens and closes the session there.

- The run lock (``flock`` on ``.kittify/kittydoit/<feature>/run.lock``) refuses a second run of the same
  feature. doit's worker processes inherit it, so the lock is free only when every process of a run is gone.
- SIGTERM is turned into KeyboardInterrupt, in the main process and (inherited) in workers: doit then saves
  its database and stops its workers, and each worker stops its agent's process group before it exits.
- Agent process groups that a killed run left behind (recorded in ``pids/``) are stopped before work starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
from types import FrameType
from typing import IO, Any

from kittydoit.context import Context
from kittydoit.errors import RunLockedError
from kittydoit.process import stop_recorded

log = logging.getLogger(__name__)

# Runtime files kittydoit writes inside the repository; kept out of `git status` through .git/info/exclude.
_EXCLUDES = ("/.worktrees/", "/.kittify/logs/", "/.kittify/kittydoit/", "/.kittify/reports/",
             "/.kittify/orchestration-state.json*")  # fmt: skip


class Session:
    """The run lock and process hygiene of one run."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._lock: IO[str] | None = None
        self._previous_sigterm: Any = None
        self.stopped_leftovers: list[int] = []

    def start(self) -> None:
        """Take the run lock, stop leftovers of a killed run, and turn SIGTERM into KeyboardInterrupt."""
        paths = self.ctx.paths
        paths.state.mkdir(parents=True, exist_ok=True)
        handle = paths.run_lock.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _holder(handle.read())
            handle.close()
            raise RunLockedError(
                paths.rel(paths.run_lock),
                f"another kittydoit run{holder} is working on {paths.feature}; wait for it to finish, "
                "or stop it with `kittydoit abort`",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid()}))
        handle.flush()
        self._lock = handle
        self.stopped_leftovers = stop_recorded(paths.pids)
        if self.stopped_leftovers:
            log.warning("stopped %d agent process group(s) left by a killed run", len(self.stopped_leftovers))
        self._previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
        _exclude_runtime_files(self.ctx)

    def close(self) -> None:
        """Release the run lock and restore SIGTERM handling."""
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise KeyboardInterrupt


def _holder(text: str) -> str:
    with contextlib.suppress(ValueError, TypeError, KeyError):  # an old or empty lock file says nothing
        return f" (pid {int(json.loads(text)['pid'])})"
    return ""


def _exclude_runtime_files(ctx: Context) -> None:
    """Add kittydoit's runtime folders to .git/info/exclude, once."""
    result = ctx.git.run("rev-parse", "--git-path", "info/exclude", check=False)
    if result.returncode != 0:
        return
    path = ctx.paths.root / result.stdout.strip()
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    missing = [line for line in _EXCLUDES if line not in text.splitlines()]
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = "" if not text or text.endswith("\n") else "\n"
        path.write_text(text + prefix + "# kittydoit runtime files\n" + "\n".join(missing) + "\n", encoding="utf-8")
