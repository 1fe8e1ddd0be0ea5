"""doit's worker processes: tied to the orchestrator's life, deaf to the terminal, and reaped when a run stops.

doit forks its ``-n`` workers from the orchestrator, so they share its process group, its terminal and its signal
handlers. kittydoit changes three things (:func:`adopt`, run in each worker right after the fork):

- **The orchestrator decides.** Ctrl-C and a hang-up reach every process of the terminal's foreground group; a
  worker ignores SIGINT and SIGHUP (and so do the git commands it runs, which inherit that, so neither is cut in
  half), and the orchestrator stops the run: doit sends each worker SIGTERM. A worker turns the first SIGTERM into
  KeyboardInterrupt, which stops its agent, and ignores later ones while it stops: a second one raised in the middle
  of doit reporting the first printed a traceback.
- **It dies with the orchestrator**, by any signal, SIGKILL included (``PR_SET_PDEATHSIG``): an idle worker would
  otherwise wait forever for its next task. Its agent's supervisor then kills the agent (:mod:`kittydoit.supervisor`).
- **It cannot hang the exit.** A signal the kernel hands to a worker's queue-feeder thread is never handled while
  the worker's main thread waits for its next task, and Python waits for every worker when the orchestrator exits.
  :func:`reap` (called when a run ends) gives the workers the agents' grace period and a second, then kills the
  ones still there, and at once when the user asks again (a second Ctrl-C).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

_PR_SET_PDEATHSIG = 1
_LOOK = 0.1  # seconds between looks at whether the user asked again
_WORKER_LOOP = "execute_task_subprocess"  # doit 0.37's worker loop (doit.runner.MRunner)


def adopt(main_pid: int) -> None:
    """Make this freshly forked process a kittydoit worker of the orchestrator *main_pid* (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _Once())
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != main_pid:  # the orchestrator died before the request took effect
        os._exit(1)


class _Once:
    """A SIGTERM handler: the first one raises KeyboardInterrupt, later ones are ignored.

    doit's worker loop reports a KeyboardInterrupt to the orchestrator and ends; before the worker is in that loop
    (it is still starting), a KeyboardInterrupt would end it with a traceback, and it has nothing to stop yet: it
    just exits.
    """

    def __init__(self) -> None:
        self.fired = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.fired:
            return
        self.fired = True
        if not _in_worker_loop(frame):
            os._exit(0)
        raise KeyboardInterrupt


def _in_worker_loop(frame: FrameType | None) -> bool:
    """Tell whether *frame* runs inside doit's worker loop (``MRunner.execute_task_subprocess``)."""
    while frame is not None:
        if frame.f_code.co_name == _WORKER_LOOP:
            return True
        frame = frame.f_back
    return False


def reap(grace_seconds: float, hurry: Callable[[], bool]) -> list[int]:
    """Wait up to *grace_seconds* and a second for this process's workers to end, then kill those left.

    Kill them at once when *hurry()* turns true. Return the pids killed. A killed worker's agent is killed by its
    supervisor.
    """
    end = time.monotonic() + grace_seconds + 1.0
    workers = multiprocessing.active_children()
    while workers and time.monotonic() < end and not hurry():
        multiprocessing.connection.wait([w.sentinel for w in workers], timeout=_LOOK)
        workers = multiprocessing.active_children()
    for worker in workers:
        with contextlib.suppress(OSError):  # it ended meanwhile
            worker.kill()
    for worker in workers:
        worker.join(timeout=5)
    return [w.pid for w in workers if w.pid is not None]
