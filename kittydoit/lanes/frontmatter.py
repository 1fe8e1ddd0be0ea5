"""Move work packages between lanes and record reviews, the way spec-kitty's own tool does.

Each move sets ``lane`` (and the agent fields) in the frontmatter and appends an Activity Log line
``- <time> – <agent> – shell_pid=<pid> – lane=<lane> – <note>``; approval also sets ``review_status:
"approved"`` and ``reviewed_by``; a rejected review sets ``lane: planned``, ``review_status:
"has_feedback"``, ``reviewed_by`` and ``review_feedback_file`` and writes the ``## Review Feedback`` section.
Nothing else in the file changes (see :mod:`kittydoit.wpfile`).

Files are replaced atomically (a temporary file, then rename). In the older lane-folder layout
(``tasks/<lane>/WPxx-*.md``) the file is first renamed into its new lane's folder, so a crash leaves it in
exactly one place. With ``commit_lane_changes: true`` each move is also committed in the main checkout (only the
WP file, under the repository lock); by default kittydoit leaves committing the WP files to the user, since it
runs unattended and must not create commits in the checkout people work in.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kittydoit.errors import FeatureError
from kittydoit.feature import LANES, Feature
from kittydoit.git import Git
from kittydoit.lanes.base import NO_DETAILS, Feedback, LaneError
from kittydoit.process import after_next_start
from kittydoit.state import write_atomic
from kittydoit.wpfile import WPDocument, read_raw

if TYPE_CHECKING:
    from kittydoit.config import AgentSettings


class Lanes:
    """Lane moves for the work packages of one feature."""

    def __init__(
        self, feature: Feature, clock: Callable[[], datetime], git: Git | None = None, commit: bool = False
    ) -> None:
        self.feature = feature
        self.clock = clock
        self.git = git
        self.commit = commit
        # The WP files this object last read or wrote, with their bytes then: a file that still has those bytes
        # is taken from here instead of being parsed again (parsing is most of a lane move's cost).
        self._known: dict[Path, tuple[bytes, WPDocument]] = {}

    def path(self, wp_id: str) -> Path:
        """Return where the WP file is now (in the lane-folder layout it moves with its lane)."""
        if self.feature.layout == "flat":
            return self.feature.wps[wp_id].path
        name = self.feature.wps[wp_id].path.name
        for lane in LANES:
            candidate = self.feature.tasks_dir / lane / name
            if candidate.exists():
                return candidate
        raise LaneError(f"{self.feature.relpath(self.feature.wps[wp_id].path)}: work package file disappeared")

    def read(self, wp_id: str) -> WPDocument:
        """Return the WP file as it is now (read it before moving the WP: a move edits the document)."""
        try:
            return self._load(self.path(wp_id))[1]
        except FeatureError as error:  # the file changed under the run
            raise LaneError(str(error)) from None

    def _load(self, path: Path, was: Path | None = None) -> tuple[bytes, WPDocument]:
        """Return the bytes and document of *path* (known as *was* before a move), parsing only what changed."""
        raw = read_raw(path)
        known = self._known.get(was or path)
        if known is not None and known[0] == raw:
            known[1].path = path
            return known
        self._known[path] = (raw, WPDocument.decode(path, raw))
        return self._known[path]

    def lane(self, wp_id: str) -> str:
        """Return the WP's current lane (its folder's, in the lane-folder layout)."""
        return self.current(wp_id)[1]

    def current(self, wp_id: str) -> tuple[WPDocument, str]:
        """Return the WP file as it is now, and its lane (its folder's, in the lane-folder layout)."""
        doc = self.read(wp_id)
        if self.feature.layout == "lanes":
            return doc, doc.path.parent.name
        return doc, str(doc.get("lane") or "planned")

    def move(
        self, wp_id: str, lane: str, *, agent: str, note: str, fields: Mapping[str, str] | None = None
    ) -> None:
        """Move *wp_id* to *lane*, setting *fields* too, with an Activity Log line."""
        self._update(wp_id, lane=lane, agent=agent, note=note, fields={"lane": lane, **(fields or {})}, feedback=None)

    def approve(self, wp_id: str, *, reviewer: str, note: str) -> None:
        """Record an approving review: lane ``done``."""
        fields = {"lane": "done", "review_status": "approved", "reviewed_by": reviewer}
        self._update(wp_id, lane="done", agent=reviewer, note=note, fields=fields, feedback=None)

    def request_changes(self, wp_id: str, *, reviewer: str, feedback: str, feedback_file: Path) -> None:
        """Record a review that asks for changes: lane ``planned`` with the feedback in the file."""
        fields = {
            "lane": "planned",
            "review_status": "has_feedback",
            "reviewed_by": reviewer,
            "review_feedback_file": os.path.relpath(feedback_file, self.feature.root),
        }
        self._update(
            wp_id, lane="planned", agent=reviewer, note="Changes requested in review", fields=fields, feedback=feedback
        )

    def _update(
        self,
        wp_id: str,
        *,
        lane: str,
        agent: str,
        note: str,
        fields: Mapping[str, str],
        feedback: str | None,
    ) -> None:
        old = self.path(wp_id)
        path = old
        if self.feature.layout == "lanes" and old.parent.name != lane:
            path = self.feature.tasks_dir / lane / old.name
            path.parent.mkdir(exist_ok=True)
            os.replace(old, path)
        try:
            before, doc = self._load(path, was=old)
            self._known.pop(old, None)  # *doc* is edited now; it is known again once it is written
            self._known.pop(path, None)
            doc.update(fields)
            now = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
            if feedback is not None:
                doc.replace_section(
                    "Review Feedback",
                    f"**Reviewed by**: {agent}\n**Status**: ❌ Changes Requested\n**Date**: {now}\n\n{feedback}",
                )
            one_line = " ".join(note.split())
            doc.append_activity(f"{now} – {agent} – shell_pid={os.getpid()} – lane={lane} – {one_line}")
            after = doc.text().encode("utf-8")
            write_atomic(path, after)
            self._known[path] = (after, doc)
            # Off the hand-off between two agents: the entry only spares the next load a parse.
            after_next_start(functools.partial(self.feature.remember, (old, before), (path, after), lane))
        except (FeatureError, OSError) as error:  # a lane that cannot be recorded fails the WP, never silently
            raise LaneError(f"cannot record lane {lane} in {self.feature.relpath(path)}: {error}") from None
        if self.commit and self.git is not None:
            self.git.commit_paths(sorted({old, path}), f"{wp_id}: lane {lane} ({note})")

    # ---- the lane store (kittydoit.lanes.LaneStore) ---------------------------------------------------------

    kind = "WP frontmatter (spec-kitty 0.x)"

    def implemented_by(self, wp_id: str) -> str | None:
        """Return the implementer when the WP waits for review (lane ``for_review``), else None."""
        doc, lane = self.current(wp_id)
        return str(doc.get("agent") or "unknown") if lane == "for_review" else None

    def pending_feedback(self, wp_id: str) -> Feedback | None:
        """Return the last review's feedback while it asks for changes not yet made (not back in for_review)."""
        doc, lane = self.current(wp_id)
        if doc.get("review_status") != "has_feedback" or lane == "for_review":
            return None
        text = doc.section_text("Review Feedback") or NO_DETAILS
        return Feedback(text, str(doc.get("reviewed_by") or ""))

    def claim(self, wp_id: str, implementers: Sequence[AgentSettings], git: Git) -> tuple[Path, str] | None:
        """Return None: a 0.x WP's worktree is kittydoit's own, made by the workflow."""
        del wp_id, implementers, git
        return None

    def workspace(self, wp_id: str) -> Path | None:
        """Return None: a 0.x WP works in kittydoit's own worktree."""
        del wp_id
        return None

    def implementing(self, wp_id: str, agent: AgentSettings, note: str) -> None:
        """Move the WP to ``doing`` as *agent* starts on it."""
        fields = {"agent": agent.id, "shell_pid": str(os.getpid())}
        self.move(wp_id, "doing", agent=agent.id, note=note, fields=fields)

    def implemented(self, wp_id: str, agent: AgentSettings) -> None:
        """Move the WP to ``for_review``."""
        self.move(wp_id, "for_review", agent=agent.id, note="Implementation ready for review")

    def implementation_failed(self, wp_id: str, agent: str, reason: str) -> None:
        """Move the WP back to ``planned``, saying why."""
        self.move(wp_id, "planned", agent=agent, note=f"Implementation failed: {reason}")

    def start_review(self, wp_id: str, reviewers: Sequence[AgentSettings]) -> None:
        """Nothing to record: 0.x has no lane for a review in progress."""
        del wp_id, reviewers

    def approve_review(self, wp_id: str, reviewer: AgentSettings, note: str, reference: str) -> None:
        """Record the approving review (lane ``done``)."""
        del reference
        self.approve(wp_id, reviewer=reviewer.id, note=note)

    def reject_review(self, wp_id: str, reviewer: AgentSettings, feedback: str, feedback_file: Path) -> None:
        """Record the review asking for changes (lane ``planned``, feedback in the WP file)."""
        self.request_changes(wp_id, reviewer=reviewer.id, feedback=feedback, feedback_file=feedback_file)

    def location(self, wp_id: str) -> str:
        """Return where a person sees and changes the WP's lane."""
        return self.feature.relpath(self.path(wp_id))
