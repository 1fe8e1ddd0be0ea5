"""Run a command as a benchmark run: wall time, CPU time and peak memory of its whole process tree.

:func:`timed` starts the command, waits for it with ``os.wait4`` (which reports the CPU time of the process
and of every descendant it waited for, and the largest resident set among them) and returns a
:class:`Timing`.
The fake agents' timeline (one line per agent call, see ``bench/fake_agent.py``) is read by
:func:`read_timeline`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path


class BenchError(Exception):
    """A benchmark run did not do what it had to; the message says which and shows the output."""


@dataclass(frozen=True)
class Timing:
    """One run of a command: how long it took, what it cost, and how it ended."""

    argv: tuple[str, ...]
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
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,
        returncode=proc.returncode,
        output=text,
    )
    if check and proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode} in {cwd}:\n{text[-3000:]}")
    return timing


def read_timeline(path: Path) -> list[Call]:
    """Return the fake agents' calls recorded in *path*, in start order."""
    if not path.exists():
        return []
    calls = []
    for line in path.read_text().splitlines():
        role, wp, start, end = line.split()
        calls.append(Call(role, wp, float(start), float(end)))
    return sorted(calls, key=lambda c: c.start)
