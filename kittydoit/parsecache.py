"""Keep the WPs of a feature as last parsed, so that a WP file whose bytes did not change is not parsed again.

The cache is a folder. ``feature.json`` holds every WP of the last load, in one file: writing a thousand small
files costs more than parsing them. A lane move, made by a worker while others make theirs, writes the moved
WP's entry alone, ``<WP file name>.json``; the next load reads those first and folds them into ``feature.json``.
Each entry holds the key it is valid for (a hash of the file's name, lane folder and bytes): an entry whose
key differs, or a damaged file, is never trusted, only parsed again. Losing an entry to a race costs a parse.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from kittydoit.state import write_atomic

BULK = "feature.json"


class ParseCache:
    """The WP entries of one feature's cache folder, read once per load."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            self._moved = {name[: -len(".json")] for name in os.listdir(folder) if name.startswith("WP")}
        except OSError:  # no cache yet
            self._moved = set()
        bulk = _read(folder / BULK)
        self._bulk: dict[str, Any] = bulk if isinstance(bulk, dict) else {}
        self._known: dict[str, dict[str, Any]] = {}  # name -> entry, of the files looked up or added
        self._changed = False

    def lookup(self, name: str, key: str) -> dict[str, Any] | None:
        """Return the entry's WP data of the file *name* when it was cached with *key*, else None."""
        moved = _read(self.folder / f"{name}.json") if name in self._moved else None
        for entry in (moved, self._known.get(name), self._bulk.get(name)):
            if isinstance(entry, dict) and entry.get("key") == key and isinstance(entry.get("wp"), dict):
                self._changed = self._changed or entry is not self._bulk.get(name)
                self._known[name] = entry
                return dict(entry["wp"])
        return None

    def add(self, name: str, key: str, wp: dict[str, Any]) -> None:
        """Keep *wp*, the data of the file *name* parsed now with *key*, for :meth:`save`."""
        self._known[name] = {"key": key, "wp": wp}
        self._changed = True

    def save(self) -> None:
        """Write the entries of this load as ``feature.json`` when they changed; drop the lane moves' files."""
        if not self._changed and not self._moved and len(self._known) == len(self._bulk):
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(self.folder / BULK, json.dumps(self._known, default=str))
        except OSError:
            return  # the cache only saves time; a run goes on without it
        for name in self._moved:
            with contextlib.suppress(OSError):  # already gone (another load folded it), or unwritable: harmless
                (self.folder / f"{name}.json").unlink()
        self._moved.clear()

    def remember(self, old: tuple[str, str], new: tuple[str, str], changes: dict[str, Any]) -> None:
        """Cache the file *new* (name, key) as the entry of *old* (name, key) with *changes*, if *old* is cached.

        A lane move writes only this entry, in a file of its own: workers move WPs at the same time.
        """
        old_name, old_key = old
        wp = self.lookup(old_name, old_key)
        if wp is None:
            return
        entry = {"key": new[1], "wp": {**wp, **changes}}
        self._known[new[0]] = entry
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(self.folder / f"{new[0]}.json", json.dumps(entry, default=str))
        except OSError:
            return
        self._moved.add(new[0])


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):  # missing or damaged: parsed again
        return None
