"""Prepare a WP's worktree ahead of its implement, so the hand-off from its last dependency skips git.

A WP's implement starts by making its worktree and merging its dependencies' branches into it: a ``git worktree
add`` and a ``git merge`` per dependency, 30-60 ms on a small repository, all of it on the critical path between
the last dependency's review and the WP's own agent. Yet a dependency's branch is final once its implement is done
(its review only reads it, unless it asks for changes). So when the last dependency of a WP has been implemented,
:class:`Preparer` makes the WP's worktree and merges every dependency in, in a thread of the orchestrator, while
that review runs. It records what it merged (:func:`kittydoit.workflow.prepare`); the implement then only checks
that the worktree's HEAD and every dependency's branch tip are still the recorded ones (file reads) and starts
its agent. Anything else, say a dependency that was sent back and changed, takes the usual way: the merges are
made again (merging what is already merged changes nothing).

Only 0.x features are prepared: a 3.x mission's workspace is made by spec-kitty when the WP is claimed.
In a run of every WP, the WPs ready from the start are prepared too, :data:`AHEAD` of them at a time in the order
doit starts them, a new one each time one of them starts; not those doit hands out with the first task, one per
worker. (Preparing all of them at once, a feature of 500 WPs
spent its first seconds on a hundred checkouts, beside the agents on the critical path.) They are begun only once
the agents of those first tasks have started (their pid files are there, or their implements are done; :data:`WAVE`
at most): on two cores the first wave of agents starts over 150-250 ms at ``-n 8``, and the checkouts made beside
it slowed it down. Interleaved, 10 runs each, 10 wide WPs at ``-n 8`` (two WPs prepared ahead): the first eight
agents started 334 -> 305 ms after launch on average, the last of them 412 -> 369 ms, the run 3.50 -> 3.44 s;
at ``-n 4``, 236 -> 213 ms and the same wall time.
The thread is started only once doit's workers exist: a worker forked while the thread runs git would inherit
the pipes of that git process and hold them open, and the thread would wait for their end forever (doit forks all
its workers before it starts the first task, and each agent's forked supervisor closes what it inherits at once).
A preparation must not slow down what is on the critical path at that moment: the orchestrator handing the
next task to a worker, and that worker starting its agent. So after a task's success the thread waits until doit
has handed out the next task (the reporter hears of its start; :data:`GATE` at most), and it and the git
processes it starts run at a lower CPU priority (nice 10; Linux keeps it per thread and children inherit it).
Without the wait the thread took the interpreter's lock while doit was dispatching (3-10 ms later to the next
agent); without the lower priority, on a 2-core machine, a new worktree's checkout beside an agent's start made that
start 5-10 ms slower. (Waiting for the next agent's start instead cost more than it saved: with agents that
answer at once, the dependant's implement then waited for its preparation. Preparing dependants at full priority
in a second thread, as their implement may be waiting for them, was measured too: no gain beyond the noise, on a
serial run of 200 zero-time WPs or on the hand-offs of 30 sleeping WPs at -n 4.)
A WP being prepared and its implement never overlap: both hold the WP's preparation lock
(:func:`kittydoit.workflow.preparing`); the thread skips a WP whose lock is taken or whose worktree exists.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time

from kittydoit.context import Context

log = logging.getLogger(__name__)

NICE = 10  # how much lower the preparing thread's CPU priority is than the orchestrator's (see the module's docstring)
AHEAD = 4  # WPs ready from the start that are prepared ahead of their turn at a time (see the module docstring)
GATE = 0.05  # seconds a preparation waits at most for doit to hand out the next task (see the module docstring)
WAVE = 0.5  # seconds the WPs ready from the start wait at most for the first tasks' agents (see the module docstring)
_LOOK = 0.01  # seconds between looks for those agents


class Preparer:
    """Prepares the worktrees of WPs whose dependencies are all implemented, one at a time, in a daemon thread."""

    def __init__(self, ctx: Context, workers: int = 1) -> None:
        self.ctx = ctx
        self.workers = workers  # doit's; as many tasks are handed out at once when a run starts
        self._todo: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._dispatched = threading.Event()  # set: doit has handed out the task that follows the last success
        self._thread: threading.Thread | None = None
        self._queued: set[str] = set()
        self._unstarted: set[str] = set()  # queued WPs whose implement has not started
        self._later: list[str] = []  # WPs ready from the start, not queued yet, in the order doit starts them
        self._wave: list[str] = []  # the WPs of the run's first tasks, one per worker (see _wait_for_wave)
        self._dependants: dict[str, list[str]] = {}
        for wp in ctx.feature.wps.values():
            for dep in wp.dependencies:
                self._dependants.setdefault(dep, []).append(wp.id)

    def starting(self, selected: list[str], first: str) -> None:
        """Note that a run of *selected* has started its first task, one of WP *first*: when that is a run of every
        WP, prepare the WPs ready now, :data:`AHEAD` at a time, in the order doit will start them."""
        if self.ctx.feature.format != "0.x" or not set(selected) <= {"implement", "review", "run"}:
            return
        ready = [wp_id for wp_id in self.ctx.feature.schedule_order() if wp_id != first and self._ready(wp_id)]
        # the next ones in doit's order are being handed out with *first*, one per worker: their implements make
        # their own worktrees (preparing them too would have them wait for this slower thread)
        self._later = ready[self.workers - 1 :]
        self._later.reverse()  # taken from the end
        self._wave = [first, *ready[: self.workers - 1]]
        self._dispatched.set()
        self._top_up()

    def started(self, wp_id: str, phase: str) -> None:
        """Note that doit has handed out *phase* of *wp_id*: preparations may go on; after an implement, prepare
        the next WP ready from the start, if any."""
        self._dispatched.set()
        if phase == "implement":
            self._unstarted.discard(wp_id)
            self._top_up()

    def _top_up(self) -> None:
        while self._later and len(self._unstarted) < AHEAD:
            wp_id = self._later.pop()
            if self._ready(wp_id):
                self._queue(wp_id)

    def implemented(self, wp_id: str) -> None:
        """Note that *wp_id*'s implement succeeded: once doit has handed out the next task, prepare each dependant
        whose dependencies are all implemented."""
        if self.ctx.feature.format != "0.x":
            return
        self._dispatched.clear()
        for dependant in self._dependants.get(wp_id, ()):
            if self._ready(dependant):
                self._queue(dependant)

    def _queue(self, wp_id: str) -> None:
        if wp_id not in self._queued:
            self._queued.add(wp_id)
            self._unstarted.add(wp_id)
            self._start()
            self._todo.put(wp_id)

    def close(self, timeout: float = 30.0) -> None:
        """Let the preparation under way finish (a half-made worktree would wait for the next run's repair)."""
        if self._thread is not None:
            self._todo.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _ready(self, wp_id: str) -> bool:
        paths, wps = self.ctx.paths, self.ctx.feature.wps
        if paths.marker(wp_id, "implement").exists() or paths.worktree(wp_id).exists() or wps[wp_id].lane == "done":
            return False  # implemented, begun or done already: nothing to prepare
        for dep in wps[wp_id].dependencies:
            finished = paths.marker(dep, "implement").exists() or paths.marker(dep, "review").exists()
            if not finished and not (dep in wps and wps[dep].lane == "done"):
                return False
        return True

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="kittydoit-prepare", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        from kittydoit.workflow import prepare  # noqa: PLC0415  # workflow imports this module's users

        with contextlib.suppress(OSError, AttributeError):  # elsewhere it competes as an equal
            me = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + NICE))
        self._wait_for_wave()
        while (wp_id := self._todo.get()) is not None:
            if not self._dispatched.wait(GATE):
                self._dispatched.set()  # nothing was handed out (say, every worker is busy): go on, all of them
            try:
                prepare(self.ctx, wp_id)
            except Exception as error:  # the implement prepares it again and reports what fails
                log.debug("preparing %s ahead failed: %s", wp_id, error)

    def _wait_for_wave(self) -> None:
        """Wait until every WP of the run's first tasks has its agent started or its implement done (:data:`WAVE`
        at most; see the module docstring)."""
        paths = self.ctx.paths
        end = time.monotonic() + WAVE
        waiting = self._wave
        while waiting and time.monotonic() < end:
            waiting = [w for w in waiting if not (paths.pid_file(w).exists() or paths.marker(w, "implement").exists())]
            if waiting:
                time.sleep(_LOOK)
