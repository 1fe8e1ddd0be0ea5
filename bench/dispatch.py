"""doit's own dispatcher on a simulated clock: which WP doit starts when, with zero orchestration overhead.

:func:`simulate` builds the doit tasks kittydoit builds for a feature (same names, same done-marker file
dependencies, same order: :func:`task_dicts` mirrors ``kittydoit.tasks.task_dicts``, and a test keeps them
equal), hands them to doit's real ``TaskControl`` and ``TaskDispatcher``, and plays doit's parallel runner
(``MRunner.run_tasks``: N workers, a ready task goes to a free worker, "hold on" when none is ready) with a
clock that advances by the drawn agent times instead of running anything. So the schedule it returns is the
one doit itself picks, and the orchestrator's own cost is left out: the real runs measure that.

Variants (``waiting``), to find out whether the order of doit's internal sets matters:

- ``"doit"``: doit as it is. When a task finishes, doit marks its waiting dependants ready in the iteration
  order of a ``set`` of ``ExecNode`` objects (``ExecNode.waiting_me``), which follows memory addresses, and
  appends them to a first-in-first-out ready queue.
- ``"ordered"``: ``waiting_me`` iterated in insertion order (dependants register while doit walks the tasks in
  the order kittydoit gave, longest chain first), which makes the run deterministic.
- ``"priority"``: the ready queue handed out by each task's own remaining chain (a review is one task closer
  to the end than its implement) rather than first in, first out.
- ``"defined"``: the ready queue handed out in the order the tasks were defined (kittydoit defines them by
  the longest chain of tasks left, ``kittydoit.tasks.task_order``): what kittydoit does.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Iterator
from typing import Any

from doit import control
from doit.control import ExecNode, TaskControl, TaskDispatcher
from doit.loader import generate_tasks

from bench import schedule
from bench.dags import Dag
from kittydoit.dispatch import DefinitionOrderQueue
from kittydoit.tasks import task_order

VARIANTS = ("doit", "ordered", "priority", "defined")
_HOLD = object()


def schedule_order(dag: Dag) -> list[str]:
    """Return the WPs longest remaining chain first, ties by id (``Feature.schedule_order``)."""
    lengths = schedule.chain_lengths(dag)
    number = {wp: i for i, wp in enumerate(dag.deps)}
    return sorted(dag.deps, key=lambda wp: (-lengths[wp], number[wp]))


def marker(wp: str, phase: str) -> str:
    return f".kittify/kittydoit/bench/markers/{wp}-{phase}.json"


def task_dicts(dag: Dag) -> Iterator[dict[str, Any]]:
    """Yield doit task dicts shaped as kittydoit's for *dag* (no actions: nothing runs)."""
    order = schedule_order(dag)
    phases: dict[tuple[str, str], dict[str, Any]] = {}
    for wp in order:
        yield {"basename": wp, "name": None, "doc": wp}
        phases[wp, "implement"] = {
            "basename": wp,
            "name": "implement",
            "actions": None,
            "file_dep": [marker(d, "review") for d in dag.deps[wp]],
            "targets": [f".kittify/logs/bench/{wp}-implement.log", marker(wp, "implement")],
        }
        phases[wp, "review"] = {
            "basename": wp,
            "name": "review",
            "actions": None,
            "file_dep": [marker(wp, "implement")],
            "targets": [f".kittify/logs/bench/{wp}-review.log", marker(wp, "review")],
        }
    for key in task_order(schedule.chain_lengths(dag), order):
        yield phases[key]
    for phase in ("implement", "review"):
        yield {"basename": phase, "actions": None, "task_dep": [f"{wp}:{phase}" for wp in order]}


def simulate(dag: Dag, workers: int, waiting: str = "doit") -> tuple[float, list[str]]:
    """Return doit's makespan for *dag* on *workers* with no overhead, and the order tasks started in."""
    if waiting not in VARIANTS:
        raise ValueError(f"unknown variant {waiting!r}; choose one of {', '.join(VARIANTS)}")
    tasks = generate_tasks("kittydoit", task_dicts(dag), "work packages")
    ctl = TaskControl(tasks)
    ctl.process(["implement", "review"])
    with _variant(waiting, dag):
        dispatcher = ctl.task_dispatcher()
        return _run(dag, dispatcher, workers)


def _run(dag: Dag, dispatcher: TaskDispatcher, workers: int) -> tuple[float, list[str]]:
    """Play ``MRunner.run_tasks`` with simulated time (see doit/runner.py)."""
    generator = dispatcher.generator
    holding = 0
    running: list[tuple[float, int, Any]] = []
    started: list[str] = []
    now, sequence = 0.0, 0

    def next_job(completed: Any) -> Any:
        nonlocal holding
        node = completed
        while True:
            try:
                node = generator.send(node)
            except StopIteration:
                return None
            if node == "hold on":
                holding += 1
                return _HOLD
            if node.run_status is None:  # select_task: nothing is up to date, everything runs
                node.run_status = "run"
            return node

    def start(node: Any) -> None:
        nonlocal sequence
        sequence += 1
        name = node.task.name
        seconds = 0.0
        if ":" in name:
            wp, phase = name.split(":", 1)
            seconds = dag.durations[wp][0 if phase == "implement" else 1]
            started.append(name)
        heapq.heappush(running, (now + seconds, sequence, node))

    processes = 0
    for _ in range(workers):
        job = next_job(None)
        if job is None:
            break
        processes += 1
        if job is not _HOLD:
            start(job)
    while processes:
        now, _, node = heapq.heappop(running)
        node.run_status = "successful"
        free, holding = holding + 1, 0
        completed = node
        for _ in range(free):
            job = next_job(completed)
            completed = None
            if job is None:
                processes -= 1
            elif job is not _HOLD:
                start(job)
    return now, started


class _OrderedSet(dict[Any, None]):
    """The part of ``set`` that doit uses on ``waiting_me``, iterated in insertion order."""

    def add(self, item: Any) -> None:
        self[item] = None


class _OrderedExecNode(ExecNode):  # type: ignore[misc]
    def __init__(self, task: Any, parent: Any) -> None:
        super().__init__(task, parent)
        self.waiting_me = _OrderedSet()


@contextlib.contextmanager
def _variant(waiting: str, dag: Dag) -> Iterator[None]:
    """Patch doit's dispatcher for one simulation, the way the variant says."""
    if waiting == "doit":
        yield
        return
    original_node, original_init = control.ExecNode, TaskDispatcher.__init__
    if waiting != "defined":
        control.ExecNode = _OrderedExecNode
    if waiting in ("priority", "defined"):
        ranks = schedule.rank(dag, "chain")
        rank = {f"{wp}:{phase}": i for i, (wp, phase) in enumerate(sorted(ranks, key=ranks.__getitem__))}

        def init(self: TaskDispatcher, *args: Any) -> None:
            original_init(self, *args)
            if waiting == "priority":  # tasks without a rank (the groups) go first
                order = {name: rank.get(name, -1) for name in self.tasks}
            else:
                order = {name: i for i, name in enumerate(self.tasks)}
            self.ready = DefinitionOrderQueue(order)

        TaskDispatcher.__init__ = init
    try:
        yield
    finally:
        control.ExecNode = original_node
        TaskDispatcher.__init__ = original_init
