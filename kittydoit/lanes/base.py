"""What every lane store offers the workflow, whichever format keeps the lanes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kittydoit.config import AgentSettings
    from kittydoit.git import Git

NO_DETAILS = "(the reviewer asked for changes without details)"


class LaneError(Exception):
    """A lane could not be read or moved; the message names the file, or says what spec-kitty answered."""


@dataclass(frozen=True)
class Feedback:
    """Review feedback a WP still has to address, and who gave it."""

    text: str
    reviewer: str


class LaneStore(Protocol):
    """The lane moves of one phase of the workflow, as the feature's format records them."""

    kind: str

    def lane(self, wp_id: str) -> str:
        """Return the WP's lane now."""

    def implemented_by(self, wp_id: str) -> str | None:
        """Return the implementer when the WP is implemented and waits for (or is in) review, else None."""

    def pending_feedback(self, wp_id: str) -> Feedback | None:
        """Return review feedback the WP has yet to address, or None."""

    def claim(self, wp_id: str, implementers: Sequence[AgentSettings], git: Git) -> tuple[Path, str] | None:
        """Start (or resume) the WP's implementation where the format has its own workspaces.

        Return the workspace and the commit the WP's own change starts from; None where kittydoit makes the
        worktree itself (0.x).
        """

    def workspace(self, wp_id: str) -> Path | None:
        """Return the workspace of a started WP, or None where kittydoit's own worktree is used (0.x)."""

    def implementing(self, wp_id: str, agent: AgentSettings, note: str) -> None:
        """Record that *agent* starts implementing the WP."""

    def implemented(self, wp_id: str, agent: AgentSettings) -> None:
        """Record that the WP is implemented and ready for review."""

    def implementation_failed(self, wp_id: str, agent: str, reason: str) -> None:
        """Record that no agent could implement the WP."""

    def start_review(self, wp_id: str, reviewers: Sequence[AgentSettings]) -> None:
        """Record that a review starts."""

    def approve_review(self, wp_id: str, reviewer: AgentSettings, note: str, reference: str) -> None:
        """Record an approving review."""

    def reject_review(self, wp_id: str, reviewer: AgentSettings, feedback: str, feedback_file: Path) -> None:
        """Record a review that asks for changes, with its feedback."""

    def location(self, wp_id: str) -> str:
        """Return where a person sees and changes the WP's lane, for messages."""
