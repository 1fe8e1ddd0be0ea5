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

Two more things keep a stop prompt in the orchestrator and in each worker alike. A :class:`~kittydoit.process.
SignalRelay` wakes the main thread when another thread took the signal. And a stop is not raised inside code that
an exception would cut in half (:func:`interruptible`): there it is raised a moment later.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Iterator
from types import FrameType

from kittydoit.process import SignalRelay, at_next_start

_PR_SET_PDEATHSIG = 1
_LOOK = 0.1  # seconds between looks at whether the user asked again
_WORKER_LOOP = "execute_task_subprocess"  # doit 0.37's worker loop (doit.runner.MRunner)
_AGAIN = 0.01  # seconds after which a stop that came at a bad moment is tried again
# Code an exception raised by a signal handler must not cut in half, by function and file:
# - multiprocessing's Queue._start_thread: cut between its two finalizers, the queue's feeder thread is joined when
#   the process exits but never told to end, and the exit waits forever;
# - doit's MRunner._run_start_processes (doit 0.37): it runs before the block that stops doit's workers when a run
#   is interrupted, so the workers it had started were left waiting for work until :func:`reap` killed them;
# - threading's Thread.start: cut while it waits for the new thread, the thread runs but cannot be joined (the
#   progress thread's stop raised "cannot join thread before it is started": a traceback).
_UNINTERRUPTIBLE = (
    ("_start_thread", "multiprocessing/queues.py"),
    ("_run_start_processes", "doit/runner.py"),
    ("start", "threading.py"),
)
# A forked worker's frames go on below this one: what the orchestrator was doing when it forked the worker.
_FORKED = ("_bootstrap", "multiprocessing/process.py")
_relay: SignalRelay | None = None  # this worker's (see adopt)


def adopt(main_pid: int) -> None:
    """Make this freshly forked process a kittydoit worker of the orchestrator *main_pid* (see the module docstring)."""
    global _relay  # noqa: PLW0603  # one per worker process, for its whole life
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    once = _Once()
    signal.signal(signal.SIGTERM, once)
    signal.signal(signal.SIGALRM, once)  # a SIGTERM tried again (see _Once)
    _relay = SignalRelay()
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != main_pid:  # the orchestrator died before the request took effect
        os._exit(1)


class _Once:
    """A SIGTERM handler: the first one raises KeyboardInterrupt, later ones are ignored.

    doit's worker loop reports a KeyboardInterrupt to the orchestrator and ends; before the worker is in that loop
    (it is still starting), a KeyboardInterrupt would end it with a traceback, and it has nothing to stop yet: it
    just exits. A SIGTERM that comes where it must not be raised (see :func:`interruptible`) comes again as a
    SIGALRM a moment later.
    """

    def __init__(self) -> None:
        self.fired = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.fired:
            return
        if not interruptible(frame):
            signal.setitimer(signal.ITIMER_REAL, _AGAIN)
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


def interruptible(frame: FrameType | None) -> bool:
    """Tell whether an exception may be raised in *frame*, where a signal came (see _UNINTERRUPTIBLE)."""
    while frame is not None:
        code = frame.f_code
        if any(code.co_name == name and code.co_filename.endswith(file) for name, file in _UNINTERRUPTIBLE):
            return False
        if code.co_name == _FORKED[0] and code.co_filename.endswith(_FORKED[1]):
            return True
        frame = frame.f_back
    return True


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


# ---- the first agent first ---------------------------------------------------------------------------------


class FirstAgentFirst:
    """At a run's start, hold the other workers back until the first one's agent has started (:data:`HOLD` at most).

    doit forks its ``-n`` workers one after another and hands each a task at once, the task on the longest chain
    first. Started together on a 2-core machine, every worker made its worktree, rendered its prompt and started its
    agent beside the others: at ``-n`` 4-8 the first agent started 20-50 ms later than it need have, for work the others
    did no sooner. So the first worker to begin a task takes the one token there is (a byte in a pipe: one ``read``
    gets it) and opens the gate once its agent has started (:func:`kittydoit.process.at_next_start`) or its task has
    ended, whichever comes first; the others wait for that at their first task, :data:`HOLD` seconds at most (the
    first one stuck, say, behind a slow git). Later tasks never wait.

    Made in the orchestrator before doit forks its workers (:func:`hold_back`), so every worker inherits its pipes.
    """

    def __init__(self) -> None:
        self._token, token_in = os.pipe()
        os.write(token_in, b"1")
        os.close(token_in)  # once the byte is taken, the others read an end of file
        os.set_blocking(self._token, False)
        self._gate, self._gate_in = os.pipe()
        self._decided: int | None = None  # the process that has had its turn (a forked copy has not)
        self._opener: int | None = None  # the process that opens the gate

    def wait_turn(self) -> None:
        """In a worker, before its task: at its first one, take the token or wait for the gate (see the class)."""
        me = os.getpid()
        if self._decided == me:
            return
        self._decided = me
        try:
            first = os.read(self._token, 1) == b"1"
        except OSError:  # closed: the run is ending
            return
        if first:
            self._opener = me
            at_next_start(self.open)
        else:
            with contextlib.suppress(OSError, ValueError):
                select.select([self._gate], [], [], HOLD)

    def open(self) -> None:
        """Let the other workers go (by the token's holder: its agent started or its task ended); then a no-op."""
        if self._opener == os.getpid():
            self._opener = None
            with contextlib.suppress(OSError):
                os.write(self._gate_in, b"1")

    def close(self) -> None:
        for fd in (self._token, self._gate, self._gate_in):
            with contextlib.suppress(OSError):
                os.close(fd)


HOLD = 0.2  # seconds a worker waits at most at its first task for the first agent's start (see FirstAgentFirst)
_first: FirstAgentFirst | None = None  # this run's (see hold_back)


def hold_back(workers: int) -> None:
    """Before doit forks *workers* workers (more than one): have them start their first tasks one agent after the
    first (see FirstAgentFirst)."""
    global _first  # noqa: PLW0603  # one per run, inherited by every worker
    release()
    if workers > 1:
        _first = FirstAgentFirst()


@contextlib.contextmanager
def turn() -> Iterator[None]:
    """Around a task in a worker: at its first, wait for the run's first agent to start, or be the one that starts
    it and let the others go when it has (or the task has ended without one). See FirstAgentFirst."""
    first = _first
    if first is None:
        yield
        return
    first.wait_turn()
    try:
        yield
    finally:
        first.open()


def release() -> None:
    """When a run ends: close the pipes of :func:`hold_back`."""
    global _first  # noqa: PLW0603
    if _first is not None:
        _first.close()
        _first = None
