"""A bare orchestrator on doit: the least a doit-based tool must do to run a feature's agents, for the makespan floor.

    python bench/bare_doit.py DAG_JSON WORKERS WORKTREES AGENT_JSON

The same work as ``bench/bare.py`` (same arguments, agents, order, one ``git worktree add`` per WP under a lock
right before its implement, one ``git status`` after it, nothing else), but run the way kittydoit runs it: doit's
own command line (``doit -n WORKERS run``) over two tasks per WP, ``implement-WPnn`` and ``review-WPnn`` (a task
dependency on the implement, and an implement's on its dependencies' reviews), python-actions in doit's forked
worker processes, doit's dependency database, its console reporter. Ready tasks go out in the order the tasks were
defined, longest remaining chain first (as :mod:`kittydoit.dispatch` has doit do), by a ready queue written here, so
that this imports doit and the standard library and nothing of kittydoit.

So what separates it from ``bench/bare.py`` is what the engine itself costs on this machine: its import, its
loader and dependency database, forking its workers one after another, and handing tasks to them and results back
through queues. What separates kittydoit from it is kittydoit's own work. ``python -m bench`` runs it beside
kittydoit and the bare orchestrator on every quality case (see ``bench.suites.quality``).
"""

import fcntl
import heapq
import os
import subprocess
import sys
from typing import Any

from doit.cmd_base import ModuleTaskLoader
from doit.control import TaskControl, TaskDispatcher
from doit.doit_cmd import DoitMain

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bare import _git, _priority, read_arguments  # the bare orchestrator's arguments, order and git call


def main(argv: list[str]) -> int:
    deps, after, workers, prefix, agent = read_arguments(argv)
    key = _priority(deps, after)
    lock = f"{prefix}.lock"

    def call(wp: str, phase: str) -> bool:
        folder = f"{prefix}-{wp}"
        if phase == "implement":
            with open(lock, "a") as held:
                fcntl.flock(held, fcntl.LOCK_EX)
                _git("worktree", "add", "-q", "-b", f"bare-{wp}", folder, "HEAD")
        agent_run = subprocess.run([*agent, phase], cwd=folder, input=f"{wp} {phase}\n".encode(),
                                   stdout=subprocess.DEVNULL, check=False)  # fmt: skip
        if agent_run.returncode != 0:
            print(f"bare-doit: {wp} {phase}: the agent exited {agent_run.returncode}", file=sys.stderr)
            return False
        if phase == "implement":
            _git("status", "--porcelain", cwd=folder)
        return True

    calls = sorted(((wp, phase) for wp in deps for phase in ("implement", "review")), key=lambda c: key(*c))

    def task_wp() -> Any:
        for wp, phase in calls:
            before = [f"implement-{wp}"] if phase == "review" else [f"review-{dep}" for dep in deps[wp]]
            yield {"basename": f"{phase}-{wp}", "actions": [(call, [wp, phase])], "task_dep": before}

    _definition_order()
    args = ["-n", str(workers), "-P", "process", "--db-file", f"{prefix}.doit.db"]
    code: int = DoitMain(ModuleTaskLoader({"task_wp": task_wp}), config_filenames=()).run(["run", *args])
    return code


def _definition_order() -> None:
    """Have doit hand out the ready task defined first (the longest remaining chain), as kittydoit does."""

    class Queue:
        def __init__(self, rank: dict[str, int]) -> None:
            self._rank, self._added = rank, 0
            self._heap: list[tuple[int, int, Any]] = []

        def append(self, node: Any) -> None:
            self._added += 1
            heapq.heappush(self._heap, (self._rank.get(node.task.name, sys.maxsize), self._added, node))

        def popleft(self) -> Any:
            return heapq.heappop(self._heap)[2]

        def __bool__(self) -> bool:
            return bool(self._heap)

    def dispatcher(control: TaskControl) -> TaskDispatcher:
        made = TaskDispatcher(control.tasks, control.targets, control.selected_tasks)
        made.ready = Queue({name: index for index, name in enumerate(control.tasks)})
        return made

    TaskControl.task_dispatcher = dispatcher


if __name__ == "__main__":
    sys.exit(main(sys.argv))
