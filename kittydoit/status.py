"""Where a run stands, from any terminal, while it runs or after: ``kittydoit status``.

It reads the state files (see :mod:`kittydoit.state`), never the WP files, so it works while agents are busy
and even when a WP file is half-edited. A run is *running* while its run lock is held; a run recorded as running
whose lock nobody holds died without recording its end (say, ``kill -9``) and is shown as aborted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kittydoit.context import Paths
from kittydoit.errors import UserError
from kittydoit.feature import EVENTS_FILE, find_root, load_feature, select_feature
from kittydoit.lanes.eventlog import LANES as LANES_3X
from kittydoit.session import running_pid
from kittydoit.state import BLOCKED, DONE, FAILED, PENDING, RUNNING, SKIPPED, load, parse_iso, read_json


@dataclass
class Status:
    """A feature's run, as the state files tell it."""

    feature: str
    run: dict[str, Any]
    wps: dict[str, dict[str, Any]]
    agents: dict[str, Any]
    pid: int | None  # the orchestrator's pid while the run is going
    counts: dict[str, int] = field(default_factory=dict)
    lanes: dict[str, str] = field(default_factory=dict)  # a 3.x mission's WP lanes, from its event log now

    @property
    def running(self) -> bool:
        return self.pid is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "running": self.running,
            "pid": self.pid if self.pid and self.pid > 0 else None,
            "run": self.run,
            "counts": self.counts,
            "active": {wp: r for wp, r in self.wps.items() if r.get("status") == RUNNING},
            "wps": self.wps,
            "agents": self.agents,
            "lanes": self.lanes,
        }


def choose_feature(root: Path, feature: str | None) -> str:
    """Return the feature meant: the one named, else the one running, else the last one run, else the only one."""
    if feature:
        return select_feature(root, feature).name
    specs = root / "kitty-specs"
    running = [p.name for p in sorted(specs.iterdir()) if p.is_dir() and running_pid(Paths(root, p.name))]
    if len(running) == 1:
        return running[0]
    last = load(root).get("last_feature")
    return str(last) if last else select_feature(root, None).name


def read_status(start: Path, feature: str | None) -> Status:
    """Return the status of *feature* (see :func:`choose_feature`) in the repository at *start*."""
    root = find_root(start)
    state = load(root)
    name = choose_feature(root, feature)
    entry = state.get("runs", {}).get(name)
    if entry is None:
        raise UserError(
            root / ".kittify", f"no kittydoit run of {name} is recorded yet; start one with `kittydoit run`"
        )
    paths = Paths(root=root, feature=name)
    wps: dict[str, dict[str, Any]] = {}
    run_id = entry.get("run", {}).get("id")
    for wp_id, record in entry.get("wps", {}).items():
        live = read_json(paths.wp_record(wp_id)) or {}
        merged = dict(record)
        if live.get("run") == run_id:  # the worker's record is fresher; doit's verdict stays
            merged.update(live)
            if record.get("status") in (DONE, FAILED, BLOCKED, SKIPPED):
                merged.update({k: record[k] for k in ("status", "reason") if record.get(k)})
        wps[wp_id] = merged
    pid = running_pid(paths)
    run = dict(entry.get("run", {}))
    if pid is None:  # not running: a WP still marked running was cut off
        for record in wps.values():
            if record.get("status") == RUNNING:
                record["status"] = "interrupted"
        if run.get("status") == RUNNING:  # no process holds the run lock: the run died without saying so
            shown = f" (pid {run['pid']})" if run.get("pid") else ""
            run["status"] = "aborted"
            run["reason"] = (f"the orchestrator{shown} is gone: it was killed before it could record the end "
                             "of the run; `kittydoit run` resumes")  # fmt: skip
    counts: dict[str, int] = {}
    for record in wps.values():
        counts[record.get("status", PENDING)] = counts.get(record.get("status", PENDING), 0) + 1
    agents = read_json(paths.health) or entry.get("agents", {})
    return Status(name, run, wps, agents, pid, counts, _mission_lanes(root, name))


def _mission_lanes(root: Path, name: str) -> dict[str, str]:
    """Return a 3.x mission's WP lanes as its event log says now ({} for a 0.x feature, or one that fails to read)."""
    folder = root / "kitty-specs" / name
    if not (folder / EVENTS_FILE).exists():
        return {}
    try:
        feature = load_feature(root, folder, strict=False)
    except UserError:
        return {}  # `kittydoit list` names the problem; status still shows the run
    return {wp.id: wp.lane for wp in feature.wps.values()}


def render(status: Status, now: datetime | None = None) -> str:
    """Return the human-readable status."""
    now = now or datetime.now(UTC)
    run = status.run
    total = len(status.wps)
    done = status.counts.get(DONE, 0) + status.counts.get(SKIPPED, 0)
    if status.running:
        state = f"running for {_ago(run.get('started'), now)}"
        if status.pid and status.pid > 0:
            state += f" (pid {status.pid})"
    else:
        state = f"{run.get('status', 'unknown')}" + (f" ({run['reason']})" if run.get("reason") else "")
        if run.get("ended"):
            state += f", ended {_ago(run.get('ended'), now)} ago"
    lines = [f"{status.feature}  run {run.get('id', '?')}  {state}"]
    parts = [f"{done}/{total} done"]
    for key in (RUNNING, FAILED, BLOCKED, "interrupted", PENDING):
        if status.counts.get(key):
            parts.append(f"{status.counts[key]} {key}")
    lines.append("  " + " · ".join(parts))
    if status.lanes:
        by_lane = {lane: sum(1 for v in status.lanes.values() if v == lane) for lane in LANES_3X}
        lines.append("  lanes in spec-kitty: " + " · ".join(f"{n} {lane}" for lane, n in by_lane.items() if n))
    lines += _active_lines(status, now) + _problem_lines(status) + _agent_lines(status)
    return "\n".join(lines)


def _active_lines(status: Status, now: datetime) -> list[str]:
    active = [(wp, r) for wp, r in status.wps.items() if r.get("status") == RUNNING]
    lines = ["  active:"] if active else []
    for wp, r in active:
        attempt = f"attempt {r['attempt']}" if r.get("attempt") else ""
        since = _ago(r.get("phase_started") or r.get("started"), now)
        lines.append(
            f"    {wp}  {_cut(r.get('title', ''), 28):28}  {r.get('phase') or 'waiting':16}  "
            f"{r.get('agent') or '-':14}  {attempt:10}  {since}"
        )
        if r.get("waiting"):
            lines.append(f"          waiting for {r['waiting']}")
    return lines


def _problem_lines(status: Status) -> list[str]:
    lines = []
    for key in (FAILED, BLOCKED, "interrupted"):
        rows = [(wp, r) for wp, r in status.wps.items() if r.get("status") == key]
        if rows:
            lines.append(f"  {key}:")
            lines += [f"    {wp}  {r.get('reason') or r.get('phase') or ''}" for wp, r in rows]
    return lines


def _agent_lines(status: Status) -> list[str]:
    unhealthy = {a: h for a, h in status.agents.items() if h.get("consecutive_failures") or _cooling(h)}
    lines = ["  agents:"] if unhealthy else []
    for agent, health in unhealthy.items():
        text = f"{health.get('consecutive_failures', 0)} failures in a row"
        if health.get("last_failure"):
            text += f" (last: {health['last_failure'].get('class')})"
        if _cooling(health):
            text += f", cooling down until {health.get('cooling_down_until')}"
        lines.append(f"    {agent}: {text}")
    return lines


def _cooling(health: dict[str, Any]) -> bool:
    until = health.get("cooling_down_until_epoch")
    return bool(until and until > time.time())


def _ago(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "?"
    try:
        then = parse_iso(stamp)
    except ValueError:
        return "?"
    seconds = max(0, int((now - then).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
