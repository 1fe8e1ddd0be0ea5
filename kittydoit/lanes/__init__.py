"""Where a feature's lanes live, and how they move: one interface, one module per format.

- :mod:`kittydoit.lanes.frontmatter` -- spec-kitty 0.x: the lane is a field of each WP file's frontmatter (or, before
  0.9, the folder the file sits in), edited round-trip by kittydoit itself.
- :mod:`kittydoit.lanes.eventlog` -- spec-kitty 3.x: lanes are reduced from the mission's append-only
  ``status.events.jsonl``; kittydoit never writes it, every move goes through ``spec-kitty orchestrator-api``.
"""

from __future__ import annotations

from kittydoit.lanes.frontmatter import LaneError, Lanes

__all__ = ["LaneError", "Lanes"]
