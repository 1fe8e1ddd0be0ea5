"""Benchmark kittydoit: ``python -m bench`` (quick, minutes) or ``python -m bench --full`` (about 50 minutes).

Writes ``bench/results/latest.md`` (the report) and ``bench/results/latest.json`` (every run's timings, the
seeds and DAGs, the machine); ``--only 3x`` alone writes ``3x.md`` and ``3x.json`` instead. Scratch
repositories go to a temporary folder outside any git repository (spec-kitty commits in the enclosing repository
otherwise), removed at the end unless ``--keep``; spec-kitty 0.16.2 and spec-kitty-orchestrator 0.1.2 are
installed once into ``~/.cache/kittydoit-bench/`` (``--cache``), spec-kitty-cli 3.2.7 into
``~/.cache/kittydoit-spec-kitty/`` as for the tests (``bench/mission.py``). The floors the targets are held to
(process starts, bare git) are measured whenever the quality, overhead or scale suite runs; the quality suite
also runs the bare orchestrators beside kittydoit (``bench/bare.py``, and ``bench/bare_doit.py``, the same on
doit), the makespan's measured floors.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import doit

from bench import report, suites
from bench.measure import BenchError
from bench.suites import Settings

HERE = Path(__file__).resolve().parent
SUITES = ("floors", "quality", "simulated", "dispatch", "overhead", "scale", "peer", "3x")

QUICK: dict[str, Any] = {
    "repeat": 1,
    "quality_dags": ((10, "medium", 1, (1, 2, 4, 8)),),
    "workers": (1, 2, 4, 8),
    "dispatch_dags": ((20, "narrow", 1, 2),),
    "simulated_sizes": (10, 50, 200),
    "simulated_seeds": 2,
    "overhead_sizes": (10, 50),
    "scale_size": 200,
    "peer_dags": ("diamond",),
    "peer_workers": 2,
}
FULL: dict[str, Any] = {
    "repeat": 3,
    "quality_dags": (
        (10, "narrow", 1, (1, 2, 4, 8)),
        (10, "wide", 2, (1, 2, 4, 8)),
        (30, "medium", 1, (1, 2, 4, 8)),
    ),
    "workers": (1, 2, 4, 8),
    # where the simulation showed doit's FIFO order hurting most, among 20-30 WP features (seeds 1-7)
    "dispatch_dags": ((20, "narrow", 4, 2), (30, "medium", 2, 4)),
    "simulated_sizes": (10, 25, 50, 100, 200),
    "simulated_seeds": 5,
    "overhead_sizes": (10, 100, 500),
    "scale_size": 1000,
    "peer_dags": ("diamond", "synthetic-8"),
    "peer_workers": 2,
}


def _as_installed() -> None:
    """Run kittydoit as an installed copy runs: from compiled bytecode.

    ``pip install`` compiles a package's modules; a shell with ``PYTHONDONTWRITEBYTECODE`` set (some containers
    set it) would make every kittydoit process compile them again, about 0.2 s here, which no user pays.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    compileall.compile_dir(str(HERE.parent / "kittydoit"), quiet=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the full benchmark (about 50 minutes on 2 cores)")
    parser.add_argument("--only", choices=SUITES, action="append", help="run only this suite (repeatable)")
    parser.add_argument("--repeat", type=int, help="runs per case (default: 1 quick, 3 full)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where latest.md/json go")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "kittydoit-bench")
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch repositories (the path is printed)"
    )
    args = parser.parse_args(argv)
    preset: dict[str, Any] = dict(FULL if args.full else QUICK)
    if args.repeat:
        preset["repeat"] = args.repeat
    work = Path(tempfile.mkdtemp(prefix="kittydoit-bench-"))
    started = time.monotonic()
    _as_installed()

    def progress(text: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {text}", flush=True)

    settings = Settings(
        mode="full" if args.full else "quick", work=work, cache=args.cache, progress=progress, **preset
    )
    chosen = list(args.only or SUITES)
    if not {"quality", "overhead", "scale"}.isdisjoint(chosen) and "floors" not in chosen:
        chosen.append("floors")  # the targets' floors are measured in the same run as the targets
    # The report is rendered whole from one run's data: a run of the 3.x suite alone writes 3x.md/3x.json, so
    # that it leaves the other suites' latest figures in place.
    stem = "3x" if chosen == ["3x"] else "latest"
    data: dict[str, Any] = {
        "command": "python -m bench"
        + (" --full" if args.full else "")
        + "".join(f" --only {s}" for s in (args.only or []))
        + (f" --repeat {args.repeat}" if args.repeat else ""),
        "mode": settings.mode,
        "repeat": settings.repeat,
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "settings": {k: v for k, v in preset.items()},
        "machine": machine(),
    }
    data["errors"] = []
    data["suite_seconds"] = {}
    suite_runs = {
        "floors": lambda: data.__setitem__("floors", suites.floors(settings)),
        "quality": lambda: data.__setitem__("quality", suites.quality(settings)),
        "simulated": lambda: data.__setitem__("simulated", suites.simulated(settings)),
        "dispatch": lambda: data.__setitem__("dispatch", suites.dispatch_order(settings)),
        "overhead": lambda: _overhead(settings, data),
        "scale": lambda: data.__setitem__("scale", suites.scale(settings)),
        "peer": lambda: data.__setitem__("peer", suites.side_by_side(settings)),
        "3x": lambda: data.__setitem__("3x", suites.mission_3x(settings)),
    }
    try:
        for name in SUITES:
            if name not in chosen:
                continue
            suite_started = time.monotonic()
            try:
                suite_runs[name]()
            except BenchError as error:  # report it and go on: the other suites' results still count
                progress(f"{name} FAILED: {error}")
                data["errors"].append(f"{name}: {error}")
            data["suite_seconds"][name] = time.monotonic() - suite_started
            _write(args.out, stem, data, started)  # after every suite, so a late failure keeps what was measured
    finally:
        if args.keep:
            progress(f"scratch repositories kept in {work}")
        else:
            progress("deleting the scratch repositories (kept until now: see bench.suites.set_aside)")
            shutil.rmtree(work, ignore_errors=True)
    progress(f"wrote {args.out / stem}.md and {stem}.json")
    return 1 if data["errors"] else 0


def _overhead(settings: Settings, data: dict[str, Any]) -> None:
    data["agent_cost"] = suites.agent_cost(settings)
    data["overhead"], kept = suites.overhead(settings, data["agent_cost"])
    data["noop"] = suites.noop(settings, kept)
    data["profile"] = suites.profile(settings, suites.profile_size(settings))


def _write(out: Path, stem: str, data: dict[str, Any], started: float) -> None:
    data["machine"]["load_after"] = _load()
    data["elapsed"] = time.monotonic() - started
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    (out / f"{stem}.md").write_text(report.render(data, raw=f"{stem}.json"))


def machine() -> dict[str, Any]:
    """Describe the machine and the software versions a result depends on."""
    cpu_model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory = 0.0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        memory = int(meminfo.read_text().split()[1]) / 1024 / 1024
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": memory,
        "load_before": _load(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "git": _output(["git", "--version"]),
        "doit": ".".join(map(str, doit.__version__)),
        "kittydoit_commit": _output(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"])
        + (
            " (uncommitted changes)"
            if _output(["git", "-C", str(HERE.parent), "status", "--porcelain", "kittydoit"])
            else ""
        ),
    }


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}/{five:.2f}/{fifteen:.2f}"


def _output(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "unavailable"


if __name__ == "__main__":
    sys.exit(main())
