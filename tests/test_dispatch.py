"""doit's real engine, with and without kittydoit's definition-order ready queue."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from doit.cmd_base import ModuleTaskLoader
from doit.control import TaskControl
from doit.doit_cmd import DoitMain

from kittydoit import dispatch


def run_tasks(tmp_path: Path) -> list[str]:
    """Run a -n 2 doit where FIFO and definition order differ; return the order the last two tasks started in.

    Defined: a, b (after a), c, d. Two workers start a and c (b waits for a). a ends first and releases b,
    which became ready after d: first in, first out starts d next; definition order starts b.
    """
    started: list[str] = []
    lock = threading.Lock()
    c_started = threading.Event()

    def work(name: str, seconds: float) -> None:
        with lock:
            started.append(name)
        if name == "c":
            c_started.set()
        if name == "a":  # a ends only once the other worker holds c: the two start together on a busy machine too
            assert c_started.wait(timeout=60)
        time.sleep(seconds)

    def task_all():  # type: ignore[no-untyped-def]
        yield {"name": "a", "actions": [(work, ["a", 0.0])]}
        yield {"name": "b", "actions": [(work, ["b", 0.0])], "task_dep": ["all:a"]}
        yield {"name": "c", "actions": [(work, ["c", 0.5])]}
        yield {"name": "d", "actions": [(work, ["d", 0.0])]}

    loader = ModuleTaskLoader({"task_all": task_all})
    db = str(tmp_path / "doit.db")
    code = DoitMain(loader, config_filenames=()).run(
        ["run", "-n", "2", "-P", "thread", "--db-file", db, "all"]
    )
    assert code == 0
    assert sorted(started[:2]) == ["a", "c"]  # the two workers start these at once, in either order
    return started[2:]


def test_doit_alone_starts_ready_tasks_first_in_first_out(tmp_path: Path) -> None:
    assert run_tasks(tmp_path) == ["d", "b"]


def test_definition_order_starts_the_task_defined_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TaskControl, "task_dispatcher", TaskControl.task_dispatcher)  # restored afterwards
    dispatch.use_definition_order()
    assert run_tasks(tmp_path) == ["b", "d"]
