"""The two actions doit runs for each work package: implement it, then review it.

``implement`` prepares the WP's worktree (its branch holds the target branch plus every dependency's branch),
runs the implementer on the rendered prompt, commits what the agent left uncommitted and moves the lane
``doing`` -> ``for_review``. ``review`` shows a reviewer the spec and the change, reads the verdict from its final
answer and either approves (lane ``done``) or records the feedback (lane ``planned``) and has the WP implemented
again, up to ``review_cycles`` reviews, all in the same run. Agents are tried under the retry and fallback rules
of :mod:`kittydoit.attempts`; every step is recorded in the WP's state record (:mod:`kittydoit.state`).

Failures travel as exceptions inside this module and become a doit ``TaskFailed`` at one boundary,
:func:`_boundary`, with a message that names the WP, what happened, the logs, and how to go on.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from doit.exceptions import TaskFailed

from kittydoit import evidence, outputs, prompts, repair, workers
from kittydoit.agents import PromptTooLong
from kittydoit.attempts import Attempt, NeedsHuman, Outcome, PhaseRun, classify
from kittydoit.config import AgentSettings
from kittydoit.context import Context
from kittydoit.errors import ConfigError
from kittydoit.feature import WorkPackage
from kittydoit.git import Diff, GitError
from kittydoit.lanes import NO_DETAILS, Feedback, LaneError, Lanes, LaneStore
from kittydoit.slots import Slots
from kittydoit.state import DONE, FAILED, AgentHealth, WPRecord, locked, read_json, write_atomic


class WPFailure(Exception):
    """This work package cannot go on; the message says why and what to do."""


# ---- the doit actions ---------------------------------------------------------------------------------------


def implement(ctx: Context, wp_id: str) -> dict[str, Any] | TaskFailed:
    """Implement *wp_id* (the action of task ``WPxx:implement``)."""
    return _boundary(ctx, wp_id, "implement", _implement)


def review(ctx: Context, wp_id: str) -> dict[str, Any] | TaskFailed:
    """Review *wp_id*, re-implementing it after rejections (the action of task ``WPxx:review``)."""
    return _boundary(ctx, wp_id, "review", _review)


def check_templates(ctx: Context) -> None:
    """Render every prompt template once for the first WP, so a broken template stops the run before it starts."""
    wp = next(iter(ctx.feature.wps.values()))
    base = _prompt_context(ctx, wp)
    sample = Diff(base="0" * 40, head="0" * 40, stat="", patch="", truncated=False)
    ctx.prompts.render(prompts.IMPLEMENT, base)
    ctx.prompts.render(prompts.REIMPLEMENT, {**base, "feedback": "", "reviewer": "", "cycle": 1})
    ctx.prompts.render(prompts.REVIEW, {**base, "diff": _diff_context(sample)})


class _Phase:
    """What one action of one WP shares: the context, its state record and its lanes."""

    def __init__(self, ctx: Context, wp_id: str) -> None:
        self.ctx = ctx
        self.wp = ctx.feature.wps[wp_id]
        run_id = (read_json(ctx.paths.run_file) or {}).get("id")
        self.record = WPRecord(ctx.paths.wp_record(wp_id), wp_id, run_id, ctx.clock)
        self.health = AgentHealth(ctx.paths.health, ctx.clock)
        self.lanes = open_lanes(ctx)

    def log(self, phase: str) -> Path:
        return self.ctx.paths.log(self.wp.id, phase)

    def agents(self, phase: str, log_name: str) -> PhaseRun:
        root = self.ctx.paths.root
        log = self.ctx.paths.rel(self.log(log_name))
        return PhaseRun(
            self.ctx.config, self.health, self.record, phase, log, Slots.for_repo(root), Slots.global_for_repo(root)
        )


def open_lanes(ctx: Context) -> LaneStore:
    """Return the lane store of the feature's format (see kittydoit.lanes).

    A 0.x feature's store is kept for the process: it remembers the WP files it last read or wrote, so the review
    that follows an implement in the same worker does not parse the WP file again (a parse is 5-10 ms, on the
    hand-off between the two agents). It re-reads any file whose bytes changed.
    """
    if ctx.feature.format == "3.x":
        if ctx.speckitty is None:
            raise ConfigError(None, "a 3.x mission's lanes move through spec-kitty, which this run has not started")
        from kittydoit.lanes.orchestrated import MissionLanes  # noqa: PLC0415  # 0.x runs never need it

        return MissionLanes(ctx.feature, ctx.speckitty, ctx.paths.state / "bases")
    if _LANES.get("ctx") is not ctx or _LANES.get("pid") != os.getpid():
        lanes = Lanes(ctx.feature, ctx.clock, ctx.git, ctx.config.commit_lane_changes)
        _LANES.update(ctx=ctx, pid=os.getpid(), lanes=lanes)
    return _LANES["lanes"]  # type: ignore[no-any-return]


_LANES: dict[str, Any] = {}  # this process's 0.x lane store, for the context it was made for (see open_lanes)


def _boundary(
    ctx: Context, wp_id: str, phase: str, work: Callable[[_Phase], dict[str, Any]]
) -> dict[str, Any] | TaskFailed:
    log_path = ctx.paths.log(wp_id, phase)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _note(log_path, f"{phase} {wp_id} started")
    try:
        with workers.turn(), _wp_lock(ctx, wp_id):  # turn: at a worker's first task, the run's first agent goes first
            state = _Phase(ctx, wp_id)
            try:
                return work(state)
            finally:
                state.record.flush()  # what was only noted (see WPRecord)
    except (WPFailure, NeedsHuman, GitError, LaneError, ConfigError) as failure:
        message = f"{wp_id} {phase} failed: {failure}"
        if isinstance(failure, NeedsHuman):
            message = _needs_human(ctx, wp_id, phase, str(failure))
        _note(log_path, message)
        with contextlib.suppress(OSError):  # the failure itself is what must reach the user
            WPRecord(ctx.paths.wp_record(wp_id), wp_id, _run_id(ctx), ctx.clock).finish(FAILED, message)
        return TaskFailed(message)


def _needs_human(ctx: Context, wp_id: str, phase: str, what: str) -> str:
    logs = ", ".join(
        ctx.paths.rel(ctx.paths.log(wp_id, p)) for p in ("implement", "review") if ctx.paths.log(wp_id, p).exists()
    )
    return (
        f"{wp_id} needs a human: {phase} failed, {what}. Logs: {logs}. Fix the cause, then `doit run` "
        f"to continue (or `doit forget {wp_id}` to start {wp_id} over)"
    )


# ---- implement ----------------------------------------------------------------------------------------------


def _implement(phase: _Phase) -> dict[str, Any]:
    ctx, wp, lanes = phase.ctx, phase.wp, phase.lanes
    done = _already_complete(phase, "implement")
    if done is not None:
        phase.record.update(status="implemented", phase=None, implementer=done.get("agent"))
        return done
    phase.record.start("preparing worktree")
    ctx.runner.prepare()  # a worker's first agent: its supervisor forked while git makes the worktree
    if ctx.feature.format == "3.x":  # spec-kitty's claim takes a second or more: show it at once
        phase.record.flush()
    claimed = lanes.claim(wp.id, ctx.config.candidates("implementation"), ctx.git)
    worktree, base = claimed or _prepare(ctx, wp, phase.log("implement"))
    agent = lanes.implemented_by(wp.id)
    if agent is not None and not ctx.git.same_tree(base, ctx.git.head(worktree), cwd=worktree):
        # Implemented earlier (by a person, spec-kitty, or a run that stopped before recording it).
        _note(phase.log("implement"), f"lane is {lanes.lane(wp.id)} and the branch holds work: to review")
    else:
        feedback = lanes.pending_feedback(wp.id)
        agent = _implement_once(phase, worktree, base, feedback=feedback)
    record = {"wp": wp.id, "phase": "implement", "agent": agent, "base": base, "worktree": str(worktree)}
    record["head"] = ctx.git.head(worktree)
    _write_marker(ctx, ctx.paths.marker(wp.id, "implement"), record)
    phase.record.update(status="implemented", phase=None, implementer=agent)
    return record


def prepare(ctx: Context, wp_id: str) -> None:
    """Make *wp_id*'s worktree with every dependency merged, ahead of its implement (see :mod:`kittydoit.ahead`).

    Does nothing when the implement has begun (its worktree exists, or it holds the preparation lock).
    """
    wp = ctx.feature.wps[wp_id]
    log_path = ctx.paths.log(wp_id, "implement")
    with preparing(ctx, wp_id, wait=False) as held:
        if not held or ctx.paths.worktree(wp_id).exists() or ctx.paths.marker(wp_id, "implement").exists():
            return
        log_path.parent.mkdir(parents=True, exist_ok=True)
        _repair(ctx, wp_id, log_path)
        worktree, base = _prepare_now(ctx, wp, log_path)
        head = ctx.git.head(worktree)
        tips = ctx.git.tips([ctx.paths.branch(dep) for dep in wp.dependencies])
        _prepared(ctx, wp_id).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(_prepared(ctx, wp_id), json.dumps({"head": head, "base": base, "tips": tips}) + "\n")
        _note(log_path, f"worktree prepared ahead of the implement: {ctx.paths.rel(worktree)} at {head[:12]}")


def preparing(ctx: Context, wp_id: str, *, wait: bool) -> contextlib.AbstractContextManager[bool]:
    """Hold *wp_id*'s preparation lock (waiting for it when *wait*); yield whether it is held."""
    return locked(ctx.paths.wp_lock(wp_id).with_suffix(".prepare"), wait=wait)


def _prepared(ctx: Context, wp_id: str) -> Path:
    return ctx.paths.state / "prepared" / f"{wp_id}.json"


def _prepare(ctx: Context, wp: WorkPackage, log_path: Path) -> tuple[Path, str]:
    """Return the WP's worktree, with every dependency merged in, and the review base.

    Taken as prepared ahead (:func:`prepare`) when its HEAD and every dependency's branch tip are still the
    recorded ones; made (or brought up to date) here otherwise. A record is used once.
    """
    with preparing(ctx, wp.id, wait=True):
        repaired = _repair(ctx, wp.id, log_path)
        record_path = _prepared(ctx, wp.id)
        record = read_json(record_path) if record_path.exists() else None
        if record is not None:
            record_path.unlink(missing_ok=True)
            worktree = ctx.paths.worktree(wp.id)
            tips = record.get("tips") or {}
            unchanged = not repaired and (worktree / ".git").exists() and ctx.git.head(worktree) == record.get("head")
            if unchanged and ctx.git.tips(list(tips), quick=True) == tips:
                return worktree, str(record["base"])
        return _prepare_now(ctx, wp, log_path)


def _prepare_now(ctx: Context, wp: WorkPackage, log_path: Path) -> tuple[Path, str]:
    """Create or reuse the WP's (repaired) worktree, merge its dependencies in, and return it with the review base."""
    paths, git = ctx.paths, ctx.git
    worktree, branch = paths.worktree(wp.id), paths.branch(wp.id)
    start, premerged = ctx.target_branch, 0
    if wp.dependencies and not worktree.exists() and not git.branch_exists(branch):
        # A new WP: its dependencies are merged before its worktree is checked out (see Git.premerge).
        start, premerged = git.premerge(start, [paths.branch(dep) for dep in wp.dependencies], branch)
    fresh = git.prepare_worktree(worktree, branch, start)
    if not fresh and git.commit_all(worktree, f"{wp.id}: work left uncommitted by an interrupted attempt"):
        _note(log_path, "committed work an interrupted attempt left uncommitted")
    merged = []
    rest = wp.dependencies[premerged:]
    if rest:  # a merge cut off by a kill is undone back to here (see kittydoit.repair)
        repair.merge_started(ctx, wp.id, git.head(worktree))
    for dep in rest:
        dep_branch = paths.branch(dep)
        if git.merge(worktree, dep_branch, branch):  # no branch: a dependency done before kittydoit
            merged.append(dep_branch)
    repair.merge_done(ctx, wp.id)
    if fresh:  # nothing but the target branch and the dependencies yet: that is the base
        return worktree, git.head(worktree)
    return worktree, git.base(worktree, ctx.target_branch, merged)


def _implement_once(phase: _Phase, worktree: Path, base: str, *, feedback: Feedback | None, cycle: int = 1) -> str:
    """Implement the WP once (again after *feedback* when given), with retries and fallback; return the agent."""
    ctx, wp = phase.ctx, phase.wp
    label = "re-implementing" if feedback else "implementing"
    phase.record.start(label)
    context = _prompt_context(ctx, wp, worktree)
    template = prompts.IMPLEMENT
    if feedback:
        template = prompts.REIMPLEMENT
        context |= {"feedback": feedback.text, "reviewer": feedback.reviewer or "the reviewer", "cycle": cycle}
    prompt = ctx.prompts.render(template, context)
    note = "Started re-implementation after review feedback" if feedback else "Started implementation"
    moved: list[str] = []

    def before(agent: AgentSettings) -> None:  # the record names the agent right after (PhaseRun.run)
        if not moved:
            phase.lanes.implementing(wp.id, agent, note)
            moved.append(agent.id)

    def attempt(agent: AgentSettings) -> Attempt:
        result = _invoke(ctx, wp, agent, phase="implement", role="implementation", prompt=prompt, workdir=worktree)
        if not result:
            return result
        message = f"{wp.id}: {wp.title}\n\nImplemented by {agent.id} through kittydoit."
        # kept for the review (see Git.diff)
        change = ctx.git.commit_all_then_diff(worktree, message, base, keep=ctx.paths.kept_diff(wp.id))
        if change.empty and ctx.git.same_tree(base, change.head, cwd=worktree):
            return result.failed(Outcome.NO_CHANGE, "finished without changing anything",
                                 f"the WP's change is empty in {ctx.paths.rel(worktree)}")  # fmt: skip
        return result

    runner = phase.agents("implement", "implement")
    candidates = _preferring(ctx.config.candidates("implementation"), moved)
    try:
        done = runner.run(candidates, attempt, before)
    except NeedsHuman:
        last = runner.tried[-1] if runner.tried else None
        reason = f"{last.detail} ({last.outcome.value})" if last is not None else "no agent could be used"
        if moved:
            phase.lanes.implementation_failed(wp.id, moved[0], reason)
        raise
    phase.lanes.implemented(wp.id, next(a for a in candidates if a.id == done.agent))
    return done.agent


def _preferring(candidates: Sequence[AgentSettings], first: Sequence[str]) -> list[AgentSettings]:
    return sorted(candidates, key=lambda a: a.id not in first)


# ---- review -------------------------------------------------------------------------------------------------


def _review(phase: _Phase) -> dict[str, Any]:
    ctx, wp = phase.ctx, phase.wp
    done = _already_complete(phase, "review")
    if done is not None:
        phase.record.update(reviewer=done.get("agent"), single_agent=bool(done.get("single_agent")))
        phase.record.finish(DONE)
        return done
    implemented = _read_marker(ctx.paths.marker(wp.id, "implement"))
    base, implementer = str(implemented["base"]), str(implemented["agent"])
    recorded = Path(str(implemented.get("worktree") or ctx.paths.worktree(wp.id)))
    # The workspace the implementation ran in; a 3.x mission's is asked of spec-kitty only when it has moved.
    worktree = recorded if (recorded / ".git").exists() else phase.lanes.workspace(wp.id) or recorded
    _repair(ctx, wp.id, phase.log("review"))
    if not (worktree / ".git").exists():
        raise WPFailure(f"worktree {ctx.paths.rel(worktree)} is gone; `doit forget {wp.id}` to implement again")
    limit = ctx.config.review_cycles
    for cycle in range(1, limit + 1):
        feedback = phase.lanes.pending_feedback(wp.id)
        if feedback is not None:
            implementer = _implement_once(phase, worktree, base, feedback=feedback, cycle=max(1, cycle - 1))
        phase.lanes.start_review(wp.id, ctx.config.candidates("review"))
        phase.record.start("reviewing", review_cycles=cycle)
        reviewer, verdict, diff = _review_once(phase, worktree, base, implementer)
        said = "approved" if verdict.approved else "changes_requested"  # for the reporter's events and summary
        phase.record.note(reviews=[*phase.record.data.get("reviews", []),
                                   {"cycle": cycle, "reviewer": reviewer, "verdict": said}])  # fmt: skip
        if verdict.approved:
            summary = verdict.feedback.splitlines()[0] if verdict.feedback else ""
            record = {"wp": wp.id, "phase": "review", "agent": reviewer, "implementer": implementer,
                      "base": base, "head": diff.head, "reviews": cycle,
                      "single_agent": reviewer == implementer}  # fmt: skip
            # The marker first: a run killed between the two finishes the lane move (see kittydoit.evidence).
            _write_marker(ctx, ctx.paths.marker(wp.id, "review"), record)
            note = f"Review passed{': ' + summary if summary else ''}"
            phase.lanes.approve_review(wp.id, ctx.config.agents[reviewer], note, ctx.paths.rel(phase.log("review")))
            phase.record.note(reviewer=reviewer, single_agent=reviewer == implementer)
            phase.record.finish(DONE)
            return record
        text = verdict.feedback or NO_DETAILS
        feedback_file = ctx.paths.feedback(wp.id)
        write_atomic(feedback_file, text + "\n")
        phase.lanes.reject_review(wp.id, ctx.config.agents[reviewer], text, feedback_file)
    raise WPFailure(
        f"changes still requested after {limit} reviews; the feedback is in {phase.lanes.location(wp.id)}. "
        f"Run `doit run` for another round, or fix it by hand in {ctx.paths.rel(worktree)} and move the lane to "
        "for_review"
    )


def _review_once(phase: _Phase, worktree: Path, base: str, implementer: str) -> tuple[str, outputs.Verdict, Diff]:
    """Have the change reviewed once, with retries and fallback; return the reviewer, its verdict and the diff."""
    ctx, wp = phase.ctx, phase.wp
    diff = ctx.git.diff(worktree, base, keep=ctx.paths.kept_diff(wp.id))
    context = _prompt_context(ctx, wp, worktree) | {"diff": _diff_context(diff)}
    prompt = ctx.prompts.render(prompts.REVIEW, context)
    verdicts: dict[str, outputs.Verdict] = {}

    def attempt(agent: AgentSettings) -> Attempt:
        result = _invoke(ctx, wp, agent, phase="review", role="review", prompt=prompt, workdir=worktree)
        answer = result.output.final_text if result.output else None
        verdict = outputs.find_verdict(answer)
        if result and verdict is None:
            tail = (answer or "").strip().splitlines()[-1:]
            return result.failed(Outcome.UNUSABLE_OUTPUT, "answer has no VERDICT line",
                                 "no 'VERDICT: APPROVED' or 'VERDICT: CHANGES_REQUESTED' line", *tail)  # fmt: skip
        if verdict is not None:
            verdicts[agent.id] = verdict
        return result

    done = phase.agents("review", "review").run(_reviewers(phase, implementer), attempt)
    return done.agent, verdicts[done.agent], diff


def _reviewers(phase: _Phase, implementer: str) -> list[AgentSettings]:
    """Return the reviewers to try: any but the implementer; the implementer itself only in single-agent mode."""
    ctx = phase.ctx
    candidates = ctx.config.candidates("review")
    others = [a for a in candidates if a.id != implementer]
    if others:
        return others
    if not candidates:
        raise WPFailure("no enabled agent has the review role; enable one in .kittify/agents.yaml")
    delay = ctx.config.review_delay_seconds
    _note(
        phase.log("review"),
        f"single-agent mode: {implementer} reviews its own work (no other reviewer is configured); "
        f"pausing {delay} s first",
    )
    phase.record.update(single_agent=True)
    time.sleep(delay)
    return candidates


def _diff_context(diff: Diff) -> dict[str, object]:
    longest = max((len(run) for run in diff.patch.split("\n") if set(run) == {"`"}), default=0)
    fence = "`" * max(3, longest + 1) + "diff"
    return {
        "base": diff.base,
        "head": diff.head,
        "stat": diff.stat.rstrip("\n"),
        "patch": diff.patch.rstrip("\n"),
        "truncated": diff.truncated,
        "fence": fence,
    }


# ---- running an agent ---------------------------------------------------------------------------------------


def _invoke(
    ctx: Context, wp: WorkPackage, agent: AgentSettings, *, phase: str, role: str, prompt: str, workdir: Path
) -> Attempt:
    """Run *agent* once in the WP's worktree *workdir*, output streaming to the phase log; classify how it ended."""
    prompt_file = ctx.paths.prompt(wp.id, phase)
    write_atomic(prompt_file, prompt)
    worktree = workdir
    log_path = ctx.paths.log(wp.id, phase)
    try:
        argv = agent.spec.argv(role, prompt=prompt, prompt_file=prompt_file, workdir=worktree, model=agent.model)
    except PromptTooLong as error:
        attempt = Attempt(agent.id, Outcome.CANNOT_RUN, str(error), (str(error),))
        _note(log_path, f"{agent.id}: {attempt.outcome.value}, {attempt.detail}")
        return attempt
    shown = shlex.join(["<prompt>" if part == prompt else part for part in argv])
    _note(log_path, f"running {agent.id} ({role}): {shown}")
    try:
        result = ctx.runner.run(
            argv,
            cwd=worktree,
            log_path=log_path,
            stdin_path=agent.spec.stdin_path(prompt_file),
            env=agent.spec.environment(os.environ),
            timeout=ctx.config.timeout_for(agent),
            pid_file=ctx.paths.pid_file(wp.id),
            is_finished=agent.spec.is_finished,
        )
    except FileNotFoundError:
        attempt = Attempt(agent.id, Outcome.NOT_INSTALLED, f"'{argv[0]}' is not installed", (f"{argv[0]}: not found",))
    except PermissionError:
        denied = (f"{argv[0]}: permission denied",)
        attempt = Attempt(agent.id, Outcome.CANNOT_RUN, f"'{argv[0]}' is not executable", denied)
    else:
        output = agent.spec.parse_output(result.stdout, result.stderr, result.returncode)
        attempt = classify(agent, result, output, need_answer=role == "review" or agent.spec.output != "text")
    timed = attempt.result is not None and attempt.outcome is not Outcome.TIMEOUT
    took = f" after {attempt.result.duration:.1f} s" if timed and attempt.result else ""
    evidence = f" [{'; '.join(attempt.evidence)}]" if attempt.evidence and not attempt else ""
    _note(log_path, f"{agent.id}: {attempt.outcome.value}, {attempt.detail}{took}{evidence}")
    return attempt


def _prompt_context(ctx: Context, wp: WorkPackage, worktree: Path | None = None) -> dict[str, Any]:
    feature = ctx.feature
    return {
        "feature": {"slug": feature.slug, "name": feature.friendly_name, "target_branch": ctx.target_branch},
        "wp": {
            "id": wp.id,
            "title": wp.title,
            "spec": wp.spec.strip("\n"),
            "dependencies": list(wp.dependencies),
            "path": feature.relpath(wp.path),
        },
        "worktree": str(worktree or ctx.paths.worktree(wp.id)),
        "branch": _branch(ctx, wp, worktree),
    }


def _branch(ctx: Context, wp: WorkPackage, worktree: Path | None) -> str:
    """Return the branch the WP's work goes on: kittydoit's own, or the one of the workspace spec-kitty gave."""
    if worktree is None or worktree == ctx.paths.worktree(wp.id):
        return ctx.paths.branch(wp.id)
    return ctx.git.current_branch(cwd=worktree) or "HEAD"


# ---- small helpers ------------------------------------------------------------------------------------------


def _repair(ctx: Context, wp_id: str, log_path: Path) -> list[str]:
    """Repair what a killed run left in the WP's worktree (see kittydoit.repair), noting it in *log_path*."""
    lines = repair.repair(ctx, wp_id)
    for line in lines:
        _note(log_path, line)
    return lines


def _run_id(ctx: Context) -> str | None:
    return (read_json(ctx.paths.run_file) or {}).get("id")


def _note(log_path: Path, text: str) -> None:
    """Append a kittydoit line to a phase log, set apart from agent output."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with log_path.open("a", encoding="utf-8") as handle:
        handle.write(f"\n[kittydoit {stamp}] {text}\n")


def _already_complete(phase: _Phase, name: str) -> dict[str, Any] | None:
    """Return the phase's done-marker when the durable evidence says it is complete (a run killed before doit
    recorded it), noting that in the log; None when the phase has work to do."""
    done = evidence.completed(phase.ctx, phase.lanes, phase.wp.id, name)
    if done is not None:
        _note(phase.log(name), f"{name} was already complete (done-marker, branch head {str(done.get('head'))[:12]} "
                               f"and lane agree): recorded as done without invoking an agent")  # fmt: skip
    return done


def _write_marker(ctx: Context, path: Path, record: Mapping[str, object]) -> None:
    """Write a done-marker: unique content, so dependants see a rerun as a change (doit compares md5s), and the
    inputs it was made from, so a later run can tell it still holds (see kittydoit.evidence)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    made_from = evidence.inputs(ctx, str(record["wp"]), str(record["phase"]))
    data = {**record, "inputs": made_from, "finished_at": ctx.clock().isoformat(), "nonce": os.urandom(16).hex()}
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def _read_marker(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise WPFailure(f"{path} is unreadable ({error}); `doit forget` this WP to implement it again") from None
    if not isinstance(data, dict):
        raise WPFailure(f"{path} is not a kittydoit marker; `doit forget` this WP to implement it again")
    return data


@contextlib.contextmanager
def _wp_lock(ctx: Context, wp_id: str) -> Iterator[None]:
    """Hold a WP for this run: a second run (say, one without kittydoit's reporter) cannot work on it too."""
    with locked(ctx.paths.wp_lock(wp_id), wait=False) as held:
        if not held:
            raise WPFailure("another kittydoit run is working on it; let that run finish first")
        yield
