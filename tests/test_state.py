"""Atomic writes of kittydoit's own files (kittydoit.state)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kittydoit import state
from kittydoit.state import read_json, write_atomic, write_json


def test_write_atomic_keeps_a_files_mode_whatever_the_umask_and_makes_new_ones_by_the_umask(tmp_path: Path) -> None:
    kept, new, shared, state_file = (tmp_path / name for name in ("kept.md", "new.json", "shared.md", "state.json"))
    kept.write_text("before\n")
    kept.chmod(0o640)
    previous = os.umask(0o077)
    try:
        write_atomic(kept, "after\n")
        write_atomic(new, b"{}\n")
        write_json(state_file, {"status": "running"})
        os.umask(0o022)
        write_atomic(shared, "shared\n")
    finally:
        os.umask(previous)
    assert kept.read_text() == "after\n"
    assert kept.stat().st_mode & 0o777 == 0o640
    assert new.stat().st_mode & 0o777 == 0o600  # a private umask keeps what kittydoit makes private
    assert state_file.stat().st_mode & 0o777 == 0o600
    assert shared.stat().st_mode & 0o777 == 0o644
    # no temporary file left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.md", "new.json", "shared.md", "state.json"]


def test_a_temporary_name_left_by_a_process_that_died_is_skipped(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    upcoming = next(state._TEMPORARY) + 1
    left = [tmp_path / f".record.json.{os.getpid()}-{n}.tmp" for n in range(upcoming, upcoming + 3)]
    for path in left:
        path.write_text("left by a killed process with this pid")
    write_json(target, {"status": "done"})
    assert read_json(target) == {"status": "done"}
    assert all(path.read_text() == "left by a killed process with this pid" for path in left)
    write_json(target, {"status": "again"})
    assert json.loads((tmp_path / "record.json.prev").read_text()) == {"status": "done"}
