"""Run a command as a benchmark run: wall time, CPU time and peak memory of its whole process tree.

:func:`timed` starts the command, waits for it with ``os.wait4`` (which reports the CPU time of the process
and of every descendant it waited for, and the largest resident set among them) and returns a
:class:`Timing`.
The fake agents' timeline (one line per agent call, see ``bench/fake_agent.py``) is read by
:func:`read_timeline`.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class BenchError(Exception):
    """A benchmark run did not do what it had to; the message says which and shows the output."""


@dataclass(frozen=True)
class Timing:
    """One run of a command: how long it took, what it cost, and how it ended."""

    argv: tuple[str, ...]
    started_at: float  # Unix time the command was started, to line it up with the agents' timeline
    wall: float
    cpu: float  # user + system seconds of the whole process tree
    max_rss_mb: float  # the largest resident set of any one process of the tree
    returncode: int
    output: str = field(repr=False, default="")

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["output"] = self.output[-2000:]
        return data


@dataclass(frozen=True)
class Call:
    """One fake-agent call, as the agent recorded it."""

    role: str
    wp: str
    start: float
    end: float


def timed(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = 3600,
    check: bool = True,
) -> Timing:
    """Run *argv* in *cwd* and return its timing; raise BenchError when it fails and *check* is set."""
    log = cwd.parent / f".{cwd.name}-output.txt"
    with log.open("w+b") as output:
        started_at = time.time()
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - started
        with contextlib.suppress(
            ProcessLookupError
        ):  # nothing of the run may outlive it (spec-kitty's server)
            os.killpg(proc.pid, signal.SIGKILL)
        proc.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode("utf-8", "replace")
    log.unlink()
    timing = Timing(
        argv=tuple(argv),
        started_at=started_at,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,
        returncode=proc.returncode,
        output=text,
    )
    if check and proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode} in {cwd}:\n{text[-3000:]}")
    return timing


def handoff_samples(calls: list[Call], deps: dict[str, tuple[str, ...]]) -> dict[str, list[float]]:
    """Return every hand-off of one run, seen from the agents (seconds, in WP order).

    ``review``: from a WP's implementer exiting to its reviewer starting, one per reviewed WP; ``dependency``:
    from the last dependency's reviewer exiting to the WP's implementer starting, one per WP with dependencies.
    Both also hold any wait for a free worker; ``review_direct`` and ``dependency_direct`` are the ones with
    no other agent started in between (the freed worker went to the dependant). An agent's start is its first
    line of Python, so each includes one interpreter start.
    """
    first = {(c.wp, c.role): c for c in reversed(calls)}  # the first call per WP and role
    last = {(c.wp, c.role): c for c in calls}
    starts = sorted(c.start for c in calls)

    def direct(done: float, started: float) -> bool:
        return bisect.bisect_left(starts, started) == bisect.bisect_right(starts, done)

    pairs: dict[str, list[tuple[float, float]]] = {
        "review": [(last[wp, "implement"].end, first[wp, "review"].start) for wp in deps if (wp, "review") in first],
        "dependency": [
            (max(last[d, "review"].end for d in ds), first[wp, "implement"].start)
            for wp, ds in deps.items()
            if ds and (wp, "implement") in first
        ],
    }
    samples = {key: [b - a for a, b in pair] for key, pair in pairs.items()}
    for key, pair in pairs.items():
        samples[f"{key}_direct"] = [b - a for a, b in pair if direct(a, b)]
    return samples


def handoffs(calls: list[Call], deps: dict[str, tuple[str, ...]], timing: Timing) -> dict[str, float]:
    """Return the orchestrator's latencies seen from the agents (seconds).

    ``review`` and ``dependency``: the medians of :func:`handoff_samples`; ``startup``: from the command
    starting to the first agent; ``tail``: from the last agent to the command's exit.
    """
    if not calls:
        return {}
    samples = handoff_samples(calls, deps)
    return {
        "review": statistics.median(samples["review"]) if samples["review"] else float("nan"),
        "dependency": statistics.median(samples["dependency"]) if samples["dependency"] else float("nan"),
        "startup": calls[0].start - timing.started_at,
        "tail": timing.started_at + timing.wall - max(c.end for c in calls),
    }


def critical_chain(calls: list[Call], deps: dict[str, tuple[str, ...]], timing: Timing) -> dict[str, Any]:
    """Split a run's wall time along the chain of agent calls that ended it; the parts add up to the wall time.

    From the call that ended last, back: a review follows its WP's (last) implement call, an implement follows
    the review of whichever dependency ended last, and the first implement follows the command's start. Returns
    seconds: ``start`` (command start to the chain's first agent), ``agents`` (the chain's agent calls, start of
    Python to exit), ``review`` (implement→review hand-offs), ``dependency`` (dependency→WP hand-offs), ``end``
    (last agent to the command's exit), and ``wps``, the chain's WPs in order.
    """
    if not calls:
        return {}
    last = {(c.wp, c.role): c for c in calls}
    call = max(calls, key=lambda c: c.end)
    parts: dict[str, Any] = {"start": 0.0, "agents": 0.0, "review": 0.0, "dependency": 0.0}
    parts["end"] = timing.started_at + timing.wall - call.end
    wps: list[str] = []
    while True:
        parts["agents"] += call.end - call.start
        if call.role == "implement":
            wps.insert(0, call.wp)
        before = [last[d, "review"] for d in deps.get(call.wp, ()) if (d, "review") in last]
        if call.role == "review" and (call.wp, "implement") in last:
            earlier = last[call.wp, "implement"]
            parts["review"] += call.start - earlier.end
        elif call.role == "implement" and before:
            earlier = max(before, key=lambda c: c.end)
            parts["dependency"] += call.start - earlier.end
        else:
            parts["start"] = call.start - timing.started_at
            break
        call = earlier
    parts["wps"] = wps
    return parts


def read_timeline(path: Path) -> list[Call]:
    """Return the fake agents' calls recorded in *path*, in start order."""
    if not path.exists():
        return []
    calls = []
    for line in path.read_text().splitlines():
        role, wp, start, end = line.split()
        calls.append(Call(role, wp, float(start), float(end)))
    return sorted(calls, key=lambda c: c.start)
