"""What each CI job runs: ``kittydoit ci job WPxx`` (one WP on this machine) and ``kittydoit ci integrate``.

A WP job fetches the WP branches from the remote, decides from the seals alone (:mod:`kittydoit.ci.seals`)
whether its WP is up to date, and otherwise runs it with the real doit engine exactly as ``kittydoit run WPxx``
would (retries, fallback, review cycles, the report), the other WPs presented as done: their work comes from
their sealed branches, which become the local branches the WP's worktree merges. It then pushes only its own
branch, with a lease: sealed when the WP is done, unfinished when it failed (the next attempt resumes from it).

The integrate job merges every sealed WP branch into ``<feature>-integration`` (made afresh from the target),
moves the lanes to done on the WP files as they are there, pushes that branch with a lease, and writes one
summary: the merged JSON report of every job (schema ``kittydoit.report/1``) and, on GitHub, the step summary.
It refuses while a WP is not sealed or was built on a dependency tip that has moved since.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain

from kittydoit import summary as summaries
from kittydoit.ci.seals import DONE_BEFORE, REMOTE, SEALED, STALE, UNFINISHED, Remote, Seal, WPState, fingerprint
from kittydoit.context import Context
from kittydoit.dodo import context_namespace
from kittydoit.errors import EXIT_ERROR, EXIT_OK, EXIT_WP_FAILED, FeatureError
from kittydoit.feature import SPECS_DIR, Feature, load_feature, topological_order
from kittydoit.git import GitError
from kittydoit.lanes import LaneError, Lanes
from kittydoit.state import iso, read_json

CI_REPORTS = Path(".kittify") / "reports" / "ci"  # each WP job's report, gathered by the integrate job

Say = Callable[[str], None]


def integration_branch(feature: str) -> str:
    return f"{feature}-integration"


def job_report(root: Path, feature: str, wp_id: str) -> Path:
    """Return where a WP job keeps its report for the integrate job (kept as an artifact)."""
    return root / CI_REPORTS / f"{feature}-{wp_id}.json"


# ---- one WP ---------------------------------------------------------------------------------------------------


def run_job(ctx: Context, wp_id: str, *, say: Say, remote: str = REMOTE) -> int:
    """Run *wp_id* on this machine unless git says it is done; push its branch; return the exit code."""
    feature = ctx.feature
    if wp_id not in feature.wps:
        raise FeatureError(feature.tasks_dir, f"has no work package {wp_id} (work packages: {', '.join(feature.wps)})")
    wp = feature.wps[wp_id]
    origin = Remote(ctx.git, feature.slug, remote)
    branch = origin.branch(wp_id)
    states = origin.states(ctx, ctx.target_branch)
    own = states[wp_id]
    if own.status == SEALED:
        say(f"{wp_id} up to date: {branch} is sealed at {_short(own.tip)}; nothing to do")
        return EXIT_OK
    if own.status == DONE_BEFORE:
        say(f"{wp_id} up to date: its lane was done on {ctx.target_branch} before kittydoit; nothing to do")
        return EXIT_OK
    waiting = [f"{d} ({states[d].status}: {states[d].reason})" for d in wp.dependencies if not states[d].usable]
    if waiting:
        say(f"{wp_id} cannot start: it needs {', '.join(waiting)}; their jobs must seal them first")
        return EXIT_WP_FAILED
    if own.status == STALE:
        say(f"{wp_id} runs again: {own.reason}")
    elif own.status == UNFINISHED:
        say(f"{wp_id} resumes from {branch} at {_short(own.tip)}: an earlier attempt did not finish")
    _local_branches(ctx, origin, wp_id, states)
    worktree = ctx.paths.worktree(wp_id)
    if own.tip is not None:  # a reused branch takes in the current target first
        ctx.git.prepare_worktree(worktree, branch, ctx.target_branch)
        ctx.git.merge(worktree, ctx.target_branch, branch)
    code = _run_doit(_job_view(ctx, wp_id), wp_id)
    _keep_report(ctx, wp_id)
    if not (worktree / ".git").exists():
        return code
    return _push(ctx, origin, states, wp_id, code=code, say=say)


def _push(ctx: Context, origin: Remote, states: Mapping[str, WPState], wp_id: str, *, code: int, say: Say) -> int:
    """Seal the WP's branch when it is done (else commit what is left), push it with a lease; return the code."""
    feature, wp, own = ctx.feature, ctx.feature.wps[wp_id], states[wp_id]
    worktree, branch = ctx.paths.worktree(wp_id), origin.branch(wp_id)
    if code == EXIT_OK:
        marker = read_json(ctx.paths.marker(wp_id, "review")) or {}
        seal = Seal(
            commit="",
            feature=feature.slug,
            wp=wp_id,
            fingerprint=fingerprint(ctx, wp_id),
            built_on={d: tip for d in wp.dependencies if (tip := states[d].tip)},
            implementer=marker.get("implementer"),
            reviewer=marker.get("agent"),
        )
        ctx.git.run("commit", "--allow-empty", "--no-verify", "-q", "-m", seal.message(), cwd=worktree)
    else:
        ctx.git.commit_all(worktree, f"{wp_id}: work of an attempt that did not finish, kept for the next one")
    head = ctx.git.rev("HEAD", cwd=worktree)
    if head == own.tip:
        return code
    lost = origin.push(branch, branch, own.tip)
    if lost is None:
        done = "sealed" if code == EXIT_OK else "unfinished: fix the cause and dispatch again; it resumes from there"
        say(f"{wp_id}: pushed {branch} at {_short(head)} ({done})")
        return code
    if origin.states(ctx, ctx.target_branch)[wp_id].status == SEALED:
        say(f"{wp_id}: not pushed: {lost}; that run sealed {wp_id} for the same spec and settings, so it stands")
        return EXIT_OK
    say(f"{wp_id}: not pushed: {lost}; this run's work is not kept. Dispatch again to go on from that run's branch")
    return code if code != EXIT_OK else EXIT_WP_FAILED


def _local_branches(ctx: Context, origin: Remote, wp_id: str, states: Mapping[str, WPState]) -> None:
    """Point the local branches of the WP and its dependencies at their fetched tips (the remote decides)."""
    wanted = [wp_id, *ctx.feature.wps[wp_id].dependencies]
    for name in wanted:
        tip = states[name].tip
        if tip is not None:
            ctx.git.run("branch", "--no-track", "-f", origin.branch(name), tip)
        elif name == wp_id:
            ctx.git.run("branch", "-D", origin.branch(name), check=False)  # a leftover not on the remote


def _job_view(ctx: Context, wp_id: str) -> Context:
    """Return *ctx* with every other WP shown as done, so doit runs this WP alone, on its dependencies' branches."""
    wps = {other: replace(wp, lane="done") for other, wp in ctx.feature.wps.items()}
    own = ctx.feature.wps[wp_id]
    wps[wp_id] = replace(own, lane="planned" if own.lane == "done" else own.lane)  # done on the target, yet stale
    return replace(ctx, feature=replace(ctx.feature, wps=wps))


def _run_doit(ctx: Context, wp_id: str) -> int:
    """Run ``run WPxx`` with the real doit engine and kittydoit's reporter; return kittydoit's exit code."""
    namespace = context_namespace(ctx)
    reporter = namespace["DOIT_CONFIG"]["reporter"]
    code = DoitMain(ModuleTaskLoader(namespace), config_filenames=()).run(["run", wp_id])
    if code in (EXIT_WP_FAILED, EXIT_ERROR) and reporter.ran:
        return int(reporter.exit_code())
    return int(code)


def _keep_report(ctx: Context, wp_id: str) -> None:
    """Copy this job's run report where the integrate job looks for it (report names clash across jobs)."""
    latest = ctx.paths.root / summaries.REPORTS_DIR / f"{ctx.feature.slug}-latest.json"
    if latest.exists():
        kept = job_report(ctx.paths.root, ctx.feature.slug, wp_id)
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(latest, kept)


# ---- the integrate job ----------------------------------------------------------------------------------------


def integrate(
    ctx: Context, *, say: Say, environ: Mapping[str, str], remote: str = REMOTE
) -> int:
    """Merge the sealed WP branches into the integration branch and move the lanes; write one summary."""
    feature = ctx.feature
    origin = Remote(ctx.git, feature.slug, remote)
    states = origin.states(ctx, ctx.target_branch)
    not_ready = [s for s in states.values() if not s.usable]
    code = EXIT_WP_FAILED if not_ready else EXIT_OK
    lines: list[str] = []
    if not_ready:
        lines.append(f"integrate refused: {len(not_ready)} of {len(states)} work packages are not sealed")
        lines += [f"  {s.wp} {s.status}: {s.reason}" for s in not_ready]
    else:
        try:
            lines += _merge_all(ctx, origin, states)
        except (GitError, LaneError) as error:  # a conflict, a lost lease: said in the summary
            lines.append(f"integrate failed: {error}")
            code = EXIT_WP_FAILED
    summary = merged_summary(ctx, states, code=code, environ=environ)
    report = summaries.write_report(ctx.paths.root, summary)
    for line in lines:
        say(line)
    for line in summary.lines(ctx.paths.rel(report)):
        say(line)
    step_summary = environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with Path(step_summary).open("a", encoding="utf-8") as handle:
            handle.write(markdown(summary, states, lines, integration_branch(feature.slug)))
    return code


def _merge_all(ctx: Context, origin: Remote, states: Mapping[str, WPState]) -> list[str]:
    """Build and push the integration branch; return what was done, for the summary."""
    feature, git = ctx.feature, ctx.git
    branch = integration_branch(feature.slug)
    old = origin.fetch([branch]).get(branch)
    order = [wp for wp in topological_order(feature.wps) if states[wp].tip is not None]
    tips = [git.rev(ctx.target_branch), *(str(states[wp].tip) for wp in order)]
    if old is not None and all(git.is_ancestor(tip, old) for tip in tips):
        return [f"{branch} is up to date at {_short(old)}: it holds {ctx.target_branch} and every sealed WP"]
    worktree = ctx.paths.root / ".worktrees" / branch
    if (worktree / ".git").exists():
        git.run("worktree", "remove", "--force", str(worktree))
    git.run("worktree", "add", "-q", "-B", branch, str(worktree), ctx.target_branch)
    for wp_id in order:
        git.run("branch", "--no-track", "-f", origin.branch(wp_id), str(states[wp_id].tip))
        git.merge(worktree, origin.branch(wp_id), branch)
    moved = record_done(worktree, feature, states, ctx.clock, branch)
    git.commit_all(worktree, f"{feature.slug}: lanes of the integrated work packages moved to done (kittydoit ci)")
    head = git.rev("HEAD", cwd=worktree)
    lost = origin.push(branch, branch, old)
    if lost is not None:
        raise GitError(f"{branch} was not pushed: {lost}; dispatch again")
    merged = ", ".join(order) or "none"
    return [f"pushed {branch} at {_short(head)}: merged {merged}; lanes moved to done: {', '.join(moved) or 'none'}"]


def record_done(
    root: Path, feature: Feature, states: Mapping[str, WPState], clock: Callable[[], datetime], branch: str
) -> list[str]:
    """Move every sealed WP's lane to done in the WP files under *root*; return the WPs moved.

    The one place the integrate job moves lanes. It uses the 0.x frontmatter lanes (:class:`kittydoit.lanes.Lanes`)
    for now; spec-kitty 3.x missions keep lanes in an event log written through ``spec-kitty orchestrator-api``,
    and switching to that lane store happens here and nowhere else.
    """
    there = load_feature(root, root / SPECS_DIR / feature.slug)
    lanes = Lanes(there, clock)
    moved = []
    for wp_id, state in states.items():
        if state.status != SEALED or state.seal is None or lanes.lane(wp_id) == "done":
            continue
        reviewer = state.seal.reviewer or "kittydoit"
        lanes.approve(wp_id, reviewer=reviewer, note=f"Integrated into {branch} (sealed at {_short(state.tip)})")
        moved.append(wp_id)
    return moved


# ---- the one summary ------------------------------------------------------------------------------------------


def merged_summary(
    ctx: Context, states: Mapping[str, WPState], *, code: int, environ: Mapping[str, str]
) -> summaries.Summary:
    """Return the summary of the whole pipeline: each WP as its own job reported it, its status from git."""
    feature = ctx.feature
    outcomes = summaries.Outcomes()
    records: dict[str, dict[str, Any]] = {}
    logs: dict[str, dict[str, str]] = {}
    started: list[str] = []
    seconds: dict[str, float] = {}
    for wp_id in feature.wps:
        report = read_json(job_report(ctx.paths.root, feature.slug, wp_id)) or {}
        entry = next((w for w in report.get("wps", []) if w.get("id") == wp_id), None)
        if report.get("run", {}).get("started"):
            started.append(str(report["run"]["started"]))
        ran = entry is not None and entry.get("status") not in ("skipped", "not_run")
        if entry is not None and ran:
            records[wp_id] = _record(entry)
            logs[wp_id] = {Path(p).stem.rsplit("-", 1)[-1]: p for p in entry.get("logs", [])}
            if entry.get("seconds") is not None:
                seconds[wp_id] = float(entry["seconds"])
        state = states[wp_id]
        blocking = [d for d in feature.wps[wp_id].dependencies if not states[d].usable]
        if state.usable:
            (outcomes.done if ran and entry and entry.get("status") == "done" else outcomes.skipped).append(wp_id)
        elif blocking:
            outcomes.blocked[wp_id] = f"waits for {', '.join(blocking)}"
        elif state.status == UNFINISHED or (entry is not None and entry.get("status") == "failed"):
            outcomes.failed[wp_id] = (entry or {}).get("reason") or f"{state.status}: {state.reason}"
            if entry and entry.get("phase"):
                outcomes.failed_phase[wp_id] = str(entry["phase"])
    now = ctx.clock()
    run_id = environ.get("GITHUB_RUN_ID") or environ.get("CI_PIPELINE_ID") or now.strftime("%Y%m%dT%H%M%SZ")
    first = min(started) if started else iso(now)
    result = summaries.build(
        feature=feature.slug,
        titles={wp_id: wp.title for wp_id, wp in feature.wps.items()},
        outcomes=outcomes,
        records=records,
        run={"id": f"ci-{run_id}", "started": first, "ended": iso(now), "argv": ["kittydoit", "ci", "integrate"]},
        seconds=max(0.0, (now - datetime.fromisoformat(first.replace("Z", "+00:00"))).total_seconds()),
        status="completed" if code == EXIT_OK else "failed",
        exit_code=code,
        logs=logs,
    )
    wps = tuple(replace(wp, seconds=seconds.get(wp.id, wp.seconds)) for wp in result.wps)
    return replace(result, wps=wps)


def _record(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Return a WP record (as :mod:`kittydoit.state` writes them) rebuilt from a WP's entry in a report."""
    reviews = [{"verdict": "approved"}] * int(entry.get("approved") or 0)
    reviews += [{"verdict": "changes_requested"}] * int(entry.get("changes_requested") or 0)
    keys = ("attempts", "implementer", "reviewer", "single_agent", "retries", "fallbacks", "review_cycles")
    return {key: entry.get(key) for key in keys} | {"reviews": reviews}


def markdown(summary: summaries.Summary, states: Mapping[str, WPState], lines: list[str], branch: str) -> str:
    """Return the pipeline's summary as markdown, for ``$GITHUB_STEP_SUMMARY``."""
    out = [f"## kittydoit {summary.feature}: {summary.headline()}", ""]
    out += [f"- {line}" for line in lines]
    out += ["", "| WP | title | status | branch tip | implementer | reviewer |", "|---|---|---|---|---|---|"]
    for wp in summary.wps:
        state = states[wp.id]
        title = wp.title.replace("|", "\\|")
        out.append(f"| {wp.id} | {title} | {wp.status} ({state.status}) | {_short(state.tip) or '-'} | "
                   f"{wp.implementer or '-'} | {wp.reviewer or '-'} |")  # fmt: skip
    out += ["", f"Integration branch: `{branch}`. The merged JSON report is in the `kittydoit-report` artifact.", ""]
    out += ["```text", *summary.lines(), "```", ""]
    return "\n".join(out)


def _short(sha: str | None) -> str:
    return sha[:10] if sha else ""

