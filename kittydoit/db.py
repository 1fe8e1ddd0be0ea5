"""doit's sqlite3 dependency database, made durable: each finished task is committed at once.

doit writes its database once, when a run ends, so a run killed with SIGKILL (or by the OOM killer) would
forget every task it finished. This backend commits a task's record as soon as doit has saved it: doit's
``Dependency.save_success`` always writes the ``deps:`` entry last, so that write closes the record. Removals
(a failed task, ``doit forget``) are committed at once too. WAL journaling keeps a commit well under a
millisecond; it survives the process dying, which is what matters here (not a power cut).

A removed record also voids the task's done-marker (:func:`kittydoit.evidence.void`): the marker is the evidence a
phase checks before it invokes an agent again, so ``doit forget WP03`` must take it away with doit's record.

doit finds this class through the ``doit.BACKEND`` entry point named ``kittydoit``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from doit.dependency import SqliteDB

from kittydoit.evidence import void

_LAST_KEY = "deps:"


class DurableSqliteDB(SqliteDB):  # type: ignore[misc]  # doit is untyped
    """sqlite3 backend that commits each task's record when doit finishes saving it."""

    desc = "sqlite3, committed after every task (kittydoit)"

    def _sqlite3(self, name: str) -> sqlite3.Connection:
        folder = os.path.dirname(name)
        if folder:
            os.makedirs(folder, exist_ok=True)
        conn: sqlite3.Connection = super()._sqlite3(name)
        conn.execute("pragma journal_mode=wal")
        conn.execute("pragma synchronous=normal")
        return conn

    def set(self, task_id: str, dependency: str, value: Any) -> None:
        super().set(task_id, dependency, value)
        if dependency == _LAST_KEY:
            self._conn.execute(
                "insert or replace into doit values (?,?)", (task_id, self.codec.encode(self._cache[task_id]))
            )
            self._conn.commit()
            self._dirty.discard(task_id)

    def remove(self, task_id: str) -> None:
        super().remove(task_id)
        self._conn.commit()
        self._void(task_id)

    def remove_all(self) -> None:
        super().remove_all()
        self._conn.commit()
        for marker in sorted(self._markers().glob("*.json")):
            void(marker, _now())

    def _void(self, task_id: str) -> None:
        wp_id, _, phase = task_id.partition(":")
        if phase:
            void(self._markers() / f"{wp_id}-{phase}.json", _now())

    def _markers(self) -> Path:
        """Return the feature's done-markers folder: beside the database (see kittydoit.context.Paths)."""
        return Path(self.name).parent / "markers"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
