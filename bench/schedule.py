"""The ideal schedule of a synthetic feature: its lower bound and simple list schedules, at zero overhead.

A WP is two tasks, ``(wp, "implement")`` then ``(wp, "review")``; a WP's implement waits for the review of
every dependency. With N workers no schedule beats ``max(critical path, total work / N)``, the lower bound.

A list schedule keeps the N workers busy whenever a task is ready and, when several are, starts them in the
order of a priority list (Graham's list scheduling: never more than ``2 - 1/N`` times the optimum). The orders
simulated here:

- ``chain``: longest remaining chain of WPs first (ties by id): kittydoit's order; it needs no durations
- ``id``: WP id order
- ``random``: a seeded random order
- ``critical-path``: longest remaining agent time first (HLFET); an oracle, since it needs the durations
- ``lpt``: longest task first; an oracle too
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias

from bench.dags import Dag

Task: TypeAlias = tuple[str, str]  # (wp, phase)
Rank: TypeAlias = Mapping[Task, tuple[float, ...]]

ORDERS = ("chain", "id", "random", "critical-path", "lpt")
BLIND_ORDERS = ("chain", "id", "random")  # orders an orchestrator can use without knowing agent times


def duration(dag: Dag, task: Task) -> float:
    wp, phase = task
    return dag.durations[wp][0 if phase == "implement" else 1]


def dependants(dag: Dag) -> dict[str, list[str]]:
    """Return, per WP, the WPs that depend on it."""
    result: dict[str, list[str]] = {wp: [] for wp in dag.deps}
    for wp, deps in dag.deps.items():
        for dep in deps:
            result[dep].append(wp)
    return result


def topological(dag: Dag) -> list[str]:
    """Return the WPs with every dependency before its dependants."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(wp: str) -> None:
        if wp not in seen:
            seen.add(wp)
            for dep in dag.deps[wp]:
                visit(dep)
            order.append(wp)

    for wp in dag.deps:
        visit(wp)
    return order


def remaining_time(dag: Dag) -> dict[str, float]:
    """Return, per WP, the agent time on the longest path that starts with its implement phase."""
    after = dependants(dag)
    level: dict[str, float] = {}
    for wp in reversed(topological(dag)):
        level[wp] = sum(dag.durations[wp]) + max((level[x] for x in after[wp]), default=0.0)
    return level


def chain_lengths(dag: Dag) -> dict[str, int]:
    """Return, per WP, the number of WPs on the longest chain that starts at it (kittydoit's priority)."""
    after = dependants(dag)
    length: dict[str, int] = {}
    for wp in reversed(topological(dag)):
        length[wp] = 1 + max((length[x] for x in after[wp]), default=0)
    return length


def critical_path(dag: Dag) -> float:
    return max(remaining_time(dag).values(), default=0.0)


def lower_bound(dag: Dag, workers: int) -> float:
    """Return ``max(critical path, total work / workers)``: no schedule of *dag* can be shorter."""
    return max(critical_path(dag), dag.total_work / workers)


def in_lanes(dag: Dag, lanes: Sequence[Sequence[str]]) -> Dag:
    """Return *dag* with each WP also after the WP before it in its execution lane.

    A spec-kitty 3.x mission groups WPs into execution lanes (``lanes.json``); the WPs of one lane share one
    worktree and run one after another, in the lane's order, so a lane is a chain whatever the dependencies say.
    """
    deps = {wp: list(before) for wp, before in dag.deps.items()}
    for lane in lanes:
        for earlier, wp in itertools.pairwise(lane):
            if earlier not in deps[wp]:
                deps[wp].append(earlier)
    return Dag(dag.name, dag.seed, {wp: tuple(before) for wp, before in deps.items()}, dag.durations)


def rank(dag: Dag, order: str, seed: int = 0) -> Rank:
    """Return the priority of every task for list-scheduling *order* (smaller goes first)."""
    number = {wp: i for i, wp in enumerate(dag.deps)}
    phase_rank = {"implement": 0, "review": 1}
    tasks = [(wp, phase) for wp in dag.deps for phase in ("implement", "review")]
    keys: dict[str, Callable[[Task], tuple[float, ...]]] = {}
    if order == "chain":
        chains = chain_lengths(dag)
        # a review is one task closer to the end of its chain than its implement
        keys[order] = lambda t: (-(2 * chains[t[0]] - phase_rank[t[1]]), number[t[0]])
    elif order == "id":
        keys[order] = lambda t: (number[t[0]], phase_rank[t[1]])
    elif order == "random":
        rng = random.Random(seed)
        shuffled = {t: rng.random() for t in tasks}
        keys[order] = lambda t: (shuffled[t],)
    elif order == "critical-path":
        level = remaining_time(dag)
        keys[order] = lambda t: (
            -(level[t[0]] - (dag.durations[t[0]][0] if t[1] == "review" else 0.0)),
            number[t[0]],
            phase_rank[t[1]],
        )
    elif order == "lpt":
        keys[order] = lambda t: (-duration(dag, t), number[t[0]], phase_rank[t[1]])
    else:
        raise ValueError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}")
    return {t: keys[order](t) for t in tasks}


def list_schedule(dag: Dag, workers: int, ranks: Rank) -> float:
    """Return the makespan of *dag*'s list schedule on *workers* with priorities *ranks*, zero overhead."""
    after = dependants(dag)
    waiting = {wp: len(deps) for wp, deps in dag.deps.items()}
    ready: list[tuple[tuple[float, ...], Task]] = []
    for wp, count in waiting.items():
        if count == 0:
            heapq.heappush(ready, (ranks[(wp, "implement")], (wp, "implement")))
    running: list[tuple[float, int, Task]] = []
    now, sequence, done = 0.0, 0, 0
    total = 2 * len(dag.deps)
    while done < total:
        while ready and len(running) < workers:
            _, task = heapq.heappop(ready)
            sequence += 1
            heapq.heappush(running, (now + duration(dag, task), sequence, task))
        finished: list[Task] = []
        now, _, task = heapq.heappop(running)
        finished.append(task)
        while running and running[0][0] <= now:  # every task ending at this instant frees its worker now
            finished.append(heapq.heappop(running)[2])
        for wp, phase in finished:
            done += 1
            if phase == "implement":
                heapq.heappush(ready, (ranks[(wp, "review")], (wp, "review")))
                continue
            for nxt in after[wp]:
                waiting[nxt] -= 1
                if waiting[nxt] == 0:
                    heapq.heappush(ready, (ranks[(nxt, "implement")], (nxt, "implement")))
    return now


def best_orders(dag: Dag, workers: int, seeds: int = 3) -> dict[str, float]:
    """Return the makespan of every order in :data:`ORDERS` (``random``: the median of *seeds* draws)."""
    result = {}
    for order in ORDERS:
        if order == "random":
            draws = sorted(list_schedule(dag, workers, rank(dag, order, seed)) for seed in range(seeds))
            result[order] = draws[len(draws) // 2]
        else:
            result[order] = list_schedule(dag, workers, rank(dag, order))
    return result
