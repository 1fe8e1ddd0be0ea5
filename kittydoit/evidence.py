"""The durable evidence that a phase of a WP is complete, so that no crash makes kittydoit redo finished work.

doit records a finished task at once (:mod:`kittydoit.db`), but a run killed after a phase's last step and before
doit's record leaves only the phase's own evidence behind; without a look at it, the next run would invoke the agent
again (a reviewer asked twice can reject work it approved). Each phase asks :func:`completed` before it starts an
agent. The evidence is the phase's done-marker, trusted only when it is about the work as it is now:

- it was written for the same *inputs* (:func:`inputs`): the WP's spec, the prompt templates and the agent settings
  of the role (what the task's ``config_changed`` holds) and the done-markers the task waits for (its ``file_dep``),
  so a WP that doit runs again because something it depends on changed is never taken for done;
- the WP's branch is still at the head the marker records;
- the lane agrees: ``for_review`` or later after implement; ``done`` after review (``approved`` in spec-kitty 3.x).
  A review marker is written before the lane moves to done, so a run killed between the two is finished here.

``doit forget`` voids a phase's marker (:func:`void`, from kittydoit's database backend), so a forgotten WP always
runs again. The lane is asked through the lanes object the phase holds, so a lane kept elsewhere (spec-kitty 3.x's
event log) changes only what that object answers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from kittydoit import prompts
from kittydoit.context import Context
from kittydoit.lanes import LaneStore
from kittydoit.state import read_json, write_atomic

# The lanes a WP is in once implemented, and once approved (0.x: done; 3.x: approved, then done).
IMPLEMENTED_LANES = frozenset({"for_review", "in_review", "approved", "done"})
APPROVED_LANES = frozenset({"approved", "done"})




def settings(ctx: Context) -> dict[str, dict[str, str]]:
    """Return, per phase, the fingerprint of the templates and agent settings that decide its work."""
    return {
        "implement": {
            "templates": ctx.prompts.digest(prompts.IMPLEMENT, prompts.REIMPLEMENT),
            "agents": ctx.config.fingerprint("implementation"),
        },
        "review": {
            "templates": ctx.prompts.digest(prompts.REVIEW, prompts.REIMPLEMENT),
            "agents": ctx.config.fingerprint("review"),
        },
    }


def inputs(ctx: Context, wp_id: str, phase: str) -> str:
    """Return a digest of what *phase* of *wp_id* is done from: its task's config and the markers it waits for."""
    wp = ctx.feature.wps[wp_id]
    waits = [ctx.paths.marker(d, "review") for d in wp.after] if phase == "implement" else [
        ctx.paths.marker(wp_id, "implement")
    ]  # fmt: skip
    data = {
        "config": {"spec": wp.digest, **settings(ctx)[phase]},
        "after": {ctx.paths.rel(path): _file_digest(path) for path in waits},
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def completed(ctx: Context, lanes: LaneStore, wp_id: str, phase: str) -> dict[str, Any] | None:
    """Return the done-marker of *phase* of *wp_id* when it proves the phase complete, else None (see above)."""
    marker = read_json(ctx.paths.marker(wp_id, phase))
    if not marker or marker.get("forgotten") or marker.get("inputs") != inputs(ctx, wp_id, phase):
        return None
    branch = ctx.git.run("rev-parse", "--verify", "--quiet", f"refs/heads/{ctx.paths.branch(wp_id)}", check=False)
    if branch.stdout.strip() != marker.get("head"):
        return None
    lane = lanes.lane(wp_id)
    if phase == "implement":
        return marker if lane in IMPLEMENTED_LANES else None
    if lane in APPROVED_LANES:
        return marker
    if lane in ("for_review", "in_review"):  # approved, then killed before the lane moved
        reviewer = ctx.config.agents.get(str(marker.get("agent")))
        if reviewer is None:
            return None  # the reviewer is no longer configured: review again rather than guess
        lanes.approve_review(wp_id, reviewer, "Review passed (recorded after a restart)",
                             ctx.paths.rel(ctx.paths.log(wp_id, "review")))  # fmt: skip
        return marker
    return None  # moved back by someone since: not done


def void(marker: Path, when: str) -> None:
    """Void a done-marker (``doit forget``, or doit dropping the task's record): it no longer proves anything.

    The file stays, with new content: a marker that vanished would make a WP done by kittydoit look done before
    it, and the WPs that wait for it see a change, as after a rerun.
    """
    data = read_json(marker)
    if data is None or data.get("forgotten"):
        return
    write_atomic(marker, json.dumps({"forgotten": when, "was": data}, indent=2) + "\n")


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
