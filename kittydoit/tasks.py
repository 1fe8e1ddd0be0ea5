"""Turn a feature's work packages into doit task dicts: doit owns the graph, the order and up-to-date state.

Per WP a group ``WPxx`` (shown by ``doit list`` with the WP title) holds two tasks:

- ``WPxx:implement`` -- depends on the review done-marker of every dependency (so it waits for them, and runs
  again when one of them runs again, as in Make); targets: its log and its done-marker.
- ``WPxx:review`` -- depends on ``WPxx:implement``'s done-marker; targets: its log and its done-marker.

Both are up to date until the WP's spec (body and work-defining frontmatter), the prompt templates or the agent
settings for the role change. ``implement`` and ``review`` stand for that phase of every WP. The WP groups
are listed longest-remaining-chain first, and their tasks by the longest chain of tasks left
(:func:`task_order`): doit starts ready tasks in the order they are defined (see :mod:`kittydoit.dispatch`).
A WP whose lane is already ``done`` without a kittydoit done-marker (finished before or outside kittydoit) is
up to date and never runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from doit.tools import config_changed

from kittydoit import evidence, workflow
from kittydoit.context import Context

PHASES = ("implement", "review")


def externally_done(ctx: Context, wp_id: str) -> bool:
    """Tell whether *wp_id* needs no run: done before or outside kittydoit.

    0.x: lane done with no kittydoit record of it. 3.x: the event log says approved, done or canceled; the log is
    the authority, so this holds whoever moved it there (kittydoit included).
    """
    if ctx.feature.wps[wp_id].lane not in ctx.feature.finished:
        return False
    return ctx.feature.format == "3.x" or not ctx.paths.marker(wp_id, "review").exists()


def task_order(chains: Mapping[str, int], order: list[str]) -> list[tuple[str, str]]:
    """Return every (WP, phase) longest remaining chain of tasks first, ties in *order*.

    A WP on a chain of c WPs has 2c tasks left before its implement and 2c - 1 before its review, so the
    implements of the WPs heading the longest chains come before their reviews, and a review comes before
    the implement of a WP with a shorter chain. doit starts ready tasks in the order they are defined
    (see :mod:`kittydoit.dispatch`): this is list scheduling by longest remaining chain.
    """
    tasks = [(wp_id, phase) for wp_id in order for phase in PHASES]
    return sorted(tasks, key=lambda t: -(2 * chains[t[0]] - (t[1] == "review")))  # stable: ties keep *order*


def task_dicts(ctx: Context) -> Iterator[dict[str, Any]]:
    """Yield the doit task dicts of the feature in *ctx*."""
    order = ctx.feature.schedule_order()
    done_before = {wp_id for wp_id in order if externally_done(ctx, wp_id)}
    # Paths as doit stores them, made by joining strings: thousands of pathlib joins and relpaths were a
    # noticeable part of loading a feature of hundreds of WPs (see bench/, "No-op rerun").
    markers = ctx.paths.rel(ctx.paths.markers)
    logs = ctx.paths.rel(ctx.paths.logs)

    def marker(wp_id: str, phase: str) -> str:
        return f"{markers}/{wp_id}-{phase}.json"

    def log(wp_id: str, phase: str) -> str:
        return f"{logs}/{wp_id}-{phase}.log"

    fingerprints = evidence.settings(ctx)  # the same the done-markers record (see kittydoit.evidence)
    implement_fp, review_fp = fingerprints["implement"], fingerprints["review"]
    phases: dict[tuple[str, str], dict[str, Any]] = {}
    for wp_id in order:
        wp = ctx.feature.wps[wp_id]
        # `doit list` shows this: a 3.x mission's WPs with their lane from the event log (0.x: the title alone,
        # as scripts that parse it expect).
        shown = f"{wp.lane:<11} {wp.title}" if ctx.feature.format == "3.x" else wp.title
        yield {"basename": wp_id, "name": None, "doc": shown}
        if wp_id in done_before:
            for phase in PHASES:
                phases[wp_id, phase] = {
                    "basename": wp_id,
                    "name": phase,
                    "actions": None,
                    "uptodate": [True],
                    "doc": f"{phase} {wp_id} (lane {wp.lane}: nothing to do)",
                }
            continue
        deps = [d for d in wp.after if d not in done_before]
        # A WP whose file was deleted after kittydoit finished it keeps its done-marker as a file dependency of
        # its dependants, so that deleting the file does not make them run again (see Feature.missing).
        deps += [d for d in ctx.feature.missing.get(wp_id, ()) if ctx.paths.marker(d, "review").exists()]
        phases[wp_id, "implement"] = {
            "basename": wp_id,
            "name": "implement",
            "doc": f"implement {wp_id}: {wp.title}",
            "actions": [(workflow.implement, (ctx, wp_id))],
            "file_dep": [marker(d, "review") for d in deps],
            "targets": [log(wp_id, "implement"), marker(wp_id, "implement")],
            "uptodate": [config_changed({"spec": wp.digest, **implement_fp})],
        }
        phases[wp_id, "review"] = {
            "basename": wp_id,
            "name": "review",
            "doc": f"review {wp_id}: {wp.title}",
            "actions": [(workflow.review, (ctx, wp_id))],
            "file_dep": [marker(wp_id, "implement")],
            "targets": [log(wp_id, "review"), marker(wp_id, "review")],
            "uptodate": [config_changed({"spec": wp.digest, **review_fp})],
        }
    for key in task_order(ctx.feature.chain_lengths(), order):
        yield phases[key]
    for phase in PHASES:
        yield {
            "basename": phase,
            "doc": f"{phase} every work package (with what it depends on)",
            "actions": None,
            "task_dep": [f"{wp_id}:{phase}" for wp_id in order],
        }
