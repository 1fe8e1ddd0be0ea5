"""The benchmark suites: floors, schedule quality, overhead, no-op rerun, scale, and spec-kitty side by side.

Each suite takes the :class:`Settings` of the run and returns plain data (lists of dicts) for the JSON file
and the report. Every measured run works on a fresh copy of a prepared repository, so runs never see each
other's worktrees, lanes or doit database. Repeated runs of different cases are interleaved (case A, case B,
case A, ...) so that a change in machine load hits every case alike; so are kittydoit and the bare orchestrators
(``bench/bare.py``, ``bench/bare_doit.py``) on each quality case, in an order reversed every other time.
"""

from __future__ import annotations

import itertools
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import dispatch, mission, orchestrator, peer, schedule
from bench.dags import SHAPES, Dag, make_dag, zero_time
from bench.feature import FEATURE, GIT_ENV, agent_command, agents_yaml, git, make_kittydoit_repo
from bench.measure import (
    BenchError,
    Timing,
    critical_chain,
    handoff_samples,
    handoffs,
    read_timeline,
    timed,
)
from kittydoit.git import Git
from kittydoit.process import ProcessRunner

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """What one benchmark run measures, and how often."""

    mode: str
    repeat: int
    quality_dags: tuple[
        tuple[int, str, int, tuple[int, ...]], ...
    ]  # (WPs, shape, seed, -n values) run for real
    workers: tuple[int, ...]  # -n values simulated
    dispatch_dags: tuple[tuple[int, str, int, int], ...]  # (WPs, shape, seed, -n) run both ways
    simulated_sizes: tuple[int, ...]
    simulated_seeds: int
    overhead_sizes: tuple[int, ...]
    scale_size: int
    peer_dags: tuple[str, ...]
    peer_workers: int
    work: Path
    cache: Path
    progress: Progress = field(default=print)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---- kittydoit runs ----------------------------------------------------------------------------------------


# kittydoit's CLI with the definition-order ready queue switched off, for the dispatch comparison.
_FIFO_MAIN = (
    "import sys\nimport kittydoit.dispatch\nkittydoit.dispatch.use_definition_order = lambda: None\n"
    "from kittydoit.cli import main\nsys.exit(main())\n"
)


BARE = Path(__file__).with_name("bare.py")
BARE_DOIT = Path(__file__).with_name("bare_doit.py")
_ORCHESTRATORS = ("kittydoit", "bare", "bare_doit")  # run on every quality case (see Runs.bare)


class Runs:
    """Prepared repositories and fresh copies of them, for kittydoit runs."""

    _made = itertools.count(1)  # run folders are numbered across every suite of a benchmark run

    def __init__(self, work: Path) -> None:
        self.work = work

    def template(self, dag: Dag, tag: str) -> Path:
        root = self.work / "templates" / f"{tag}-{dag.name}"
        if not root.exists():
            make_kittydoit_repo(root, dag)
        return root

    def copy(self, template: Path) -> Path:
        target = self.work / "runs" / f"{next(self._made):04d}-{template.name}"
        shutil.copytree(template, target, symlinks=True)
        return target

    def run(
        self, repo: Path, dag: Dag, *args: str, check: bool = True, fifo: bool = False
    ) -> tuple[Timing, Path]:
        """Run ``kittydoit ARGS`` in *repo* with the fake agents sleeping *dag*'s durations.

        With *fifo*, kittydoit runs with doit's own first-in-first-out ready queue (kittydoit.dispatch off).
        """
        env, timeline = self._agents_env(repo, dag)
        command = [sys.executable, "-m", "kittydoit"]
        if fifo:
            command = [sys.executable, "-c", _FIFO_MAIN]
        timing = timed([*command, *args], cwd=repo, env=env, check=check)
        return timing, timeline

    def bare(self, repo: Path, dag: Dag, workers: int, *, doit: bool = False) -> tuple[Timing, Path]:
        """Run the bare orchestrator (``bench/bare.py``; with *doit*, ``bench/bare_doit.py``, the same on doit) in
        *repo* over *dag* on *workers*: the measured floors."""
        env, timeline = self._agents_env(repo, dag)
        graph = repo.parent / f"{repo.name}-deps.json"
        graph.write_text(json.dumps({"deps": dag.deps}))
        prefix = repo / ".worktrees" / FEATURE
        prefix.parent.mkdir(exist_ok=True)
        agent = json.dumps(agent_command("implement")[:-1])  # bare.py appends each call's role
        program = [str(BARE_DOIT)] if doit else ["-S", str(BARE)]  # bare_doit.py needs site-packages for doit
        argv = [sys.executable, *program, str(graph), str(workers), str(prefix), agent]
        timing = timed(argv, cwd=repo, env=env)
        return timing, timeline

    @staticmethod
    def _agents_env(repo: Path, dag: Dag) -> tuple[dict[str, str], Path]:
        """Return the environment that has the fake agents sleep *dag*'s durations and record their calls, and the
        timeline file they record them in (both files beside *repo*)."""
        durations = repo.parent / f"{repo.name}-durations.json"
        durations.write_text(json.dumps(dag.durations))
        timeline = repo.parent / f"{repo.name}-timeline.txt"
        env = {
            **os.environ,
            **GIT_ENV,
            "KITTYDOIT_BENCH_DURATIONS": str(durations),
            "KITTYDOIT_BENCH_TIMELINE": str(timeline),
        }
        return env, timeline

    def discard(self, repo: Path) -> None:
        """Set *repo* and its run's files aside, to be deleted with the whole scratch folder (see :func:`set_aside`)."""
        for extra in repo.parent.glob(f"{repo.name}-*"):
            set_aside(extra, self.work)
        set_aside(repo, self.work)


# Scratch folders are deleted only when the benchmark ends, while this much disk is free (then at once).
_KEEP_WHILE_FREE = 20 * 2**30


def set_aside(path: Path, work: Path) -> None:
    """Move *path* into *work*'s trash, deleted with *work* when the benchmark ends; delete it now when the disk is
    short of space.

    Deleting files makes creating new ones slower for minutes after: on a file system without a journal (this
    machine's ext4), the kernel skips the inodes freed in the last minute or more (``recently_deleted``) and reads
    an inode table block for each one it skips. Creating 2,000 files took 35-40 us each in a quiet folder and
    600-900 us each where 100,000 files had been deleted minutes before (measured here); each run checks out
    thousands of files, and the runs of 500 WPs a quarter of a million. So no run's files are deleted while other
    runs are measured.
    """
    if not path.exists():
        return
    if shutil.disk_usage(work).free < _KEEP_WHILE_FREE:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        return
    trash = work / "trash"
    trash.mkdir(exist_ok=True)
    path.rename(trash / f"{next(_SET_ASIDE):05d}-{path.name}")


_SET_ASIDE = itertools.count(1)


def _checked_done(timing: Timing, count: int) -> None:
    if f"{count}/{count} done" not in timing.output:
        raise BenchError(f"kittydoit did not finish all {count} WPs:\n{timing.output[-3000:]}")


# ---- schedule quality --------------------------------------------------------------------------------------


def quality(settings: Settings) -> list[dict[str, Any]]:
    """Run real features with sleeping agents at each -n; compare with the bound and with list schedules."""
    runs = Runs(settings.work)
    cases = []
    for n, shape, seed, workers_list in settings.quality_dags:
        dag = make_dag(n, width=SHAPES[shape], seed=seed, name=f"{shape}-{n}-s{seed}")
        cases += [(dag, workers) for workers in workers_list]
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for dag, workers in cases:
        results[(dag.name, workers)] = {
            "dag": dag.name,
            "wps": len(dag.deps),
            "workers": workers,
            "seed": dag.seed,
            "total_work": dag.total_work,
            "critical_path": schedule.critical_path(dag),
            "lower_bound": schedule.lower_bound(dag, workers),
            "orders": schedule.best_orders(dag, workers),
            "doit_simulated": _simulated(dag, workers, "doit"),
            "defined_simulated": dispatch.simulate(dag, workers, "defined")[0],
            "dag_json": dag.as_json(),
            "runs": [],
            "bare_runs": [],
            "bare_doit_runs": [],
        }
    for rep in range(settings.repeat):
        for dag, workers in cases:
            settings.progress(f"quality {dag.name} -n {workers} (run {rep + 1}/{settings.repeat})")
            # kittydoit and the bare orchestrators one after the other, the order reversed every other time: the
            # machine's speed drifts within minutes
            record = results[(dag.name, workers)]
            for kind in _ORCHESTRATORS if rep % 2 == 0 else _ORCHESTRATORS[::-1]:
                repo = runs.copy(runs.template(dag, "quality"))
                if kind != "kittydoit":
                    record[f"{kind}_runs"].append(_bare_run(runs, repo, dag, workers, doit=kind == "bare_doit"))
                else:
                    timing, timeline = runs.run(repo, dag, "-n", str(workers), "run")
                    _checked_done(timing, len(dag.deps))
                    calls = read_timeline(timeline)
                    record["runs"].append(
                        {
                            **timing.as_json(),
                            "agent_start_order": [f"{c.wp}:{c.role}" for c in calls],
                            "handoffs": handoffs(calls, dag.deps, timing),
                            "handoff_samples": handoff_samples(calls, dag.deps),  # the suite-wide medians use these
                        }
                    )
                runs.discard(repo)
    for record in results.values():
        record["wall"] = median([r["wall"] for r in record["runs"]])
        record["ratio"] = record["wall"] / record["lower_bound"]
        for kind in _ORCHESTRATORS[1:]:
            record[f"{kind}_wall"] = median([r["wall"] for r in record[f"{kind}_runs"]])
            record[f"{kind}_ratio"] = record[f"{kind}_wall"] / record["lower_bound"]
        record["handoffs"] = {  # hand-offs: the median of every run's samples together, not of their medians
            key: median([x for r in record["runs"] for x in r["handoff_samples"][key]])
            for key in ("review", "dependency")
        }
        for key in ("startup", "tail"):
            record["handoffs"][key] = median([r["handoffs"][key] for r in record["runs"] if r["handoffs"]])
    return list(results.values())


def dispatch_order(settings: Settings) -> list[dict[str, Any]]:
    """Run the same features with doit's first-in-first-out ready queue and with kittydoit's definition order.

    The cases are fixed in the settings: ones where the simulation predicts that the order matters.
    """
    runs = Runs(settings.work)
    cases = []
    for n, shape, seed, workers in settings.dispatch_dags:
        cases.append((make_dag(n, width=SHAPES[shape], seed=seed, name=f"{shape}-{n}-s{seed}"), workers))
    results: dict[str, dict[str, Any]] = {}
    for dag, workers in cases:
        results[dag.name] = {
            "dag": dag.name,
            "wps": len(dag.deps),
            "workers": workers,
            "lower_bound": schedule.lower_bound(dag, workers),
            "doit_simulated": _simulated(dag, workers, "doit"),
            "defined_simulated": dispatch.simulate(dag, workers, "defined")[0],
            "chain": schedule.list_schedule(dag, workers, schedule.rank(dag, "chain")),
            "fifo_runs": [],
            "defined_runs": [],
            "dag_json": dag.as_json(),
        }
    for rep in range(settings.repeat):
        for dag, workers in cases:
            for fifo in (True, False):
                label = "doit's FIFO" if fifo else "definition order"
                settings.progress(
                    f"dispatch {dag.name} -n {workers}, {label} (run {rep + 1}/{settings.repeat})"
                )
                repo = runs.copy(runs.template(dag, "quality"))
                timing, _ = runs.run(repo, dag, "-n", str(workers), "run", fifo=fifo)
                _checked_done(timing, len(dag.deps))
                results[dag.name]["fifo_runs" if fifo else "defined_runs"].append(timing.as_json())
                runs.discard(repo)
    for record in results.values():
        record["fifo_wall"] = median([r["wall"] for r in record["fifo_runs"]])
        record["defined_wall"] = median([r["wall"] for r in record["defined_runs"]])
    return list(results.values())


def _simulated(dag: Dag, workers: int, variant: str, times: int = 5) -> dict[str, float]:
    """Return the median, best and worst of *times* simulations (doit's set order varies between runs)."""
    spans = sorted(dispatch.simulate(dag, workers, variant)[0] for _ in range(times))
    return {"median": median(spans), "min": spans[0], "max": spans[-1]}


def simulated(settings: Settings) -> list[dict[str, Any]]:
    """Simulate doit's dispatcher (as is, and in definition order) on many DAGs; compare with list orders."""
    rows = []
    for n in settings.simulated_sizes:
        for shape, width in SHAPES.items():
            for seed in range(1, settings.simulated_seeds + 1):
                dag = make_dag(n, width=width, seed=seed)
                for workers in settings.workers:
                    bound = schedule.lower_bound(dag, workers)
                    orders = schedule.best_orders(dag, workers)
                    rows.append(
                        {
                            "dag": dag.name,
                            "wps": n,
                            "shape": shape,
                            "seed": seed,
                            "workers": workers,
                            "lower_bound": bound,
                            "orders": orders,
                            "doit": _simulated(dag, workers, "doit"),
                            "defined": dispatch.simulate(dag, workers, "defined")[0],
                        }
                    )
        settings.progress(f"simulated {n}-WP features")
    return rows


def _bare_run(runs: Runs, repo: Path, dag: Dag, workers: int, *, doit: bool = False) -> dict[str, Any]:
    """Run a bare orchestrator over *dag* in *repo*; its timing, checked to have run every agent call."""
    timing, timeline = runs.bare(repo, dag, workers, doit=doit)
    calls = read_timeline(timeline)
    if len(calls) != 2 * len(dag.deps):
        made = f"{len(calls)} of {2 * len(dag.deps)}"
        name = "on doit " if doit else ""
        raise BenchError(f"the bare orchestrator {name}made {made} agent calls:\n{timing.output}")
    return {"wall": timing.wall, "cpu": timing.cpu, "agent_start_order": [f"{c.wp}:{c.role}" for c in calls]}


# ---- overhead ----------------------------------------------------------------------------------------------


def agent_cost(settings: Settings, times: int = 15) -> dict[str, float]:
    """Return the median wall time of one fake-agent call per role, run directly (no orchestrator), and of the part
    of it outside the agent's own timeline (``<role>_outside``: its interpreter's start and exit)."""
    folder = settings.work / "agent-cost" / "x-WP01"
    set_aside(folder, settings.work)
    folder.mkdir(parents=True)
    git(folder, "init", "-q", "-b", "main")
    git(folder, "commit", "-q", "--allow-empty", "-m", "start")
    timeline = folder.parent / "timeline.txt"
    env = {**os.environ, **GIT_ENV, "KITTYDOIT_BENCH_TIMELINE": str(timeline)}
    costs: dict[str, float] = {}
    for role in ("implement", "review"):
        walls, outside = [], []
        for _ in range(times):
            timeline.unlink(missing_ok=True)
            started = time.perf_counter()
            subprocess.run(
                agent_command(role), cwd=folder, env=env, input=b"prompt", capture_output=True, check=True
            )
            walls.append(time.perf_counter() - started)
            (call,) = read_timeline(timeline)
            outside.append(walls[-1] - (call.end - call.start))
        costs[role] = median(walls)
        costs[f"{role}_outside"] = median(outside)
    return costs


def overhead(settings: Settings, agent: dict[str, float]) -> tuple[list[dict[str, Any]], Path]:
    """Run zero-time features of each size serially (-n 1); what is not agent time is kittydoit's.

    Returns the records and the repository of the last run of the biggest feature, kept for the no-op rerun.
    """
    runs = Runs(settings.work)
    per_call = agent["implement"] + agent["review"]
    dags = [
        zero_time(make_dag(n, width=SHAPES["medium"], seed=1, name=f"zero-{n}"))
        for n in settings.overhead_sizes
    ]
    results: dict[str, dict[str, Any]] = {
        dag.name: {"wps": len(dag.deps), "runs": [], "dag_json": dag.as_json()} for dag in dags
    }
    for rep in range(settings.repeat):
        for dag in dags:
            settings.progress(f"overhead {len(dag.deps)} WPs -n 1 (run {rep + 1}/{settings.repeat})")
            repo = runs.copy(runs.template(dag, "overhead"))
            timing, timeline = runs.run(repo, dag, "-n", "1", "run")
            _checked_done(timing, len(dag.deps))
            calls = read_timeline(timeline)
            ends = handoffs(calls, dag.deps, timing)
            # The agents' time in this run: what their own timeline holds (their git commands grow with the
            # repository), plus their interpreters' start and exit as measured directly (agent_cost).
            inside = sum(c.end - c.start for c in calls)
            outside = sum(agent.get(f"{c.role}_outside", 0.0) for c in calls)
            results[dag.name]["runs"].append(
                {**timing.as_json(), "fixed": ends["startup"] + ends["tail"], "agents": inside + outside}
            )
            if rep == settings.repeat - 1:
                results[dag.name]["worktree_add"] = _worktree_add(repo, settings.work)
            if rep == settings.repeat - 1 and dag is dags[-1]:
                kept = repo
            else:
                runs.discard(repo)
    for record in results.values():
        n = record["wps"]
        record["wall"] = median([r["wall"] for r in record["runs"]])
        record["cpu"] = median([r["cpu"] for r in record["runs"]])
        record["fixed"] = median([r["fixed"] for r in record["runs"]])
        record["per_wp"] = record["wall"] / n
        # The agents' own time per WP in these runs (see above); a call run directly, where it was not recorded.
        runs_agents = [r["agents"] / n for r in record["runs"] if "agents" in r]
        record["agent_per_wp"] = median(runs_agents) if runs_agents else per_call
        per_call_run = record["agent_per_wp"]
        # What each WP costs: the run's fixed start and end (launch -> first agent, last agent -> exit; the
        # launch target's) left out, so that the figure does not shrink with the number of WPs over which they
        # would be spread. With them spread over the WPs: kittydoit_per_wp_all.
        record["kittydoit_per_wp"] = (record["wall"] - record["fixed"]) / n - per_call_run
        record["kittydoit_per_wp_all"] = record["per_wp"] - per_call_run
    return list(results.values()), kept


def _worktree_add(repo: Path, work: Path, times: int = 5) -> float:
    """Return the median time kittydoit takes to make a new WP's worktree in *repo* as a run left it: every file
    of the repository is checked out (see :func:`_new_worktrees`)."""
    return median(_new_worktrees(repo, work, times))


def _new_worktrees(repo: Path, work: Path, times: int) -> list[float]:
    """Return how long each of *times* new WPs' worktrees took kittydoit to make in *repo* (``Git.prepare_worktree``
    of a new branch), then set them aside (:func:`set_aside`) and remove their branches."""
    tool = Git(repo, repo.parent / f"{repo.name}-floor.lock")
    took = []
    for number in range(-1, times):  # the first, untimed, asks git for what one process asks once
        path = repo.parent / f"{repo.name}-floor-{number}"
        started = time.perf_counter()
        tool.prepare_worktree(path, f"bench-floor-{number}", "HEAD")
        if number >= 0:
            took.append(time.perf_counter() - started)
    for number in range(-1, times):
        set_aside(repo.parent / f"{repo.name}-floor-{number}", work)
    git(repo, "worktree", "prune")  # the branches are no worktree's now
    git(repo, "branch", "-q", "-D", *(f"bench-floor-{number}" for number in range(-1, times)))
    return took


def profile(settings: Settings, size: int) -> dict[str, Any]:
    """Profile one zero-time run in a single process (-n 0) and say where kittydoit's time goes."""
    runs = Runs(settings.work)
    dag = zero_time(make_dag(size, width=SHAPES["medium"], seed=1, name=f"zero-{size}"))
    repo = runs.copy(runs.template(dag, "overhead"))
    settings.progress(f"profile of a {size}-WP run (-n 0) and of its no-op rerun")
    first = _profiled(runs, repo, dag, ["-n", "0", "run"])
    again = _profiled(runs, repo, dag, ["run"])
    runs.discard(repo)
    return {"wps": size, "run": first, "noop": again}


# What a profile is broken down into: label -> function (file suffix, name); cumulative times: parts overlap.
_PARTS = {
    "git, every subprocess": ("kittydoit/git.py", "run"),
    "git: worktree creation": ("kittydoit/git.py", "prepare_worktree"),
    "git: merging dependencies": ("kittydoit/git.py", "merge"),
    "git: review base": ("kittydoit/git.py", "base"),
    "git: committing what agents left": ("kittydoit/git.py", "commit_all"),
    "git: the diff to review": ("kittydoit/git.py", "diff"),
    "agent processes (start, wait, stop)": ("kittydoit/process.py", "run"),
    "WP frontmatter parsing (ruamel.yaml)": ("kittydoit/wpfile.py", "_parse"),
    "lane moves (read, edit, write WP file)": ("kittydoit/lanes/frontmatter.py", "_update"),
    "prompt rendering (jinja2)": ("kittydoit/prompts.py", "render"),
    "loading the feature": ("kittydoit/feature.py", "load_feature"),
    "doit up-to-date checks": ("doit/dependency.py", "get_status"),
    "doit database writes": ("doit/dependency.py", "save_success"),
}


def _profiled(runs: Runs, repo: Path, dag: Dag, args: list[str]) -> dict[str, Any]:
    out = repo.parent / f"{repo.name}-profile.pstats"
    script = (
        "import cProfile, sys\nfrom kittydoit.cli import main\nprofiler = cProfile.Profile()\n"
        f"code = profiler.runcall(main, {args!r})\nprofiler.dump_stats({str(out)!r})\nsys.exit(code)\n"
    )
    durations = repo.parent / f"{repo.name}-durations.json"
    durations.write_text(json.dumps(dag.durations))
    env = {**os.environ, **GIT_ENV, "KITTYDOIT_BENCH_DURATIONS": str(durations)}
    timing = timed([sys.executable, "-c", script], cwd=repo, env=env)
    stats = pstats.Stats(str(out))
    total = max(stats.total_tt, 1e-9)  # type: ignore[attr-defined]
    parts: dict[str, dict[str, float]] = {}
    for label, (suffix, name) in _PARTS.items():
        cum, calls = 0.0, 0
        for (filename, _, func), (_, ncalls, _, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
            if func == name and filename.endswith(suffix):
                cum += ct
                calls += ncalls
        parts[label] = {"seconds": cum, "share": cum / total, "calls": calls}
    out.unlink()
    return {"wall": timing.wall, "profiled_seconds": total, "parts": parts}


def noop(settings: Settings, repo: Path) -> dict[str, Any]:
    """Time ``kittydoit run`` in *repo*, where an overhead run finished every WP: nothing is left to do."""
    runs = Runs(settings.work)
    size = max(settings.overhead_sizes)
    dag = zero_time(make_dag(size, width=SHAPES["medium"], seed=1, name=f"zero-{size}"))
    walls: list[dict[str, Any]] = []
    for rep in range(max(3, settings.repeat)):
        settings.progress(f"no-op rerun of {size} WPs ({rep + 1})")
        timing, _ = runs.run(repo, dag, "run")
        if f"{len(dag.deps)} already done" not in timing.output:
            raise BenchError(f"the rerun was not a no-op:\n{timing.output[-2000:]}")
        walls.append(timing.as_json())
    listing, _ = runs.run(repo, dag, "list")
    runs.discard(repo)
    return {
        "wps": size,
        "runs": walls,
        "wall": median([w["wall"] for w in walls]),
        "python_start": _python_start(),
        "list_wall": listing.wall,
    }


def _python_start(times: int = 5) -> dict[str, float]:
    """Return the median time of starting Python and of importing kittydoit's CLI (any command's floor)."""
    bare: list[float] = []
    imported: list[float] = []
    for _ in range(times):
        for argv, sink in (
            ([sys.executable, "-c", "pass"], bare),
            # as the kittydoit command imports it (kittydoit/__main__.py: doit's plugin lookup stood in for first)
            ([sys.executable, "-c", "from kittydoit import plugins; plugins.install(); import kittydoit.cli"],
             imported),
        ):
            started = time.perf_counter()
            subprocess.run(argv, check=True)
            sink.append(time.perf_counter() - started)
    return {"python": median(bare), "import_kittydoit_cli": median(imported)}


# ---- floors ------------------------------------------------------------------------------------------------

def floors(settings: Settings, times: int = 20, pause: float = 0.5) -> dict[str, Any]:
    """Measure what the targets' latencies cannot go below on this machine: process starts and bare git.

    Medians of *times* (the new worktree: half as many) of: the fake agent from spawn to its first line of
    Python (the agents' "start" in the timeline, so every hand-off holds one); from its last line (its "end")
    to its exit as its parent sees it; a whole call of each role that sleeps no time (spawn to exit: its start,
    its imports, an implementer's file and commit, its exit), which is what each call adds to the time it is
    drawn to sleep; what kittydoit's way of starting an agent (``ProcessRunner.run``: the spare supervisor forked
    while the agent before ran spawns it) adds to that; one ``git rev-parse HEAD``; a new WP's worktree as
    kittydoit makes it (``Git.prepare_worktree`` of a new branch); starting Python and importing kittydoit's CLI.
    Each agent start follows *pause* seconds of idling, as in a run of sleeping agents, where every hand-off
    comes after one (a machine that idled runs the next steps slower than one kept busy).
    Each is in seconds, with its raw samples.
    """
    settings.progress("floors: process starts and bare git")
    folder = settings.work / "floors" / "repo"
    set_aside(folder, settings.work)
    folder.mkdir(parents=True)
    git(folder, "init", "-q", "-b", "main")
    (folder / "README.md").write_text("floors\n")
    git(folder, "add", "README.md")
    git(folder, "commit", "-q", "-m", "start")
    env = {**os.environ, **GIT_ENV}
    agent, exits, supervised, rev_parse = [], [], [], []
    calls: dict[str, list[float]] = {"implement": [], "review": []}
    timeline = folder.parent / "timeline.txt"
    prompt = folder.parent / "prompt.md"
    runner = ProcessRunner()
    for _ in range(times):
        timeline.unlink(missing_ok=True)
        time.sleep(pause)
        spawned = time.time()
        subprocess.run(
            agent_command("review"), cwd=folder, env={**env, "KITTYDOIT_BENCH_TIMELINE": str(timeline)},
            input=b"WP01", capture_output=True, check=True,
        )  # fmt: skip
        returned = time.time()
        call = read_timeline(timeline)[0]
        agent.append(call.start - spawned)
        exits.append(returned - call.end)
        calls["review"].append(returned - spawned)
        timeline.unlink()
        time.sleep(pause)
        spawned = time.time()
        subprocess.run(agent_command("implement"), cwd=folder, env=env, input=b"WP01", capture_output=True,
                       check=True)  # fmt: skip
        calls["implement"].append(time.time() - spawned)
        prompt.write_text("WP01")
        time.sleep(pause)
        spawned = time.time()
        runner.run(agent_command("review"), cwd=folder, log_path=folder.parent / "agent.log", stdin_path=prompt,
                   env={**env, "KITTYDOIT_BENCH_TIMELINE": str(timeline)})  # fmt: skip
        supervised.append(read_timeline(timeline)[0].start - spawned)
        started = time.perf_counter()
        subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, env=env, capture_output=True, check=True)
        rev_parse.append(time.perf_counter() - started)
    worktree = _new_worktrees(folder, settings.work, max(1, times // 2))
    set_aside(folder.parent, settings.work)
    python = _python_start(times=max(3, times // 2))
    return {
        "agent_start": median(agent),
        "agent_exit": median(exits),
        "implement_call": median(calls["implement"]),
        "review_call": median(calls["review"]),
        "supervisor_start": max(0.0, median(supervised) - median(agent)),
        "git": median(rev_parse),
        "worktree_add": median(worktree),
        **python,
        "samples": {
            "agent_start": agent,
            "agent_exit": exits,
            "implement_call": calls["implement"],
            "review_call": calls["review"],
            "supervisor_start": supervised,
            "git": rev_parse,
            "worktree_add": worktree,
        },
    }


# ---- scale -------------------------------------------------------------------------------------------------


def scale(settings: Settings) -> dict[str, Any]:
    """Time and memory of ``kittydoit list`` and of a full zero-time run of a big feature."""
    runs = Runs(settings.work)
    n = settings.scale_size
    dag = zero_time(make_dag(n, width=SHAPES["wide"], seed=1, name=f"zero-{n}"))
    settings.progress(f"scale: preparing a {n}-WP repository")
    started = time.perf_counter()
    template = runs.template(dag, "scale")
    prepared = time.perf_counter() - started
    repo = runs.copy(template)
    listings: list[dict[str, Any]] = []
    for rep in range(max(3, settings.repeat)):
        settings.progress(f"scale: kittydoit list of {n} WPs ({rep + 1})")
        listings.append(runs.run(repo, dag, "list")[0].as_json())
    settings.progress(f"scale: full run of {n} zero-time WPs (-n 2)")
    full, _ = runs.run(repo, dag, "-n", "2", "run")
    _checked_done(full, n)
    again, _ = runs.run(repo, dag, "run")
    runs.discard(repo)
    return {
        "wps": n,
        "prepare_seconds": prepared,
        "list": listings,
        "list_wall": median([x["wall"] for x in listings]),
        "list_rss_mb": median([x["max_rss_mb"] for x in listings]),
        "run": full.as_json(),
        "noop": again.as_json(),
    }


# ---- spec-kitty side by side -------------------------------------------------------------------------------


def peer_dags(names: tuple[str, ...]) -> Iterator[Dag]:
    """Yield the features run side by side: a zero-time and a sleeping version of each."""
    for name in names:
        if name == "diamond":
            deps = {"WP01": (), "WP02": ("WP01",), "WP03": ("WP01",), "WP04": ("WP02", "WP03")}
            sleeping = Dag("diamond", 0, deps, {wp: (1.0, 1.0) for wp in deps})
        else:
            n = int(name.split("-")[1])
            sleeping = make_dag(n, width=SHAPES["medium"], seed=1, name=name)
        yield zero_time(Dag(f"{sleeping.name}/zero", sleeping.seed, sleeping.deps, sleeping.durations))
        yield Dag(f"{sleeping.name}/sleep", sleeping.seed, sleeping.deps, sleeping.durations)


def side_by_side(settings: Settings) -> dict[str, Any]:
    """Run spec-kitty 0.16.2's orchestrator and kittydoit on the same features with the same fake agents."""
    spec_bin, how = peer.install(settings.cache)
    if spec_bin is None:
        settings.progress(f"spec-kitty side by side SKIPPED: {how}")
        return {"skipped": how}
    settings.progress(f"spec-kitty side by side: {how}")
    agents_bin = peer.fake_agent_bin(settings.work / "peer-bin")
    env = peer.environment(spec_bin, agents_bin, settings.work / "peer-gitconfig")
    runs = Runs(settings.work)
    workers = settings.peer_workers
    cases = list(peer_dags(settings.peer_dags))
    records: dict[str, dict[str, Any]] = {}
    for dag in cases:
        base = dag.name.split("/")[0]
        template = settings.work / "templates" / f"peer-{base}"
        if not template.exists():
            settings.progress(f"spec-kitty: preparing {base}")
            peer.prepare(template, dag, workers, env)
        records[dag.name] = {
            "dag": dag.name,
            "wps": len(dag.deps),
            "workers": workers,
            "lower_bound": schedule.lower_bound(dag, workers),
            "spec_kitty": [],
            "spec_kitty_failed": [],
            "kittydoit": [],
            "dag_json": dag.as_json(),
        }
    for rep in range(settings.repeat):
        for dag in cases:
            base = dag.name.split("/")[0]
            settings.progress(f"spec-kitty orchestrate {dag.name} ({rep + 1}/{settings.repeat})")
            project = runs.copy(settings.work / "templates" / f"peer-{base}")
            durations = project.parent / f"{project.name}-durations.json"
            durations.write_text(json.dumps(dag.durations))
            timing = timed(
                peer.command(), cwd=project, env={**env, "KITTYDOIT_BENCH_DURATIONS": str(durations)}
            )
            unfinished = peer.unfinished(project, dag)
            if unfinished:  # spec-kitty exits 0 all the same; such a run is reported, not timed
                settings.progress(f"spec-kitty left WPs unfinished: {unfinished}")
                records[dag.name]["spec_kitty_failed"].append({**timing.as_json(), "unfinished": unfinished})
            else:
                records[dag.name]["spec_kitty"].append(timing.as_json())
            runs.discard(project)
            settings.progress(f"kittydoit {dag.name} ({rep + 1}/{settings.repeat})")
            repo = runs.copy(runs.template(dag, "peer"))
            kd, _ = runs.run(repo, dag, "-n", str(workers), "run")
            _checked_done(kd, len(dag.deps))
            records[dag.name]["kittydoit"].append(kd.as_json())
            runs.discard(repo)
    for record in records.values():
        for who in ("spec_kitty", "kittydoit"):
            record[f"{who}_wall"] = median([r["wall"] for r in record[who]])
            record[f"{who}_cpu"] = median([r["cpu"] for r in record[who]])
        if not record["spec_kitty"]:
            record["wall_ratio"] = record["cpu_ratio"] = record["overhead_ratio"] = float("nan")
            continue
        record["wall_ratio"] = record["spec_kitty_wall"] / record["kittydoit_wall"]
        record["cpu_ratio"] = record["spec_kitty_cpu"] / record["kittydoit_cpu"]
        bound = record["lower_bound"]
        record["spec_kitty_overhead"] = record["spec_kitty_wall"] - bound
        record["kittydoit_overhead"] = record["kittydoit_wall"] - bound
        record["overhead_ratio"] = record["spec_kitty_overhead"] / max(record["kittydoit_overhead"], 1e-9)
    return {"how": how, "cases": list(records.values())}


def profile_size(settings: Settings) -> int:
    return settings.overhead_sizes[len(settings.overhead_sizes) // 2]


# ---- a spec-kitty 3.x mission, side by side with spec-kitty-orchestrator -------------------------------------

# kittydoit's CLI with every call to spec-kitty timed: one line "label start end" per call to $KITTYDOIT_BENCH_SPECKITTY
# (doit's workers are forked, so they inherit the wrapping). It only reads the clock around each call.
_SPECKITTY_TIMED_MAIN = """\
import functools, os, sys, time
from kittydoit.speckitty import SpecKitty

def _label(name, args):
    if name == "run":
        return args[1] if args[:1] == ("orchestrator-api",) else " ".join(args[:3])
    return "server start and contract check" if name == "start" else "function " + str(args[0])

def _timed(name):
    method = getattr(SpecKitty, name)

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        started = time.time()
        try:
            return method(self, *args, **kwargs)
        finally:
            line = "%s\\t%.6f\\t%.6f\\n" % (_label(name, args), started, time.time())
            fd = os.open(os.environ["KITTYDOIT_BENCH_SPECKITTY"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, line.encode())
            os.close(fd)
    setattr(SpecKitty, name, wrapper)

for _name in ("start", "run", "function"):
    _timed(_name)
from kittydoit.cli import main
sys.exit(main())
"""

THREEX_DAG = "diamond"


def diamond() -> Dag:
    """Return the 4-WP diamond (WP01; WP02 and WP03 after WP01; WP04 after both) with 1 s agent calls."""
    deps = {"WP01": (), "WP02": ("WP01",), "WP03": ("WP01",), "WP04": ("WP02", "WP03")}
    return Dag("diamond", 0, deps, {wp: (1.0, 1.0) for wp in deps})


def mission_3x(settings: Settings) -> dict[str, Any]:
    """Run one spec-kitty 3.x mission with kittydoit and with spec-kitty-orchestrator 0.1.2, runs interleaved."""
    try:
        spec_kitty = mission.install()
    except (mission.Unavailable, RuntimeError) as error:
        settings.progress(f"3x SKIPPED: spec-kitty-cli {mission.VERSION}: {error}")
        return {"skipped": f"spec-kitty-cli {mission.VERSION} could not be installed: {error}"}
    binary, how = orchestrator.install(settings.cache)
    settings.progress(f"3x: spec-kitty-cli {mission.VERSION} from {spec_kitty}; {how}")
    dag, workers = diamond(), settings.peer_workers
    base = mission.environment(settings.work / "3x-home", spec_kitty, {**os.environ, **GIT_ENV})
    template = settings.work / "templates" / f"3x-{dag.name}"
    settings.progress(f"3x: preparing the {dag.name} mission (spec-kitty checks it)")
    slug = mission.prepare(template, dag, agents_yaml(), base)
    lanes = [lane["wp_ids"] for lane in mission.lanes(dag)]
    record: dict[str, Any] = {
        "dag": dag.name, "mission": slug, "wps": len(dag.deps), "workers": workers, "lanes": lanes,
        "lower_bound": schedule.lower_bound(schedule.in_lanes(dag, lanes), workers),
        "critical_path": schedule.critical_path(schedule.in_lanes(dag, lanes)), "total_work": dag.total_work,
        "spec_kitty": mission.VERSION, "orchestrator_how": how, "dag_json": dag.as_json(),
        "kittydoit": [], "kittydoit_unfinished": [], "orchestrator": [], "orchestrator_unfinished": [],
    }  # fmt: skip
    runs = Runs(settings.work)
    agents_bin = peer.fake_agent_bin(settings.work / "3x-bin")
    for rep in range(settings.repeat):
        who_runs: list[tuple[str, list[str], dict[str, str]]] = [
            ("kittydoit", [sys.executable, "-c", _SPECKITTY_TIMED_MAIN, "-n", str(workers), "run"], base)
        ]
        if binary is not None:
            orchestrator_env = {**base, "PATH": f"{agents_bin}{os.pathsep}{base['PATH']}"}
            who_runs.append(("orchestrator", orchestrator.command(binary, slug, workers), orchestrator_env))
        for who, argv, env in who_runs:
            settings.progress(f"3x: {who} on the {dag.name} mission ({rep + 1}/{settings.repeat})")
            record_run = _run_3x(runs, template, dag, slug, argv=argv, env=env)
            finished = set(record_run["lanes"].values()) <= {"approved", "done"} and record_run["returncode"] == 0
            if not finished:  # reported, not timed
                settings.progress(f"3x: {who} left WPs unfinished: {record_run['lanes']}")
            record[who if finished else f"{who}_unfinished"].append(record_run)
    for who in ("kittydoit", "orchestrator"):
        record[f"{who}_wall"] = median([r["wall"] for r in record[who]])
        record[f"{who}_cpu"] = median([r["cpu"] for r in record[who]])
    record["wall_ratio"] = record["orchestrator_wall"] / record["kittydoit_wall"]
    if binary is None:
        record["orchestrator_skipped"] = how
    return record


def _run_3x(
    runs: Runs, template: Path, dag: Dag, slug: str, *, argv: list[str], env: dict[str, str]
) -> dict[str, Any]:
    """Run *argv* on a fresh copy of the mission; return its timing, where its time went, and how it ended."""
    repo = runs.copy(template)
    durations = repo.parent / f"{repo.name}-durations.json"
    durations.write_text(json.dumps(dag.durations))
    timeline = repo.parent / f"{repo.name}-timeline.txt"
    calls_file = repo.parent / f"{repo.name}-speckitty.txt"
    env = {**env, "KITTYDOIT_BENCH_DURATIONS": str(durations), "KITTYDOIT_BENCH_TIMELINE": str(timeline),
           "KITTYDOIT_BENCH_SPECKITTY": str(calls_file)}  # fmt: skip
    timing = timed(argv, cwd=repo, env=env, check=False)
    calls = read_timeline(timeline)
    result = {
        **timing.as_json(),
        **mission.ending(repo, slug, env),
        "agent_start_order": [f"{c.wp}:{c.role}" for c in calls],
        "handoffs": handoffs(calls, dag.deps, timing),
        "chain": critical_chain(calls, dag.deps, timing),
        "speckitty_calls": _speckitty_calls(calls_file),
    }
    runs.discard(repo)
    return result


def _speckitty_calls(path: Path) -> dict[str, dict[str, float]]:
    """Return, per kind of spec-kitty call kittydoit made, how many and their total seconds."""
    if not path.exists():
        return {}
    calls: dict[str, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        label, start, end = line.split("\t")
        entry = calls.setdefault(label, {"count": 0, "seconds": 0.0})
        entry["count"] += 1
        entry["seconds"] += float(end) - float(start)
    return calls
