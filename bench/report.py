"""Turn a benchmark run's raw data into the markdown report (``bench/results/latest.md``)."""

from __future__ import annotations

import math
import statistics
from typing import Any

from bench import schedule
from bench.dags import Dag
from bench.schedule import BLIND_ORDERS, ORDERS

TARGET_RATIO = 1.05  # issue 11: mean makespan over max(critical path, work / N), quality suite
TARGET_WORST_RATIO = 1.10  # ... and its worst case
TARGET_DEPENDENCY = 0.040  # dependency done -> dependant's agent started, median of all hand-offs
TARGET_REVIEW = 0.030  # implement done -> review agent started, median of all hand-offs
TARGET_START = 0.250  # launch -> first agent, median of all runs
TARGET_PER_WP = 0.080  # kittydoit's own cost per WP (zero-time agents, -n 1)
TARGET_FLAT = 1.20  # the biggest feature's per-WP cost over the smallest's
TARGET_LIST = 1.0  # the first `kittydoit list` of the scale feature
TARGET_NOOP = 1.0
TARGET_3X = 10.0  # spec-kitty-orchestrator's wall time over kittydoit's, on the 3.x diamond


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f} ms"  # NaN: nothing to measure


def render(data: dict[str, Any], raw: str = "latest.json") -> str:
    """Return the whole report as markdown; *raw* names the JSON file beside it."""
    parts = [_header(data, raw), _targets(data)]
    if data.get("floors"):
        parts.append(_floors(data))
    if data.get("errors"):
        parts.append("## Failures\n\n" + "\n".join(f"- {e.splitlines()[0]}" for e in data["errors"]) + "\n")
    if data.get("quality"):
        parts.append(_quality(data["quality"], _floor_of(data)))
    if data.get("simulated"):
        parts.append(_simulated(data["simulated"]))
    if data.get("dispatch"):
        parts.append(_dispatch(data["dispatch"]))
    if data.get("overhead"):
        parts.append(_overhead(data))
    if data.get("noop") or data.get("scale"):
        parts.append(_scale(data))
    if data.get("peer"):
        parts.append(_peer(data["peer"]))
    if data.get("3x"):
        parts.append(_mission_3x(data["3x"]))
    return "\n".join(parts)


def _header(data: dict[str, Any], raw: str) -> str:
    m = data["machine"]
    return (
        "# kittydoit benchmarks\n\n"
        f"Taken {data['started']} with `{data['command']}` ({data['mode']} mode, {data['repeat']} runs per case, "
        f"medians; {data['elapsed'] / 60:.0f} min in all).\n\n"
        f"Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory_gb']:.0f} GiB; load average "
        f"{m['load_before']} before and {m['load_after']} after. {m['system']}; Python {m['python']}; "
        f"{m['git']}; doit {m['doit']}; kittydoit {m['kittydoit_commit']}.\n\n"
        "Agents are `bench/fake_agent.py`: each call sleeps the time drawn for that WP and phase, an implementer "
        "writes and commits one file, a reviewer approves. kittydoit runs from compiled bytecode, as an installed "
        "copy does. Times are wall-clock seconds unless marked. "
        f"Raw data: [{raw}]({raw}).\n"
        + _where_time_went(data)
    )


def _where_time_went(data: dict[str, Any]) -> str:
    seconds = data.get("suite_seconds") or {}
    if not seconds:
        return ""
    parts = ", ".join(f"{name} {value / 60:.1f} min" for name, value in seconds.items())
    return f"\nTime per suite: {parts}.{_cuts(data)}\n"


def _cuts(data: dict[str, Any]) -> str:
    """Say which runs are repeated fewer times than the rest (none is left out)."""
    cuts = []
    if data.get("scale") and data["repeat"] > 1:
        cuts.append(f"the full run of the {data['scale']['wps']}-WP scale feature (-n 2, no target) is run once")
    return f" Fewer runs than {data['repeat']}: " + "; ".join(cuts) + "." if cuts else ""


def _targets(data: dict[str, Any]) -> str:
    issue11 = _issue11_rows(data)
    lead = "All from this run."
    if issue11:
        lead = (
            "Issue 11's targets first, all from this run; a missed one names the floor this machine sets (see Floors)."
        )
    rows = [
        "## Targets\n",
        lead + "\n",
        "| target | measured | verdict | floor on this machine |",
        "|---|---|---|---|",
    ]
    rows += issue11
    sims = data.get("simulated") or []
    if sims:
        doit_worse = sum(_worse_than_blind(r, r["doit"]["median"]) for r in sims)
        defined_worse = sum(_worse_than_blind(r, r["defined"]) for r in sims)
        rows.append(
            "| never worse than the best of simple list-scheduling orders (chain, id, random) | doit's own "
            f"dispatcher, simulated at zero overhead on {len(sims)} cases: first-in-first-out (doit as is) worse "
            f"in {doit_worse}, definition order worse in {defined_worse} (see below) | "
            f"{'met' if defined_worse == 0 else 'not always: see below'} | |"
        )
    noop = data.get("noop")
    if noop:
        rows.append(
            f"| no-op rerun of {noop['wps']} WPs under 1 s | {noop['wall']:.2f} s | "
            f"{'met' if noop['wall'] < TARGET_NOOP else 'missed'} | |"
        )
    scale = data.get("scale")
    if scale:
        rows.append(
            f"| scale: {scale['wps']} WPs (no target) | `kittydoit list` {scale['list'][0]['wall']:.1f} s the first "
            f"time (every WP file parsed), then {scale['list_wall']:.2f} s, "
            f"{scale['list_rss_mb']:.0f} MB; full run (-n 2) {scale['run']['wall']:.0f} s, "
            f"{scale['run']['max_rss_mb']:.0f} MB per process | - | |"
        )
    peer = data.get("peer")
    if peer and "cases" in peer:
        cases = peer["cases"]
        walls = ", ".join(
            f"{c['dag']} {c['wall_ratio']:.1f}x" if c["spec_kitty"] else f"{c['dag']} not timed (spec-kitty left WPs "
            f"unfinished in all {len(c['spec_kitty_failed'])} runs)"
            for c in cases
        )
        rows.append(
            f"| side by side with spec-kitty 0.16.2 (no target) | spec-kitty's wall time / kittydoit's: {walls} | - | |"
        )
    elif peer:
        rows.append(f"| side by side with spec-kitty 0.16.2 | skipped: {peer['skipped']} | - | |")
    threex = data.get("3x")
    if threex and "skipped" in threex:
        rows.append(f"| a 3.x mission {TARGET_3X:.0f}x faster than spec-kitty-orchestrator | skipped: {threex['skipped']} | - | |")
    elif threex:
        ratio = threex["wall_ratio"]
        verdict = "-" if math.isnan(ratio) else ("met" if ratio >= TARGET_3X else "missed")
        rows.append(
            f"| a 3.x mission ({threex['dag']}, 1 s agents, -n {threex['workers']}) {TARGET_3X:.0f}x faster than "
            f"spec-kitty-orchestrator 0.1.2 | {_wall(threex['orchestrator_wall'])} against "
            f"{_wall(threex['kittydoit_wall'])}: {_ratio(ratio)} | {verdict} | |"
        )
    return "\n".join(rows) + "\n"


def _verdict(met: bool) -> str:
    return "met" if met else "missed"


def _row(target: str, measured: str, met: bool | None, floor: str) -> str:
    """One targets row; the floor is shown only next to a missed target."""
    verdict = "-" if met is None else _verdict(met)
    return f"| {target} | {measured} | {verdict} | {floor if met is False else ''} |"


def _pooled(quality: list[dict[str, Any]], key: str) -> list[float]:
    """Return every hand-off of *key* of every run of the quality suite (not the per-case medians)."""
    return [x for r in quality for run in r["runs"] for x in run.get("handoff_samples", {}).get(key, [])]


def _floor_of(data: dict[str, Any]) -> dict[str, float]:
    """Return the floors each target is held to, in seconds (empty when the run measured none)."""
    f = data.get("floors")
    if not f:
        return {}
    call = f["agent_start"] + f["supervisor_start"]  # each agent call: its own start, and kittydoit's way to it
    ended = f.get("agent_exit", 0.0)  # a hand-off starts at the agent's last line; its exit comes after it
    out = {
        "call": call,
        "review": ended + call + f["git"],  # at least the diff the reviewer is shown
        "dependency": ended + call,  # its worktree prepared while the last dependency was in review (kittydoit.ahead)
        # each agent call is longer than its drawn sleep by all the fake agent does besides (start, imports,
        # an implementer's commit, exit) and kittydoit's way to it; a review waits for one git command too
        "implement_call": f.get("implement_call", ended + f["agent_start"]) + f["supervisor_start"],
        "review_call": f.get("review_call", ended + f["agent_start"]) + f["supervisor_start"] + f["git"],
        "start": f["import_kittydoit_cli"] + f["worktree_add"] + call,
        "per_wp": f["worktree_add"] + 2 * f["supervisor_start"],
        "list": f["import_kittydoit_cli"],
    }
    git_calls = _git_calls_per_wp(data)
    if git_calls is not None:
        out["per_wp_now"] = out["per_wp"] + max(git_calls - 1, 0) * f["git"]
    return out


def _git_calls_per_wp(data: dict[str, Any]) -> float | None:
    prof = data.get("profile")
    if not prof:
        return None
    calls: float = prof["run"]["parts"]["git, every subprocess"]["calls"]
    return calls / float(prof["wps"])


def _floor_span(record: dict[str, Any], floor: dict[str, float]) -> float:
    """Return the makespan floor of a quality case: its bound with every agent call made as long as a call of the
    fake agent that sleeps no time takes here, started the way kittydoit starts it (a review also waits for one
    git command), plus kittydoit's own start to its first agent."""
    dag = record["dag_json"]
    longer = Dag(
        dag["name"], dag["seed"], {k: tuple(v) for k, v in dag["deps"].items()},
        {k: (i + floor["implement_call"], r + floor["review_call"]) for k, (i, r) in dag["durations"].items()},
    )  # fmt: skip
    # the first implement call's start is in the launch floor too: counted once
    return schedule.lower_bound(longer, record["workers"]) + floor["start"] - floor["call"]


def _bare_floors(quality: list[dict[str, Any]], computed_mean: str, computed_worst: str) -> tuple[str, str]:
    """Return the makespan rows' floors: the bare orchestrators', when every case ran them, before the computed."""
    if not all(r.get("bare_runs") for r in quality):
        return computed_mean, computed_worst
    bare_mean = _mean([r["bare_ratio"] for r in quality])
    bare_worst = max(quality, key=lambda r: r["bare_ratio"])
    mean = (
        f"measured: {_pct(bare_mean)} on average ({_per_n(quality, 'bare_ratio')}) for a bare orchestrator run "
        f"beside kittydoit on the same cases (the same agents in the same order, nothing else; see Schedule "
        f"quality){_beyond(bare_mean, TARGET_RATIO)}"
    )
    worst = (
        f"measured: {_pct(bare_worst['bare_ratio'])} ({bare_worst['dag']} -n {bare_worst['workers']}) for "
        f"the bare orchestrator{_beyond(bare_worst['bare_ratio'], TARGET_WORST_RATIO)}"
    )
    if all(r.get("bare_doit_runs") for r in quality):
        doit_mean = _mean([r["bare_doit_ratio"] for r in quality])
        doit_worst = max(quality, key=lambda r: r["bare_doit_ratio"])
        mean += (
            f"; {_pct(doit_mean)} ({_per_n(quality, 'bare_doit_ratio')}) for the same on doit, kittydoit's engine"
            f"{_beyond(doit_mean, TARGET_RATIO, doit=True)}"
        )
        worst += (
            f"; {_pct(doit_worst['bare_doit_ratio'])} ({doit_worst['dag']} -n {doit_worst['workers']}) for the "
            f"same on doit{_beyond(doit_worst['bare_doit_ratio'], TARGET_WORST_RATIO, doit=True)}"
        )
    return f"{mean}; {computed_mean}", f"{worst}; {computed_worst}"


def _per_n(quality: list[dict[str, Any]], key: str) -> str:
    """Return the mean of each quality case's *key* (a makespan over its bound) per -n, as "-n 1: +x %, ..."."""
    return ", ".join(
        f"-n {n}: {_pct(_mean([r[key] for r in quality if r['workers'] == n]))}"
        for n in sorted({r["workers"] for r in quality})
    )


def _beyond(ratio: float, target: float, *, doit: bool = False) -> str:
    """Say whether a bare orchestrator's makespan *ratio* misses *target* too (with *doit*: the one on doit)."""
    if ratio <= target:
        return ""
    if doit:
        return (
            ": it misses the target too: doit's own cost, with nothing else done, is more than the target leaves on "
            "this machine"
        )
    return ": it misses the target too, which is beyond this machine with these agents"


def _net_flat(net: float) -> str:
    """Say what a cost ratio less the checkout's growth (see the flatness row) means."""
    if net <= 1:
        return "the checkout's growth accounts for all of it"
    return "within 20 %" if net <= TARGET_FLAT else "beyond 20 %"


def _issue11_rows(data: dict[str, Any]) -> list[str]:
    rows = []
    floor = _floor_of(data)
    unmeasured = "not measured (no floors suite)"
    quality = data.get("quality") or []
    if quality:
        ratios = [r["ratio"] for r in quality]
        mean, worst = _mean(ratios), max(ratios)
        worst_case = max(quality, key=lambda r: r["ratio"])
        per_n = _per_n(quality, "ratio")
        spans = [_floor_span(r, floor) / r["lower_bound"] for r in quality] if floor else []
        floor_mean = (
            f"computed: {_pct(_mean(spans))} on average, each agent call longer by what the fake agent does besides "
            "sleeping (see Floors)"
        ) if spans else unmeasured
        floor_worst = f"computed: {_pct(max(spans))} (see Floors)" if spans else unmeasured
        floor_mean, floor_worst = _bare_floors(quality, floor_mean, floor_worst)
        rows.append(_row(
            "makespan within 5 % of max(critical path, work / N) on average (quality suite, 0.5-3 s agents)",
            f"{_pct(mean)} on average over {len(quality)} cases ({per_n})", mean <= TARGET_RATIO, floor_mean,
        ))  # fmt: skip
        rows.append(_row(
            "... and within 10 % in its worst case",
            f"{_pct(worst)} ({worst_case['dag']} -n {worst_case['workers']})", worst <= TARGET_WORST_RATIO,
            floor_worst,
        ))  # fmt: skip
        for key, label, target in (
            ("dependency", "dependency done → dependant's agent started", TARGET_DEPENDENCY),
            ("review", "implement done → review agent started", TARGET_REVIEW),
        ):
            samples = _pooled(quality, key)
            direct = _pooled(quality, f"{key}_direct")
            # The hand-off itself is judged: a wait for a free worker is the schedule's, which the makespan rows judge.
            value = median(direct)
            rows.append(_row(
                f"{label} under {target * 1000:.0f} ms (median)",
                f"{_ms(value)}, median of the {len(direct)} direct ones (no other agent started in between) in "
                f"{sum(len(r['runs']) for r in quality)} runs; {_ms(median(samples))} over all {len(samples)}, "
                "waits for a free worker included (per case: see Schedule quality)",
                None if math.isnan(value) else value < target,
                f"{_ms(floor[key])} (see Floors)" if floor else unmeasured,
            ))  # fmt: skip
        starts = [run["handoffs"]["startup"] for r in quality for run in r["runs"] if run.get("handoffs")]
        value = median(starts)
        rows.append(_row(
            f"launch → first agent under {TARGET_START * 1000:.0f} ms (median)",
            f"{_ms(value)}, median of {len(starts)} runs", None if math.isnan(value) else value < TARGET_START,
            f"{_ms(floor['start'])} (see Floors)" if floor else unmeasured,
        ))  # fmt: skip
    overhead = data.get("overhead") or []
    if overhead:
        per = ", ".join(f"{r['wps']} WPs: {_ms(r['kittydoit_per_wp'])}" for r in overhead)
        worst = max(r["kittydoit_per_wp"] for r in overhead)
        if floor:
            now = floor.get("per_wp_now")
            with_git = (
                f"; {_ms(now)} with the {_git_calls_per_wp(data):.1f} git processes per WP kittydoit starts now"
                if now is not None else ""
            )  # fmt: skip
            per_floor = f"{_ms(floor['per_wp'])}: a worktree and two supervisor starts{with_git} (see Floors)"
        else:
            per_floor = unmeasured
        rows.append(_row(
            f"kittydoit's own cost per WP at most {TARGET_PER_WP * 1000:.0f} ms (zero-time agents, -n 1, agent "
            "time subtracted; the run's start and end, judged by the launch row, left out: see Overhead)", per,
            worst <= TARGET_PER_WP, per_floor,
        ))  # fmt: skip
        small = min(overhead, key=lambda r: r["wps"])
        big = max(overhead, key=lambda r: r["wps"])
        flat = big["kittydoit_per_wp"] / small["kittydoit_per_wp"]
        flat_floor = "none: the machine's costs do not grow with the feature; the growth is kittydoit's (see the profile)"
        if "worktree_add" in small and "worktree_add" in big:
            grown = big["kittydoit_per_wp"] - small["kittydoit_per_wp"]
            checkout = big["worktree_add"] - small["worktree_add"]
            net = (big["kittydoit_per_wp"] - checkout) / small["kittydoit_per_wp"]
            flat_floor = (
                f"what grows is each WP's checkout: making a new WP's worktree writes every file of the repository, "
                f"{_ms(small['worktree_add'])} at {small['wps']} WPs and "
                f"{_ms(big['worktree_add'])} at {big['wps']} (+{_ms(checkout)}); kittydoit's cost per WP grew "
                f"{'+' if grown >= 0 else ''}{_ms(grown)}, the checkout being made beside the agents "
                f"(kittydoit.ahead). Less the checkout's growth, {big['wps']}/{small['wps']} is {net:.2f}x "
                f"({_net_flat(net)}); see Overhead"
            )
        rows.append(_row(
            f"... and flat: the {big['wps']}-WP figure within 20 % of the {small['wps']}-WP figure",
            f"{big['wps']}/{small['wps']}: {flat:.2f}x", abs(flat - 1) <= TARGET_FLAT - 1, flat_floor,
        ))  # fmt: skip
    scale = data.get("scale")
    if scale:
        first = scale["list"][0]["wall"]
        rows.append(_row(
            f"`kittydoit list` of {scale['wps']} WPs under 1 s, the first call too",
            f"first call {first:.2f} s, then {scale['list_wall']:.2f} s (median)", first < TARGET_LIST,
            f"{_ms(floor['list'])}: starting Python and importing kittydoit's CLI (see Floors)"
            if floor else unmeasured,
        ))  # fmt: skip
    return rows


def _floors(data: dict[str, Any]) -> str:
    f = data["floors"]
    floor = _floor_of(data)
    n = len(f["samples"]["agent_start"])
    out = [
        "## Floors\n",
        "What the latencies above cannot go below on this machine, measured in this run (medians). The agents' "
        "*start* in their timeline is their first line of Python (before their imports) and their *end* their last "
        "(they exit with `os._exit` right after it), so every hand-off holds one interpreter start and one exit; "
        "kittydoit starts each agent through a supervisor (`kittydoit/supervisor.py`) forked from the process that "
        "runs the agent while the agent before ran, which spawns the agent.\n",
        "| | floor | median | samples |",
        "|---|---|---|---|",
        f"| a | fake agent: spawn to its first line of Python (`python -S bench/fake_agent.py`) | "
        f"{_ms(f['agent_start'])} | {n} |",
        f"| z | fake agent: its last line of Python (its end in the timeline) to its exit, as its parent sees it | "
        f"{_ms(f.get('agent_exit', 0.0))} | {len(f['samples'].get('agent_exit', []))} |",
        f"| i | fake agent: a whole implement call that sleeps no time (spawn to exit: start, imports, a file "
        f"written and committed, exit) | {_ms(f.get('implement_call', 0.0))} | "
        f"{len(f['samples'].get('implement_call', []))} |",
        f"| r | fake agent: a whole review call that sleeps no time | {_ms(f.get('review_call', 0.0))} | "
        f"{len(f['samples'].get('review_call', []))} |",
        f"| e | what kittydoit's start of an agent (`ProcessRunner.run`: its spare supervisor, forked while the "
        f"agent before ran, spawns it) adds to a bare spawn, to the agent's first line | "
        f"{_ms(f['supervisor_start'])} | {len(f['samples']['supervisor_start'])} |",
        f"| b | one `git rev-parse HEAD` in a small repository | {_ms(f['git'])} | {len(f['samples']['git'])} |",
        f"| c | a new WP's worktree, made as kittydoit makes it, in a small repository | {_ms(f['worktree_add'])} | "
        f"{len(f['samples']['worktree_add'])} |",
        f"| d | starting Python (`python -c pass`) | {_ms(f['python'])} | |",
        f"| d' | starting Python and importing kittydoit's CLI | {_ms(f['import_kittydoit_cli'])} | |",
        "\nThe floors of the targets, from these:\n",
        "| target | floor | from |",
        "|---|---|---|",
        f"| implement done → review agent started | {_ms(floor['review'])} | z + e + a + b (kittydoit looks at "
        "what the implementer left with git at least once) |",
        f"| dependency done → dependant's agent started | {_ms(floor['dependency'])} | z + e + a (the "
        "dependant's worktree is prepared while its last dependency is in review) |",
        f"| launch → first agent | {_ms(floor['start'])} | d' + c + e + a |",
        f"| kittydoit's cost per WP | {_ms(floor['per_wp'])} | c + 2 e (the agent's own start and exit are agent "
        "time) |",
        f"| `kittydoit list`, first call | {_ms(floor['list'])} | d' |",
        "| makespan | per case, in Schedule quality | the bound with each implement call longer by i + e "
        "and each review by r + e + b, plus the launch floor less a + e (its first call's start) |",
    ]
    if "per_wp_now" in floor:
        out.append(
            f"\nWith the {_git_calls_per_wp(data):.1f} git processes per WP kittydoit starts now (profile below), "
            f"c + 2 e + the other git processes × b = {_ms(floor['per_wp_now'])} per WP."
        )
    return "\n".join(out) + "\n"


def _worse_than_blind(row: dict[str, Any], span: float) -> bool:
    best: float = min(row["orders"][o] for o in BLIND_ORDERS)
    return span > best * 1.001


def _quality(rows: list[dict[str, Any]], floor: dict[str, float]) -> str:
    out = [
        "## Schedule quality (real runs, sleeping agents)\n",
        "Each WP's agent time is drawn log-uniformly from 0.5-3 s; implement takes 2/3 of it, review 1/3. "
        "*bound* = max(critical path, total work / N). *sim* is kittydoit's schedule at zero overhead: doit's own "
        "dispatcher, in definition order as kittydoit has it, on a simulated clock (*FIFO sim*: doit's own "
        "first-in-first-out order, median of 5 as its set order varies); *chain*, *best blind* "
        "(best of chain, id, random) and *best* (also critical-path and longest-task-first, which need the "
        "durations) are list schedules at zero overhead. *overhead on the makespan* = real - sim. "
        "*floor*: the makespan computed from the measured floors (see Floors). *bare*: the median makespan of "
        "`bench/bare.py`, a bare orchestrator run beside kittydoit: the same agents in the "
        "same order (longest chain first), a thread per worker, one `git worktree add` per WP and one `git status` "
        "after each implement, and nothing else (no doit, lanes, records, prompts or logs). *bare doit*: "
        "`bench/bare_doit.py`, the same work on doit as kittydoit runs it (`doit -n N run` over an implement and a "
        "review task per WP, python-actions in doit's forked workers, its database and reporter), run beside the "
        "other two, the order of the three reversed every other time: what the engine itself costs. "
        "Hand-offs, seen from the agents' own timeline (medians of all the case's runs' hand-offs together): "
        "*implement→review* from a WP's implementer "
        "exiting to its reviewer's first line of Python, *dependency→WP* from the last dependency's reviewer "
        "exiting to the WP's implementer starting (this also holds waits for a free worker), *start* from "
        "launching kittydoit to the first agent, *end* from the last agent to kittydoit's exit. Each hand-off "
        "includes the start of the agent's supervisor and of the fake agent (see Floors).\n",
        "| feature | WPs | -n | bound | kittydoit | vs bound | bare | bare doit | floor | sim | FIFO sim | chain | "
        "best blind | best | overhead on the makespan | implement→review | dependency→WP | start | end |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        floor_cell = _pct(_floor_span(r, floor) / r["lower_bound"]) if floor else "-"
        bound = r["lower_bound"]
        orders = r["orders"]
        sim = r["defined_simulated"]
        fifo = r["doit_simulated"]["median"]
        bare = _pct(r["bare_ratio"]) if r.get("bare_runs") else "-"
        bare_doit = _pct(r["bare_doit_ratio"]) if r.get("bare_doit_runs") else "-"
        out.append(
            f"| {r['dag']} | {r['wps']} | {r['workers']} | {bound:.1f} | {r['wall']:.1f} | {_pct(r['ratio'])} | "
            f"{bare} | {bare_doit} | {floor_cell} | {_pct(sim / bound)} | {_pct(fifo / bound)} | {_pct(orders['chain'] / bound)} | "
            f"{_pct(min(orders[o] for o in BLIND_ORDERS) / bound)} | {_pct(min(orders.values()) / bound)} | "
            f"{r['wall'] - sim:.1f} s | {_ms(r['handoffs']['review'])} | {_ms(r['handoffs']['dependency'])} | "
            f"{_ms(r['handoffs']['startup'])} | {_ms(r['handoffs']['tail'])} |"
        )
    return "\n".join(out) + "\n"


def _simulated(rows: list[dict[str, Any]]) -> str:
    out = [
        "## doit's dispatch order, simulated (zero overhead)\n",
        "doit's real `TaskControl`/`TaskDispatcher` on kittydoit's task graph, driven like doit's parallel "
        "runner with a simulated clock. *first-in-first-out* is doit as it is (ready tasks start in the order "
        "they became ready; dependants released together come in `set` order); *definition order* is doit with "
        "its ready queue handed out in the order the tasks were defined (longest remaining chain first), which "
        "is what kittydoit does (`kittydoit.dispatch`, `kittydoit.tasks.task_order`). Mean "
        "and worst makespan over the bound, per -n, over "
        f"{len({r['dag'] for r in rows})} seeded DAGs of {min(r['wps'] for r in rows)}-"
        f"{max(r['wps'] for r in rows)} WPs (narrow, medium and wide).\n",
        "| -n | cases | first-in-first-out | definition order | " + " | ".join(ORDERS) + " |",
        "|---|---|---|---|---|" + "---|" * (len(ORDERS) - 1),
    ]
    for n in sorted({r["workers"] for r in rows}):
        sel = [r for r in rows if r["workers"] == n]

        def cell(values: list[float]) -> str:
            return f"{_pct(_mean(values))} (worst {_pct(max(values))})"

        out.append(
            f"| {n} | {len(sel)} | {cell([r['doit']['median'] / r['lower_bound'] for r in sel])} | "
            f"{cell([r['defined'] / r['lower_bound'] for r in sel])} | "
            + " | ".join(cell([r["orders"][o] / r["lower_bound"] for r in sel]) for o in ORDERS)
            + " |"
        )
    fifo = [r["doit"]["median"] / min(r["orders"][o] for o in BLIND_ORDERS) for r in rows]
    defined = [r["defined"] / min(r["orders"][o] for o in BLIND_ORDERS) for r in rows]
    losses = [r for r, x in zip(rows, defined, strict=True) if x > 1.001]
    beaten = sum(r["orders"]["chain"] > min(r["orders"][o] for o in BLIND_ORDERS) * 1.001 for r in losses)
    out.append(
        f"\nAgainst the best of the blind orders (chain, id, random) per case: first-in-first-out is worse in "
        f"{sum(x > 1.001 for x in fifo)} of {len(rows)} cases (mean {_pct(_mean(fifo))}, worst {_pct(max(fifo))}); "
        f"definition order in {sum(x > 1.001 for x in defined)} (mean {_pct(_mean(defined))}, worst "
        f"{_pct(max(defined))}). Of the cases where definition order loses, {beaten} are ones where the chain "
        "order itself is beaten by id or random order (no one fixed order wins every case); in the other "
        f"{len(losses) - beaten}, doit's dispatch falls short of the ideal chain-order list schedule (it hands out "
        "the successors of one finished task at a time and discovers tasks lazily).\n"
    )
    return "\n".join(out)


def _dispatch(rows: list[dict[str, Any]]) -> str:
    out = [
        "## doit's first-in-first-out order against definition order (real runs)\n",
        "The same features run by kittydoit as it is (ready tasks in definition order, `kittydoit.dispatch`) and "
        "with that switched off (doit's own first-in-first-out ready queue). The cases are the ones where the "
        "simulation showed doit's first-in-first-out order hurting most among 20-30 WP features with seeds 1-7 (picked before any real run), so they show the "
        "effect where it matters, not its average (the simulation table gives that).\n",
        "| feature | -n | bound | FIFO: sim | FIFO: real | definition order: sim | definition order: real | "
        "real gain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        bound = r["lower_bound"]
        out.append(
            f"| {r['dag']} | {r['workers']} | {bound:.1f} | {_pct(r['doit_simulated']['median'] / bound)} | "
            f"{r['fifo_wall']:.1f} s ({_pct(r['fifo_wall'] / bound)}) | {_pct(r['defined_simulated'] / bound)} | "
            f"{r['defined_wall']:.1f} s ({_pct(r['defined_wall'] / bound)}) | "
            f"{(1 - r['defined_wall'] / r['fifo_wall']) * 100:.0f} % shorter |"
        )
    return "\n".join(out) + "\n"


def _overhead(data: dict[str, Any]) -> str:
    agent = data["agent_cost"]
    out = [
        "## Overhead (zero-time agents, -n 1)\n",
        f"One fake-agent call, run directly, takes {_ms(agent['implement'])} (implement: Python start, write, "
        f"git add and commit) and {_ms(agent['review'])} (review). The agent time subtracted below is the agents' "
        "own in each run: what their timeline holds (an implementer's `git add` and commit take longer the more "
        "files the repository has, and here the repository grows with the feature) plus their interpreters' start "
        "and exit as measured directly"
        + (f" ({_ms(agent['implement_outside'])} and {_ms(agent['review_outside'])})" if "review_outside" in agent
           else "")
        + ".\n",
        "*start + end*: from launching kittydoit to the first agent, and from the last agent to kittydoit's exit, "
        "once per run. *kittydoit per WP* leaves them out: (wall - (start + end)) / WPs - agent calls per WP; "
        "*with start + end* spreads them over the WPs. *new worktree*: a new WP's worktree made as kittydoit makes "
        "it (`Git.prepare_worktree`: a new branch, git's worktree files, a checkout of every file) in the repository "
        "as the run left it; the repository, and so the checkout, grows with the feature.\n",
        "| WPs | wall | CPU | start + end | per WP | agent calls per WP | kittydoit per WP | with start + end | "
        "new worktree |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["overhead"]:
        fixed = r.get("fixed")
        out.append(
            f"| {r['wps']} | {r['wall']:.1f} s | {r['cpu']:.1f} s | {'-' if fixed is None else _ms(fixed)} | "
            f"{_ms(r['per_wp'])} | {_ms(r['agent_per_wp'])} | {_ms(r['kittydoit_per_wp'])} | "
            f"{_ms(r.get('kittydoit_per_wp_all', r['kittydoit_per_wp']))} | "
            f"{_ms(r['worktree_add']) if 'worktree_add' in r else '-'} |"
        )
    prof = data.get("profile")
    if prof:
        out += [
            f"\nWhere the time goes: cProfile of one {prof['wps']}-WP run in a single process (`-n 0`) and of "
            "its no-op rerun (cumulative time of each function; the parts overlap, e.g. a lane move includes "
            "parsing its WP file):\n",
            "| part | run: s | per WP | share | calls | no-op rerun: s | share |",
            "|---|---|---|---|---|---|---|",
        ]
        n = prof["wps"]
        for label, part in prof["run"]["parts"].items():
            other = prof["noop"]["parts"][label]
            out.append(
                f"| {label} | {part['seconds']:.2f} | {_ms(part['seconds'] / n)} | {part['share'] * 100:.0f} % | "
                f"{part['calls']} | {other['seconds']:.3f} | {other['share'] * 100:.0f} % |"
            )
        out.append(
            f"| total (profiled) | {prof['run']['profiled_seconds']:.2f} | {_ms(prof['run']['profiled_seconds'] / n)} "
            f"| 100 % | | {prof['noop']['profiled_seconds']:.3f} | 100 % |"
        )
        out.append(
            "\ncProfile slows Python code down (not the subprocesses), so Python parts weigh more here than in "
            "an unprofiled run."
        )
    return "\n".join(out) + "\n"


def _scale(data: dict[str, Any]) -> str:
    out = [
        "## No-op rerun and scale\n",
        "| what | WPs | wall | CPU | peak RSS (largest process) |",
        "|---|---|---|---|---|",
    ]
    noop = data.get("noop")
    if noop:
        run = noop["runs"][len(noop["runs"]) // 2]
        out.append(f"| no-op `kittydoit run` (median) | {noop['wps']} | {noop['wall']:.2f} s | {run['cpu']:.2f} s | "
                   f"{run['max_rss_mb']:.0f} MB |")  # fmt: skip
    scale = data.get("scale")
    if scale:
        first = scale["list"][0]
        out.append(
            f"| `kittydoit list`, first (parses every WP file) | {scale['wps']} | {first['wall']:.2f} s | "
            f"{first['cpu']:.2f} s | {first['max_rss_mb']:.0f} MB |"
        )
        listing = scale["list"][len(scale["list"]) // 2]
        out.append(f"| `kittydoit list` (median of all) | {scale['wps']} | {scale['list_wall']:.2f} s | {listing['cpu']:.2f} s | "
                   f"{scale['list_rss_mb']:.0f} MB |")  # fmt: skip
        for label, key in (("full run, -n 2", "run"), ("no-op rerun", "noop")):
            r = scale[key]
            out.append(
                f"| {label} | {scale['wps']} | {r['wall']:.1f} s | {r['cpu']:.1f} s | {r['max_rss_mb']:.0f} MB |"
            )
    if noop:
        start = noop["python_start"]
        out.append(
            f"\nFloor of any command: starting Python takes {_ms(start['python'])}, importing kittydoit's CLI "
            f"{_ms(start['import_kittydoit_cli'])}.\n"
        )
    return "\n".join(out) + "\n"


def _failed_runs(cases: list[dict[str, Any]]) -> str:
    counts = [
        f"{c['dag']} {len(c['spec_kitty_failed'])} of {len(c['spec_kitty']) + len(c['spec_kitty_failed'])} runs"
        for c in cases
        if c.get("spec_kitty_failed")
    ]
    return ", ".join(counts) or "none"


def _peer(peer: dict[str, Any]) -> str:
    if "cases" not in peer:
        return f"## Side by side with spec-kitty 0.16.2\n\nSkipped: {peer['skipped']}\n"
    out = [
        "## Side by side with spec-kitty 0.16.2 (`spec-kitty orchestrate`)\n",
        f"{peer['how']}. Same WP files, same fake agents (as `claude` and `codex` on PATH for spec-kitty), "
        "same concurrency limit. */zero*: agents that take no time (all of the wall time is the orchestrator's "
        "and the agents' start-up); */sleep*: agents that sleep (the diamond: 1 s per call, the ideal is 6 s). "
        "*overhead* = wall - bound. spec-kitty runs that left WPs unfinished (it exits 0 all the same) are not "
        "timed; they are counted here: " + _failed_runs(peer["cases"]) + ".\n",
        "| feature | WPs | -n | bound | spec-kitty wall | kittydoit wall | wall ratio | spec-kitty CPU | "
        "kittydoit CPU | overhead spec-kitty / kittydoit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in peer["cases"]:
        if not c["spec_kitty"]:
            out.append(
                f"| {c['dag']} | {c['wps']} | {c['workers']} | {c['lower_bound']:.1f} | no run completed | "
                f"{c['kittydoit_wall']:.1f} s | | | {c['kittydoit_cpu']:.1f} s | |"
            )
            continue
        out.append(
            f"| {c['dag']} | {c['wps']} | {c['workers']} | {c['lower_bound']:.1f} | {c['spec_kitty_wall']:.1f} s | "
            f"{c['kittydoit_wall']:.1f} s | {c['wall_ratio']:.1f}x | {c['spec_kitty_cpu']:.1f} s | "
            f"{c['kittydoit_cpu']:.1f} s | {c['spec_kitty_overhead']:.1f} s / {c['kittydoit_overhead']:.1f} s = "
            f"{c['overhead_ratio']:.1f}x |"
        )
    return "\n".join(out) + "\n"


def _wall(seconds: float) -> str:
    return "no finished run" if math.isnan(seconds) else f"{seconds:.1f} s"


def _ratio(ratio: float) -> str:
    return "-" if math.isnan(ratio) else f"{ratio:.1f}x"


_WHO_3X = {"kittydoit": "kittydoit `-n {n} run`", "orchestrator": "spec-kitty-orchestrator 0.1.2 `--max-concurrent {n}`"}
_CHAIN_PARTS = (
    ("start", "start: launch to the first agent"),
    ("agents", "agent calls on the chain"),
    ("review", "implement→review hand-offs"),
    ("dependency", "dependency→WP hand-offs"),
    ("end", "end: last agent to exit"),
)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _ending(runs: list[dict[str, Any]]) -> tuple[str, str, str]:
    """Return how the runs ended, as spec-kitty says: lanes, validate, force_count per WP (each distinct value)."""
    lanes = sorted({", ".join(sorted(set(r["lanes"].values()))) for r in runs})
    valid = sorted({"passed" if r["valid"] else f"failed ({len(r['validate_errors'])}+ errors)" for r in runs})
    forced = sorted({", ".join(f"{wp} {n}" for wp, n in sorted(r["force_count"].items())) for r in runs})
    return " / ".join(lanes) or "-", " / ".join(valid) or "-", " / ".join(forced) or "-"


def _mission_3x(rec: dict[str, Any]) -> str:
    if "skipped" in rec:
        return f"## A spec-kitty 3.x mission, side by side with spec-kitty-orchestrator\n\nSkipped: {rec['skipped']}\n"
    n, bound = rec["workers"], rec["lower_bound"]
    one_lane = all(len(lane) == 1 for lane in rec["lanes"])
    out = [
        "## A spec-kitty 3.x mission, side by side with spec-kitty-orchestrator 0.1.2\n",
        f"The mission `{rec['mission']}` (`bench/mission.py`): the {rec['wps']}-WP {rec['dag']} (WP01; WP02 and WP03 "
        "after WP01; WP04 after both) written as spec-kitty's `finalize-tasks` leaves a mission (topology `lanes`, "
        f"{'one execution lane per WP' if one_lane else 'execution lanes'}, every WP `planned` in "
        f"`status.events.jsonl`), checked by spec-kitty-cli {rec['spec_kitty']} before the first run. Both "
        f"orchestrators move lanes through that spec-kitty ({rec['orchestrator_how']}); both call "
        "`bench/fake_agent.py`, 1 s per call (kittydoit as its configured agents, spec-kitty-orchestrator as "
        f"`claude`), at most {n} at once; runs interleaved, each on a fresh copy. *bound* = max(critical path, "
        f"total work / N) of the DAG with each execution lane's WPs in a chain: max({rec['critical_path']:.1f}, "
        f"{rec['total_work']:.1f} / {n}) = {bound:.1f} s. After each run spec-kitty itself says how the mission "
        "ended: the lanes (`agent tasks status --json`), `agent status validate --json`, and `force_count` per WP "
        "(`status.json`). A run that leaves a WP outside `approved`/`done` or exits non-zero is counted, not timed.\n",
        "| orchestrator | runs timed | not finished | wall | over the bound | CPU | lanes at the end | validate | "
        "force_count per WP |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for who, label in _WHO_3X.items():
        runs, failed = rec[who], rec[f"{who}_unfinished"]
        if not runs and not failed:
            continue
        lanes, valid, forced = _ending(runs + failed)
        wall = rec[f"{who}_wall"]
        over = "-" if math.isnan(wall) else f"+{wall - bound:.1f} s"
        cpu = "-" if math.isnan(rec[f"{who}_cpu"]) else f"{rec[f'{who}_cpu']:.1f} s"
        out.append(
            f"| {label.format(n=n)} | {len(runs)} | {len(failed)} | {_wall(wall)} | {over} | {cpu} | {lanes} | "
            f"{valid} | {forced} |"
        )
    if rec.get("orchestrator_skipped"):
        out.append(f"\nspec-kitty-orchestrator was not run: {rec['orchestrator_skipped']}.")
    out.append(
        f"\n**Speed-up: {_ratio(rec['wall_ratio'])}** (spec-kitty-orchestrator's median wall time over "
        f"kittydoit's; the target is {TARGET_3X:.0f}x).\n"
    )
    out += [
        "Where the time goes, along the chain of agent calls that ended each run (from the last agent back: a "
        "review after its implement, an implement after the dependency that ended last; read from the agents' "
        "own timeline; the parts add up to the wall time; medians). An agent call's time is counted from its "
        "first line of Python to its exit, so it includes waiting for its prompt on stdin: spec-kitty-orchestrator "
        "writes prompts from its asyncio loop, which stands still during each of its synchronous `spec-kitty` "
        "calls, so its agents wait seconds for their prompt, and its own share below is understated.\n",
        "| part | kittydoit | spec-kitty-orchestrator |",
        "|---|---|---|",
    ]
    for key, label in _CHAIN_PARTS:
        cells = [_median([r["chain"][key] for r in rec[who] if r["chain"]]) for who in _WHO_3X]
        out.append(f"| {label} | " + " | ".join("-" if math.isnan(c) else f"{c:.1f} s" for c in cells) + " |")
    cells = [rec[f"{who}_wall"] for who in _WHO_3X]
    out.append("| wall time | " + " | ".join(_wall(c) for c in cells) + " |")
    shares = []
    for who in _WHO_3X:
        own = [r["wall"] - r["chain"]["agents"] for r in rec[who] if r["chain"]]
        walls = [r["wall"] for r in rec[who] if r["chain"]]
        if own:
            shares.append(f"{_median(own):.1f} s of {_median(walls):.1f} s ({_median(own) / _median(walls) * 100:.0f} %)")
        else:
            shares.append("-")
    out.append("| **the orchestrator's own share** (wall time less the agent calls on the chain) | " + " | ".join(shares) + " |")
    calls = _speckitty_table(rec["kittydoit"])
    if calls:
        out += [
            "\nkittydoit's calls to spec-kitty (through its one long-lived spec-kitty process, "
            "`kittydoit/speckitty.py`), timed around each call inside kittydoit (medians per run; the calls of "
            "the two workers overlap, so they do not add up to wall time):\n",
            "| call | calls per run | seconds per run | seconds per call |",
            "|---|---|---|---|",
            *calls,
        ]
    return "\n".join(out) + "\n"


def _speckitty_table(runs: list[dict[str, Any]]) -> list[str]:
    labels = {label for r in runs for label in r.get("speckitty_calls", {})}
    medians = {}
    for label in labels:
        counts = [r["speckitty_calls"].get(label, {}).get("count", 0) for r in runs]
        seconds = [r["speckitty_calls"].get(label, {}).get("seconds", 0.0) for r in runs]
        medians[label] = (_median(counts), _median(seconds))
    rows, total = [], []
    for label, (count, spent) in sorted(medians.items(), key=lambda item: -item[1][1]):
        rows.append(f"| {label} | {count:.0f} | {spent:.2f} s | {f'{spent / count:.2f} s' if count else '-'} |")
    for r in runs:
        total.append(sum(c["seconds"] for c in r.get("speckitty_calls", {}).values()))
    if rows:
        rows.append(f"| all | | {_median(total):.2f} s | |")
    return rows
