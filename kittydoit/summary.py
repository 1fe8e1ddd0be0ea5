"""The account of a run: what was done, by which agents, at what cost, and what failed, with where to look.

:func:`build` makes a :class:`Summary` from two sources only: doit's verdict on each WP (done, up to date,
failed, blocked; collected by the reporter as doit reports it) and the WP records the workers wrote during
the run (every agent attempt with its class, agent, duration, tokens and cost; retries, fallbacks, review
cycles and verdicts; see :mod:`kittydoit.state`). Nothing is estimated.

The same value is printed at the end of the run (:meth:`Summary.lines`, or the live view's rendering) and
written as JSON for CI (:meth:`Summary.report`, :func:`write_report`) to ``.kittify/reports/`` as
``<feature>-<run id>.json`` and ``<feature>-latest.json``. Its schema, ``kittydoit.report/1``, is
``kittydoit/report.schema.json``; fields are only ever added within a schema version.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kittydoit.state import parse_iso, write_atomic

SCHEMA = "kittydoit.report/1"
REPORTS_DIR = Path(".kittify") / "reports"

# WP statuses in the summary
DONE, SKIPPED, FAILED, BLOCKED, INTERRUPTED, NOT_RUN = "done", "skipped", "failed", "blocked", "interrupted", "not_run"
IMPLEMENTED = "implemented"  # implemented, and its review not started in this run (`doit run WPxx:implement`)
_SUCCESS = frozenset({"success", "hung_after_finish"})
_NOT_RUN_CLASS = "not_installed"


@dataclass
class Outcomes:
    """doit's verdict on each WP of a run, as the reporter collected it; each WP counted once."""

    done: list[str] = field(default_factory=list)  # done by this run
    skipped: list[str] = field(default_factory=list)  # up to date: done before this run
    failed: dict[str, str] = field(default_factory=dict)  # WP -> reason
    failed_phase: dict[str, str] = field(default_factory=dict)  # WP -> implement | review
    blocked: dict[str, str] = field(default_factory=dict)  # WP -> the WPs it waits for
    started: set[str] = field(default_factory=set)  # WPs a task of which started
    implemented: set[str] = field(default_factory=set)  # implemented, and no review started since

    def status(self, wp_id: str) -> str:
        if wp_id in self.failed:
            return FAILED
        if wp_id in self.blocked:
            return BLOCKED
        if wp_id in self.done:
            return DONE
        if wp_id in self.skipped:
            return SKIPPED
        if wp_id in self.implemented:
            return IMPLEMENTED
        return INTERRUPTED if wp_id in self.started else NOT_RUN


@dataclass(frozen=True)
class AgentUse:
    """What one agent did in the run."""

    agent: str
    invocations: int = 0
    implement: int = 0
    review: int = 0
    outcomes: Mapping[str, int] = field(default_factory=dict)  # attempt class -> count
    seconds: float = 0.0
    input_tokens: int | None = None  # None: the agent reported none
    output_tokens: int | None = None
    cost_usd: float | None = None


@dataclass(frozen=True)
class WPSummary:
    """One WP's part in the run."""

    id: str
    title: str
    status: str
    reason: str | None = None
    phase: str | None = None  # the phase that failed
    log: str | None = None  # the log to read first (the failed phase's)
    logs: tuple[str, ...] = ()
    implementer: str | None = None
    reviewer: str | None = None
    single_agent: bool = False
    invocations: int = 0
    retries: int = 0
    fallbacks: int = 0
    review_cycles: int = 0
    approved: int = 0
    changes_requested: int = 0
    seconds: float | None = None
    attempts: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Summary:
    """The account of one run of a feature."""

    feature: str
    run_id: str | None
    status: str  # completed | failed | error | aborted
    reason: str | None
    started: str | None
    ended: str | None
    seconds: float
    exit_code: int
    argv: tuple[str, ...]
    wps: tuple[WPSummary, ...]
    agents: tuple[AgentUse, ...]
    landing: str | None = None  # how the finished work lands, when that is a step of its own (3.x missions)

    def ids(self, status: str) -> list[str]:
        return [wp.id for wp in self.wps if wp.status == status]

    def self_reviewed(self) -> list[str]:
        """Return the WPs done by this run that their implementer reviewed (single-agent mode)."""
        return [wp.id for wp in self.wps if wp.status == DONE and wp.single_agent]

    @property
    def invocations(self) -> int:
        return sum(wp.invocations for wp in self.wps)

    @property
    def retries(self) -> int:
        return sum(wp.retries for wp in self.wps)

    @property
    def fallbacks(self) -> int:
        return sum(wp.fallbacks for wp in self.wps)

    @property
    def review_cycles(self) -> int:
        return sum(wp.review_cycles for wp in self.wps)

    def usage(self) -> dict[str, int | float | None]:
        """Return tokens and cost summed over the agents that reported them (None when none did)."""
        return {
            "input_tokens": _sum(a.input_tokens for a in self.agents),
            "output_tokens": _sum(a.output_tokens for a in self.agents),
            "cost_usd": _round(_sum(a.cost_usd for a in self.agents)),
        }

    def headline(self) -> str:
        """Return ``3/4 done, 1 already done, 1 failed in 12.3 s``."""
        done, skipped = len(self.ids(DONE)), len(self.ids(SKIPPED))
        parts = [f"{done + skipped}/{len(self.wps)} done"]
        for count, label in (
            (skipped, "already done"),
            (len(self.ids(FAILED)), "failed"),
            (len(self.ids(BLOCKED)), "blocked"),
            (len(self.ids(IMPLEMENTED)), "implemented, not reviewed"),
            (len(self.ids(INTERRUPTED)), "interrupted"),
            (len(self.ids(NOT_RUN)), "not run"),
        ):
            if count:
                parts.append(f"{count} {label}")
        return f"{', '.join(parts)} in {duration(self.seconds)}"

    def figures(self) -> list[tuple[str, str]]:
        """Return the summary's figures as (label, text) rows."""
        rows = [("agents", ", ".join(_agent_text(a) for a in self.agents) or "none ran")]
        tries = f"{_plural(self.retries, 'retry', 'retries')}, {_plural(self.fallbacks, 'fallback')}"
        rows.append(("invocations", f"{self.invocations} ({tries})"))
        approved = sum(wp.approved for wp in self.wps)
        rejected = sum(wp.changes_requested for wp in self.wps)
        rows.append(("reviews", f"{self.review_cycles} ({approved} approved, {rejected} changes requested)"))
        usage = self.usage()
        if usage["input_tokens"] is None and usage["output_tokens"] is None and usage["cost_usd"] is None:
            rows.append(("tokens", "not reported by the agents used"))
        else:
            reporting = ", ".join(a.agent for a in self.agents if a.input_tokens is not None or a.cost_usd is not None)
            tokens = f"{usage['input_tokens'] or 0:,} in, {usage['output_tokens'] or 0:,} out"
            cost = f"; cost {_money(usage['cost_usd'])}" if usage["cost_usd"] is not None else ""
            rows.append(("tokens", f"{tokens}{cost} ({reporting})"))
        if self.landing:
            rows.append(("land", self.landing))
        return rows

    def lines(self, report_path: str | None = None) -> list[str]:
        """Return the summary as plain text lines (for CI logs)."""
        out = [f"summary: {self.headline()}"]
        out += [f"  {label:<12} {text}" for label, text in self.figures()]
        if self_reviewed := self.self_reviewed():
            out.append(f"  single-agent mode: {', '.join(self_reviewed)} reviewed by their own implementer")
        for wp in self.wps:
            if wp.status == FAILED:
                out.append(f"  failed  {wp.id}: {first_line(wp.reason)}")
                if wp.log:
                    out.append(f"          log: {wp.log}")
        out += [f"  blocked {wp.id}: waits for {wp.reason}" for wp in self.wps if wp.status == BLOCKED]
        out += [f"  implemented {wp.id}: not reviewed; `doit run {wp.id}` reviews it"
                for wp in self.wps if wp.status == IMPLEMENTED]  # fmt: skip
        out += [f"  interrupted {wp.id}" for wp in self.wps if wp.status == INTERRUPTED]
        if report_path:
            out.append(f"  report: {report_path}")
        return out

    def report(self) -> dict[str, Any]:
        """Return the JSON report (schema ``kittydoit.report/1``)."""
        statuses = (DONE, SKIPPED, FAILED, BLOCKED, IMPLEMENTED, INTERRUPTED, NOT_RUN)
        counts = {"total": len(self.wps)} | {status: len(self.ids(status)) for status in statuses}
        not_installed = sum(a.outcomes.get(_NOT_RUN_CLASS, 0) for a in self.agents)
        return {
            "schema": SCHEMA,
            "feature": self.feature,
            "run": {
                "id": self.run_id,
                "status": self.status,
                "reason": self.reason,
                "started": self.started,
                "ended": self.ended,
                "seconds": round(self.seconds, 3),
                "exit_code": self.exit_code,
                "argv": list(self.argv),
            },
            "counts": counts,
            "invocations": {
                "total": self.invocations,
                "retries": self.retries,
                "fallbacks": self.fallbacks,
                "not_installed": not_installed,
            },
            "reviews": {
                "cycles": self.review_cycles,
                "approved": sum(wp.approved for wp in self.wps),
                "changes_requested": sum(wp.changes_requested for wp in self.wps),
            },
            "usage": self.usage(),
            "agents": [_agent_report(agent) for agent in self.agents],
            "wps": [_wp_report(wp) for wp in self.wps],
            "failed": [
                {"wp": wp.id, "phase": wp.phase, "reason": wp.reason, "log": wp.log}
                for wp in self.wps
                if wp.status == FAILED
            ],
        }


def build(
    *,
    feature: str,
    titles: Mapping[str, str],
    outcomes: Outcomes,
    records: Mapping[str, Mapping[str, Any]],
    run: Mapping[str, Any],
    seconds: float,
    status: str,
    exit_code: int,
    logs: Mapping[str, Mapping[str, str]],
    landing: str | None = None,
) -> Summary:
    """Build the summary of a run.

    *titles*: the WPs of the run, in order; *records*: their records for this run (WPs that did not run have
    none); *run*: the run record (id, started, ended, argv, reason); *logs*: per WP, phase -> log path (only
    logs that exist).
    """
    wps = []
    for wp_id, title in titles.items():
        record = records.get(wp_id, {})
        wp_status = outcomes.status(wp_id)
        attempts = tuple(record.get("attempts") or ())
        reviews = record.get("reviews") or []
        phase = outcomes.failed_phase.get(wp_id)
        wp_logs = logs.get(wp_id, {})
        reason = outcomes.failed.get(wp_id) or outcomes.blocked.get(wp_id)
        wps.append(
            WPSummary(
                id=wp_id,
                title=title,
                status=wp_status,
                reason=reason,
                phase=phase,
                log=wp_logs.get(phase) if phase else None,
                logs=tuple(wp_logs.values()),
                implementer=record.get("implementer") or _last_agent(attempts, "implement"),
                reviewer=record.get("reviewer") or _last_agent(attempts, "review"),
                single_agent=bool(record.get("single_agent")),
                invocations=sum(1 for a in attempts if _ran(a)),
                retries=int(record.get("retries") or 0),
                fallbacks=int(record.get("fallbacks") or 0),
                review_cycles=int(record.get("review_cycles") or 0),
                approved=sum(1 for r in reviews if r.get("verdict") == "approved"),
                changes_requested=sum(1 for r in reviews if r.get("verdict") == "changes_requested"),
                seconds=_between(record.get("started"), record.get("ended")),
                attempts=attempts,
            )
        )
    return Summary(
        feature=feature,
        run_id=run.get("id"),
        status=status,
        reason=run.get("reason"),
        started=run.get("started"),
        ended=run.get("ended"),
        seconds=seconds,
        exit_code=exit_code,
        argv=tuple(run.get("argv") or ()),
        wps=tuple(wps),
        landing=landing,
        agents=_agents(a for wp in wps for a in wp.attempts),
    )


def write_report(root: Path, summary: Summary) -> Path:
    """Write the JSON report to ``.kittify/reports/`` (atomically); return the run's report file."""
    folder = root / REPORTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary.report(), indent=2) + "\n"
    path = folder / f"{summary.feature}-{summary.run_id or 'run'}.json"
    write_atomic(path, text)
    write_atomic(folder / f"{summary.feature}-latest.json", text)
    return path


def duration(seconds: float) -> str:
    """Return ``12.3 s``, ``4m05s`` or ``2h03m``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def first_line(text: str | None) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


def _agents(attempts: Iterable[Mapping[str, Any]]) -> tuple[AgentUse, ...]:
    """Sum the attempts per agent, agents by name."""
    table: dict[str, dict[str, Any]] = {}
    for attempt in attempts:
        name = str(attempt.get("agent"))
        row = table.setdefault(name, {"invocations": 0, "implement": 0, "review": 0, "outcomes": {}, "seconds": 0.0})
        kind = str(attempt.get("class"))
        row["outcomes"][kind] = row["outcomes"].get(kind, 0) + 1
        if not _ran(attempt):
            continue
        row["invocations"] += 1
        phase = attempt.get("phase")
        if phase in ("implement", "review"):
            row[phase] += 1
        row["seconds"] += float(attempt.get("duration") or 0.0)
        for key in ("input_tokens", "output_tokens", "cost_usd"):
            if attempt.get(key) is not None:
                row[key] = (row.get(key) or 0) + attempt[key]
    return tuple(AgentUse(agent=name, **row) for name, row in sorted(table.items()))


def _ran(attempt: Mapping[str, Any]) -> bool:
    """Tell whether an attempt started the agent's process (one that was not installed, or could not be given
    its prompt, did not; only a process that ran has a duration)."""
    return attempt.get("duration") is not None and attempt.get("class") != _NOT_RUN_CLASS


def _agent_report(use: AgentUse) -> dict[str, Any]:
    return {
        "agent": use.agent,
        "invocations": use.invocations,
        "implement": use.implement,
        "review": use.review,
        "outcomes": dict(use.outcomes),
        "seconds": round(use.seconds, 3),
        "input_tokens": use.input_tokens,
        "output_tokens": use.output_tokens,
        "cost_usd": _round(use.cost_usd),
    }


def _wp_report(wp: WPSummary) -> dict[str, Any]:
    return {
        "id": wp.id,
        "title": wp.title,
        "status": wp.status,
        "reason": wp.reason,
        "phase": wp.phase,
        "log": wp.log,
        "logs": list(wp.logs),
        "implementer": wp.implementer,
        "reviewer": wp.reviewer,
        "single_agent": wp.single_agent,
        "invocations": wp.invocations,
        "retries": wp.retries,
        "fallbacks": wp.fallbacks,
        "review_cycles": wp.review_cycles,
        "approved": wp.approved,
        "changes_requested": wp.changes_requested,
        "seconds": wp.seconds,
        "attempts": [dict(a) for a in wp.attempts],
    }


def _agent_text(use: AgentUse) -> str:
    phases = ", ".join(f"{phase} {n}" for phase, n in (("implement", use.implement), ("review", use.review)) if n)
    return f"{use.agent} {use.invocations}" + (f" ({phases})" if phases else "")


def _last_agent(attempts: Sequence[Mapping[str, Any]], phase: str) -> str | None:
    for attempt in reversed(attempts):
        if attempt.get("phase") == phase and attempt.get("class") in _SUCCESS:
            return str(attempt.get("agent"))
    return None


def _between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        parsed = [parse_iso(s) for s in (start, end)]
    except ValueError:
        return None
    return (parsed[1] - parsed[0]).total_seconds()


def _sum(values: Iterable[float | int | None]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _money(usd: float) -> str:
    """Return ``$12.34``, or ``$0.0022`` for amounts under ten cents (a short run's cost)."""
    return f"${usd:,.2f}" if usd >= 0.1 else f"${usd:.4f}"


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"
