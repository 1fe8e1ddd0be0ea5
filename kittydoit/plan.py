"""What a run would do, without starting anything: ``kittydoit plan``; and the WP graph: ``kittydoit graph``.

The plan asks doit, as ``doit run`` would:

- **up to date** -- doit's own dependency manager checks each task (its ``uptodate`` digest of spec, prompts and
  agent settings, its targets, its file dependencies) against a read-only, in-memory copy of the feature's
  database (:class:`SnapshotDB`), so the real database and every other file stay untouched. A task also runs
  when a task it depends on runs, as in a real run (a rerun rewrites the done-marker its dependants read).
- **order** -- doit's own task dispatcher hands out the tasks, as it does to ``-n N`` workers, so the plan shows
  which WPs start at once. The order shown is the one kittydoit gives doit (longest remaining chain first), which
  puts every dependency first; how a run interleaves after the first tasks depends on how long agents take, and
  doit starts WPs that become ready at the same moment in no fixed order.
- **agents** -- per role, the agent a run would use first: the first candidate that is installed, preferring
  those not cooling down; the reviewer is never the implementer unless no other reviewer is configured
  (single-agent mode), as in :mod:`kittydoit.workflow`.
"""

from __future__ import annotations

import json
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from doit.control import TaskControl
from doit.dependency import SqliteDB

from kittydoit.attempts import installed
from kittydoit.config import AgentSettings, Config
from kittydoit.context import Context
from kittydoit.errors import UserError
from kittydoit.feature import Feature
from kittydoit.tasks import externally_done

LANE_COLOURS = {  # fill, stroke; 0.x has the first four lanes, 3.x planned, for_review, done and the rest
    "planned": ("#f1f3f5", "#868e96"),
    "doing": ("#fff3bf", "#f08c00"),
    "for_review": ("#d0ebff", "#1c7ed6"),
    "done": ("#d3f9d8", "#2f9e44"),
    "claimed": ("#fff9db", "#fab005"),
    "in_progress": ("#fff3bf", "#f08c00"),
    "in_review": ("#a5d8ff", "#1971c2"),
    "approved": ("#ebfbee", "#37b24d"),
    "blocked": ("#ffe3e3", "#e03131"),
    "canceled": ("#e9ecef", "#495057"),
}
_HOLD = "hold on"  # what doit's dispatcher yields when no task is ready while others run


class SnapshotDB(SqliteDB):  # type: ignore[misc]  # doit is untyped
    """doit's sqlite3 backend reading an in-memory copy of the database: the file is never written or created.

    A database closed cleanly has no ``-wal`` file and is opened ``immutable`` (nothing is created next to
    it); one with a ``-wal`` file (a run is going, or was killed) is copied read-only, seeing what it has
    committed.
    """

    desc = "read-only snapshot of a sqlite3 database (kittydoit plan)"

    def _sqlite3(self, name: str) -> sqlite3.Connection:
        conn: sqlite3.Connection = super()._sqlite3(":memory:")
        path = Path(name).resolve()
        if not path.exists():
            return conn
        mode = "ro" if path.with_name(path.name + "-wal").exists() else "ro&immutable=1"
        try:
            source = sqlite3.connect(f"file:{quote(str(path))}?mode={mode}", uri=True)
            try:
                source.backup(conn)
            finally:
                source.close()
        except sqlite3.DatabaseError as error:
            raise UserError(path, f"cannot be read as kittydoit's sqlite3 database ({error})") from None
        return conn

    def dump(self) -> None:
        """Never write: a plan only reads."""


@dataclass(frozen=True)
class AgentChoice:
    """The agent a role would use first, and the candidates behind it."""

    role: str
    agent: str | None
    candidates: tuple[tuple[str, str], ...]  # (agent, note) in preference order; note '' when usable
    single_agent: bool = False


@dataclass(frozen=True)
class WPPlan:
    """One WP in the plan."""

    id: str
    title: str
    lane: str
    dependencies: tuple[str, ...]
    tasks: tuple[str, ...]  # the phases that would run, in order ('implement', 'review')
    why: str  # why it runs, or why it is up to date


@dataclass(frozen=True)
class Plan:
    """What ``kittydoit run`` would do now."""

    feature: str
    num_process: int
    wps: tuple[WPPlan, ...]  # in the order they would start; up-to-date WPs last
    first: tuple[str, ...]  # WPs whose tasks start at once
    task_order: tuple[str, ...]  # the tasks that would run, WP by WP in order
    agents: tuple[AgentChoice, ...]
    warnings: tuple[str, ...] = field(default=())
    at_once: int = 1  # agents that can run at once: -n, capped by global_concurrency
    agents_source: str = "file"  # "file": .kittify/agents.yaml; "defaults": what `kittydoit init` would write
    refusals: tuple[str, ...] = ()  # why a run would not start (broken settings, no agent, missing dependencies)

    @property
    def to_run(self) -> list[WPPlan]:
        return [wp for wp in self.wps if wp.tasks]

    @property
    def up_to_date(self) -> list[WPPlan]:
        return [wp for wp in self.wps if not wp.tasks]

    def as_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "num_process": self.num_process,
            "agents_at_once": self.at_once,
            "order": [wp.id for wp in self.to_run],
            "starts_first": list(self.first),
            "tasks": list(self.task_order),
            "up_to_date": [wp.id for wp in self.up_to_date],
            "agents": {
                choice.role: {
                    "agent": choice.agent,
                    "single_agent": choice.single_agent,
                    "candidates": [{"agent": agent, "note": note} for agent, note in choice.candidates],
                }
                for choice in self.agents
            },
            "wps": [
                {
                    "id": wp.id,
                    "title": wp.title,
                    "lane": wp.lane,
                    "dependencies": list(wp.dependencies),
                    "runs": list(wp.tasks),
                    "why": wp.why,
                }
                for wp in self.wps
            ],
            "warnings": list(self.warnings),
            "agents_source": self.agents_source,
            "run_refused": list(self.refusals),
        }


def make_plan(
    ctx: Context, *, tasks: Sequence[Any], selected: Sequence[str], dep_manager: Any, num_process: int
) -> Plan:
    """Work out what a run of the *selected* tasks would do (see the module docstring); start nothing.

    *tasks*: doit's loaded tasks; *dep_manager*: a doit ``Dependency`` over a :class:`SnapshotDB`.
    """
    feature = ctx.feature
    control = TaskControl(list(tasks))
    control.process(list(selected))
    check = _Check(dep_manager, control.tasks)
    at_once = max(1, min(num_process, ctx.config.global_concurrency))  # -n 0 runs tasks one by one too
    started, first = _dispatch(control, check.decide, at_once)
    by_wp: dict[str, list[str]] = {}
    for name in started:
        wp_name, phase = name.split(":", 1)
        by_wp.setdefault(wp_name, []).append(phase)
    # The order kittydoit gives doit. After the first tasks, doit wakes WPs that become ready at the same moment
    # in no set order (it keeps waiting tasks in a set), so that is the order to show; it respects dependencies.
    order = [wp for wp in feature.schedule_order() if wp in by_wp]
    considered = {name.split(":", 1)[0] for name in check.seen if ":" in name}
    wps = []
    for wp_id in [*order, *(w for w in feature.wps if w in considered and w not in by_wp)]:
        wp = feature.wps[wp_id]
        if wp_id in by_wp:
            why = check.why[f"{wp_id}:{by_wp[wp_id][0]}"]  # the first of its tasks to run says why
        elif externally_done(ctx, wp_id):
            why = f"lane {wp.lane} in spec-kitty" if feature.format == "3.x" else "lane done before kittydoit"
        else:
            why = "done, and nothing it depends on changed since"
        wps.append(WPPlan(wp_id, wp.title, wp.lane, wp.dependencies, tuple(by_wp.get(wp_id, ())), why))
    return Plan(
        feature=feature.slug,
        num_process=num_process,
        wps=tuple(wps),
        first=tuple(dict.fromkeys(name.split(":", 1)[0] for name in first)),
        task_order=tuple(f"{wp}:{phase}" for wp in order for phase in by_wp[wp]),
        agents=choose_agents(ctx.config, _cooling(ctx.paths.health, ctx.clock().timestamp()), installed),
        warnings=tuple(check.warnings),
        at_once=at_once,
        agents_source=ctx.settings.source if ctx.settings else "file",
        refusals=tuple(refusals(ctx)),
    )


def refusals(ctx: Context) -> list[str]:
    """Return why a run would not start, though reading the feature works: each reason as a message."""
    found = [str(ctx.settings.problem)] if ctx.settings is not None and ctx.settings.problem else []
    feature = ctx.feature
    for wp_id, ids in feature.missing.items():
        if feature.wps[wp_id].lane not in feature.finished:
            path = feature.relpath(feature.wps[wp_id].path)
            found += [f"{path}: dependency '{dep}' does not exist; remove it from dependencies" for dep in ids]
    return found


def choose_agents(
    config: Config, cooling: Mapping[str, str], installed: Callable[[AgentSettings], bool]
) -> tuple[AgentChoice, ...]:
    """Return the agent each role would use first (see the module docstring)."""

    def notes(candidates: Iterable[AgentSettings]) -> list[tuple[str, str]]:
        ready, later = [], []
        for agent in candidates:
            if not installed(agent):
                ready.append((agent.id, f"'{agent.spec.binary}' not on PATH"))
            elif agent.id in cooling:
                later.append((agent.id, f"cooling down until {cooling[agent.id]}"))
            else:
                ready.append((agent.id, ""))
        return ready + later  # a cooling agent is tried after the others, as a run does

    def first_usable(rows: Sequence[tuple[str, str]]) -> str | None:
        usable = [a for a, note in rows if not note] or [a for a, note in rows if note.startswith("cooling")]
        return usable[0] if usable else None

    implementers = notes(config.candidates("implementation"))
    implementer = first_usable(implementers)
    reviewers_all = config.candidates("review")
    others = [a for a in reviewers_all if a.id != implementer]
    single = not others and bool(reviewers_all)
    reviewers = notes(others or reviewers_all)
    return (
        AgentChoice("implementation", implementer, tuple(implementers)),
        AgentChoice("review", first_usable(reviewers), tuple(reviewers), single_agent=single),
    )


# ---- asking doit ----------------------------------------------------------------------------------------------


class _Check:
    """Decide, as doit's runner would, whether a dispatched task runs; remember why."""

    def __init__(self, dep_manager: Any, tasks: Mapping[str, Any]) -> None:
        self.dep_manager = dep_manager
        self.tasks = tasks
        self.ran: set[str] = set()
        self.seen: list[str] = []
        self.why: dict[str, str] = {}
        self.warnings: list[str] = []

    def decide(self, node: Any) -> str:
        task = node.task
        self.seen.append(task.name)
        if self.dep_manager.status_is_ignore(task):
            return "ignore"
        if not task.actions:
            return "run"  # a group: runs at once, does nothing
        status = self.dep_manager.get_status(task, self.tasks, get_log=True)
        after = sorted(d for d in task.task_dep if d in self.ran)
        if status.status == "up-to-date" and not after:
            return "up-to-date"
        reasons = status.reasons
        others = sorted({d.split(":", 1)[0] for d in after} - {task.name.split(":", 1)[0]})
        if "missing_target" in reasons or "has_no_dependencies" in reasons:
            why = "not done yet"
        elif others:
            why = f"runs again after {', '.join(others)}"
        elif after:
            why = "its implementation runs again"
        elif "uptodate_false" in reasons:
            why = "its spec, the prompts or the agent settings changed"
        elif "missing_file_dep" in reasons:
            why = "a file it depends on is missing"
            self.warnings.append(f"{task.name}: {status.get_error_message()} (doit will report this as an error)")
        else:
            why = "a file it depends on changed"
        self.ran.add(task.name)
        self.why[task.name] = why
        return "run"


def _dispatch(control: TaskControl, decide: Callable[[Any], str], slots: int) -> tuple[list[str], list[str]]:
    """Drive doit's dispatcher as doit's parallel runner does, tasks finishing in the order they started.

    Return the tasks with actions in the order they would start, and those that start before any finishes.
    """
    generator = control.task_dispatcher().generator
    order: list[str] = []

    def next_job(completed: Any) -> Any:
        node = completed
        while True:
            try:
                node = generator.send(node)
            except StopIteration:
                return None
            if node == _HOLD:
                return _HOLD
            node.run_status = decide(node)
            if node.run_status == "run" and node.task.actions:
                order.append(node.task.name)
                return node
            if node.run_status == "run":
                node.run_status = "successful"  # a group: done as soon as it is dispatched

    running: deque[Any] = deque()
    free = 0
    for _ in range(slots):
        job = next_job(None)
        if job is None:
            break
        if job == _HOLD:
            free += 1
        else:
            running.append(job)
    first = list(order)
    while running:
        finished = running.popleft()
        finished.run_status = "successful"
        slots_now, free, completed = free + 1, 0, finished
        for _ in range(slots_now):
            job = next_job(completed)
            completed = None
            if job == _HOLD:
                free += 1
            elif job is not None:
                running.append(job)
    return order, first


# ---- showing it -----------------------------------------------------------------------------------------------


def render(plan: Plan, feature: Feature) -> str:
    """Return the plan as text."""
    run, done = plan.to_run, plan.up_to_date
    count = f"{len(plan.wps)} work package{'' if len(plan.wps) == 1 else 's'}"
    lines = [f"Plan for {plan.feature}: {count}, {len(run)} to run, {len(done)} up to date."
             " Nothing was started or changed."]
    lines += _refusal_lines(plan.refusals)
    lines.append("")
    defaults = " (no .kittify/agents.yaml: those `kittydoit init` would write, for the agents on PATH)"
    lines.append("Agents" + (defaults if plan.agents_source == "defaults" else ""))
    for choice in plan.agents:
        shown = choice.agent or (
            "none usable: this phase would fail" if choice.candidates else "none: a run would not start"
        )
        if choice.single_agent:
            shown += " (single-agent mode: it reviews its own work)"
        lines.append(f"  {choice.role:<15} {shown}")
        for agent, note in choice.candidates:
            if agent != choice.agent or note:
                lines.append(f"  {'':<15}   {agent}: {note or 'fallback'}")
    lines.append("")
    if run:
        first = ", ".join(plan.first) + (" starts" if len(plan.first) == 1 else " start")
        workers = f"-n {plan.num_process}"
        if plan.at_once < plan.num_process:
            workers += f" and global_concurrency {plan.at_once}"
        lines.append(f"Order (longest remaining chain first; with {workers}, {first} at once)")
        width = max(len(", ".join(wp.tasks)) for wp in run)
        for number, wp in enumerate(run, 1):
            after = ", ".join(wp.dependencies) or "-"
            phases = ", ".join(wp.tasks)
            lines.append(f"  {number:>2}. {wp.id}  {phases:<{width}}  after {after:<12} {wp.title}  ({wp.why})")
    else:
        lines.append("Nothing to run: every selected work package is up to date.")
    if done:
        lines += ["", "Up to date (will not run)"]
        lines += [f"  {wp.id}  {wp.title}  ({wp.why})" for wp in done]
    for warning in plan.warnings:
        lines.append(f"warning: {warning}")
    marks = {wp.id: ("runs" if wp.tasks else "up to date") for wp in plan.wps}
    lines += ["", "Dependency graph (each WP above the ones that need it)"]
    lines += ["  " + line for line in graph_text(feature, marks)]
    return "\n".join(lines)


def _refusal_lines(refusals: Sequence[str]) -> list[str]:
    if not refusals:
        return []
    return ["", "A run would not start:", *("  - " + text.replace("\n", "\n    ") for text in refusals)]


def graph_text(feature: Feature, marks: Mapping[str, str] | None = None) -> list[str]:
    """Return the WP graph as an indented tree: each WP with the WPs that depend on it below it."""
    lines: list[str] = []
    shown: set[str] = set()

    def visit(wp_id: str, prefix: str, connector: str, child_prefix: str) -> None:
        wp = feature.wps[wp_id]
        if wp_id in shown:
            lines.append(f"{prefix}{connector}{wp_id} (shown above)")
            return
        shown.add(wp_id)
        mark = " · ".join(m for m in (wp.lane, (marks or {}).get(wp_id)) if m)
        lines.append(f"{prefix}{connector}{wp_id} {wp.title} [{mark}]")
        children = feature.dependants(wp_id)
        for index, child in enumerate(children):
            last = index == len(children) - 1
            visit(child, prefix + child_prefix, "└─ " if last else "├─ ", "   " if last else "│  ")

    for wp_id, wp in feature.wps.items():
        if not wp.dependencies:
            visit(wp_id, "", "", "")
    return lines


def mermaid(feature: Feature) -> str:
    """Return the WP graph as a Mermaid flowchart, WPs coloured by lane, edges dependency --> dependant."""
    lines = ["flowchart TD"]
    lines += [f'    {wp.id}["{_mermaid_text(wp.id + ": " + wp.title)}"]' for wp in feature.wps.values()]
    lines += [f"    {dep} --> {wp.id}" for wp in feature.wps.values() for dep in wp.dependencies]
    for lane in feature.lanes:
        members = [wp.id for wp in feature.wps.values() if wp.lane == lane]
        if members:
            lines.append(f"    class {','.join(members)} {lane}")
    for lane in feature.lanes:
        fill, stroke = LANE_COLOURS[lane]
        lines.append(f"    classDef {lane} fill:{fill},stroke:{stroke},color:#212529")
    return "\n".join(lines)


def dot(feature: Feature) -> str:
    """Return the WP graph in Graphviz DOT, WPs coloured by lane, edges dependency -> dependant."""
    lines = [f"digraph {_dot_text(feature.slug)} {{", "  rankdir=LR;"]
    lines.append('  node [shape=box, style="rounded,filled", fontname="Helvetica"];')
    for wp in feature.wps.values():
        fill, stroke = LANE_COLOURS[wp.lane]
        label = _dot_text(wp.id)[:-1] + "\\n" + _dot_text(wp.title)[1:]  # id, a line break, the title
        style = f'fillcolor="{fill}", color="{stroke}", tooltip="lane: {wp.lane}"'
        lines.append(f"  {_dot_text(wp.id)} [label={label}, {style}];")
    lines += [f"  {_dot_text(dep)} -> {_dot_text(wp.id)};" for wp in feature.wps.values() for dep in wp.dependencies]
    lines.append("}")
    return "\n".join(lines)


def _cooling(path: Path, now: float) -> dict[str, str]:
    """Return the agents cooling down (agent -> until when), reading the health file without changing it."""
    try:
        health = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(health, dict):
        return {}
    return {
        agent: str(entry.get("cooling_down_until"))
        for agent, entry in health.items()
        if isinstance(entry, dict) and float(entry.get("cooling_down_until_epoch") or 0) > now
    }


def _mermaid_text(text: str) -> str:
    """Escape *text* for a quoted Mermaid label (entity codes; '#' first, as the codes use it)."""
    text = " ".join(text.split())
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return text


def _dot_text(text: str) -> str:
    """Return *text* as a quoted DOT string."""
    return '"' + " ".join(text.split()).replace("\\", "\\\\").replace('"', '\\"') + '"'
