"""Where a feature's lanes live, and how they move: one interface, one module per format.

- :mod:`kittydoit.lanes.base` -- :class:`LaneStore`, what the workflow asks of lanes whatever the format.
- :mod:`kittydoit.lanes.frontmatter` -- spec-kitty 0.x: the lane is a field of each WP file's frontmatter (or, before
  0.9, the folder the file sits in), edited round-trip by kittydoit itself.
- :mod:`kittydoit.lanes.eventlog` and :mod:`kittydoit.lanes.orchestrated` -- spec-kitty 3.x: lanes are reduced from
  the mission's append-only ``status.events.jsonl`` (eventlog), and every move goes through
  ``spec-kitty orchestrator-api`` (orchestrated); kittydoit never writes the log.
"""

from __future__ import annotations

from kittydoit.lanes.base import NO_DETAILS, Feedback, LaneError, LaneStore
from kittydoit.lanes.frontmatter import Lanes

__all__ = ["NO_DETAILS", "Feedback", "LaneError", "LaneStore", "Lanes"]
