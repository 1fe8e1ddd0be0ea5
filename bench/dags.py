"""Seeded random features for benchmarks: a DAG of work packages and the time each phase of each WP takes.

A DAG is made in layers: *n* WPs spread over about ``n / width`` layers, each layer's size drawn at random
around the mean ``width`` (width 1 is a single chain; width n puts every WP in one layer).
Each WP after the first layer depends on one to ``max_deps`` WPs, mostly from the layer just before (so chains
really are as long as the layer count) and sometimes from older layers.

Durations: each WP's total agent time is drawn log-uniformly from ``[low, high]`` seconds; the implement phase
takes ``IMPLEMENT_SHARE`` of it and the review phase the rest (an implementation is the longer job; the review
of a WP can only start when its implementation is done).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

IMPLEMENT_SHARE = 2 / 3
PHASES = ("implement", "review")

# Shapes a benchmark draws: name -> mean layer width (about the parallelism a feature offers).
SHAPES = {"narrow": 2.0, "medium": 4.0, "wide": 8.0}


@dataclass(frozen=True)
class Dag:
    """A synthetic feature: WP ids in id order, their dependencies, and per-phase durations in seconds."""

    name: str
    seed: int
    deps: dict[str, tuple[str, ...]]
    durations: dict[str, tuple[float, float]]  # WP -> (implement, review)

    @property
    def wps(self) -> list[str]:
        return list(self.deps)

    @property
    def total_work(self) -> float:
        return sum(a + b for a, b in self.durations.values())

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "seed": self.seed,
            "deps": {k: list(v) for k, v in self.deps.items()},
            "durations": {k: list(v) for k, v in self.durations.items()},
        }


def wp_id(number: int, count: int) -> str:
    """Return the id of WP *number* (1-based), with as many digits as *count* WPs need (at least two)."""
    return f"WP{number:0{max(2, len(str(count)))}d}"


def make_dag(
    n: int,
    *,
    width: float,
    seed: int,
    low: float = 0.5,
    high: float = 3.0,
    max_deps: int = 3,
    name: str | None = None,
) -> Dag:
    """Return a seeded random DAG of *n* WPs in layers of mean size *width*."""
    rng = random.Random(seed)
    layers = _layer_sizes(n, max(1, round(n / width)), rng)
    ids = [wp_id(i + 1, n) for i in range(n)]
    deps: dict[str, tuple[str, ...]] = {}
    placed: list[list[str]] = []
    index = 0
    for size in layers:
        layer = ids[index : index + size]
        index += size
        for wp in layer:
            deps[wp] = _draw_deps(placed, max_deps, rng) if placed else ()
        placed.append(layer)
    durations = {}
    for wp in ids:
        total = math.exp(rng.uniform(math.log(low), math.log(high))) if high > low else low
        durations[wp] = (round(total * IMPLEMENT_SHARE, 3), round(total * (1 - IMPLEMENT_SHARE), 3))
    return Dag(name=name or f"n{n}-w{width:g}-s{seed}", seed=seed, deps=deps, durations=durations)


def zero_time(dag: Dag) -> Dag:
    """Return *dag* with agents that take no time (for overhead measurements)."""
    return Dag(dag.name, dag.seed, dag.deps, {wp: (0.0, 0.0) for wp in dag.deps})


def _layer_sizes(n: int, count: int, rng: random.Random) -> list[int]:
    """Split *n* WPs into *count* non-empty layers of random sizes."""
    count = min(count, n)
    sizes = [1] * count
    for _ in range(n - count):
        sizes[rng.randrange(count)] += 1
    return sizes


def _draw_deps(placed: list[list[str]], max_deps: int, rng: random.Random) -> tuple[str, ...]:
    chosen = {rng.choice(placed[-1])}  # one from the layer before: chains are as long as the layers
    for _ in range(rng.randint(0, max_deps - 1)):
        back = min(len(placed), 1 + int(rng.expovariate(1.0)))  # mostly recent layers, sometimes older ones
        chosen.add(rng.choice(placed[-back]))
    return tuple(sorted(chosen))
