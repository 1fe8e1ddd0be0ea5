"""Have doit start ready tasks in the order they were defined, which is kittydoit's priority order.

kittydoit defines the WPs longest remaining chain first, so that when more WPs are ready than there are
workers, the ones on the longest chains start first. doit itself, though, hands out ready tasks first in,
first out: a task that becomes ready waits behind every task that became ready before it, and the dependants
that one finished task releases join the queue in the iteration order of a ``set`` (``ExecNode.waiting_me``,
which follows memory addresses). On a busy run the WPs of the critical chain then wait behind short side
branches. Simulated with doit's own dispatcher (``python -m bench``, "doit's dispatch order"), first in, first
out made runs of narrow features up to 17 % longer than the longest-chain-first list schedule.

:func:`use_definition_order` changes only the ready queue of doit's ``TaskDispatcher``: it hands out the ready
task that was defined first. doit still owns the graph, decides which tasks are ready and when, checks what is
up to date and feeds its workers. doit 0.37 uses the queue only through ``append``, ``popleft`` and truth
tests (``doit/control.py``), which is what :class:`DefinitionOrderQueue` provides.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Mapping
from typing import Any

from doit.control import TaskControl, TaskDispatcher


class DefinitionOrderQueue:
    """doit's ready queue, handing out the node whose task was defined first."""

    def __init__(self, rank: Mapping[str, int]) -> None:
        self._rank = rank
        self._heap: list[tuple[int, int, Any]] = []
        self._added = 0

    def append(self, node: Any) -> None:
        self._added += 1  # ties (tasks doit created later, unknown here) stay first in, first out
        heapq.heappush(self._heap, (self._rank.get(node.task.name, sys.maxsize), self._added, node))

    def popleft(self) -> Any:
        return heapq.heappop(self._heap)[2]

    def __bool__(self) -> bool:
        return bool(self._heap)

    def __len__(self) -> int:
        return len(self._heap)


class DefinitionOrderDispatcher(TaskDispatcher):  # type: ignore[misc]  # doit is untyped
    """doit's dispatcher with a :class:`DefinitionOrderQueue` as its ready queue."""

    def __init__(self, tasks: Mapping[str, Any], targets: Mapping[str, str], selected: list[str]) -> None:
        super().__init__(tasks, targets, selected)
        self.ready = DefinitionOrderQueue({name: index for index, name in enumerate(tasks)})


def use_definition_order() -> None:
    """Make doit dispatch ready tasks in definition order for the rest of this process (idempotent)."""
    TaskControl.task_dispatcher = _task_dispatcher


def _task_dispatcher(self: TaskControl) -> DefinitionOrderDispatcher:
    """Return the dispatcher for the tasks selected by ``process`` (``TaskControl.task_dispatcher``)."""
    if self.selected_tasks is None:
        raise RuntimeError("TaskControl.process must be called before task_dispatcher")
    return DefinitionOrderDispatcher(self.tasks, self.targets, self.selected_tasks)
