"""max_concurrent slots: file locks that hold across processes and free themselves when a holder dies."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from kittydoit.slots import Slots

HOLDER = """
import sys, time
from pathlib import Path
from kittydoit.slots import Slots
slot = Slots(Path(sys.argv[1])).try_acquire("codex", int(sys.argv[2]))
print("held" if slot else "none", flush=True)
time.sleep(float(sys.argv[3]))
"""


def hold_in_child(folder: Path, limit: int, seconds: float) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), str(limit), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def stop(child: subprocess.Popen[str]) -> None:
    child.kill()
    child.communicate()


def test_a_slot_held_by_another_process_is_not_free(tmp_path: Path) -> None:
    slots = Slots(tmp_path)
    child = hold_in_child(tmp_path, 1, 30)
    try:
        assert slots.try_acquire("codex", 1) is None
        assert slots.in_use("codex", 1) == 1
        second = slots.try_acquire("codex", 2)  # a limit of two leaves one free
        assert second is not None and second.index == 1
        second.release()
        other = slots.try_acquire("claude-code", 1)  # other agents have their own slots
        assert other is not None
        other.release()
    finally:
        stop(child)


def test_a_killed_holder_frees_its_slot(tmp_path: Path) -> None:
    child = hold_in_child(tmp_path, 1, 60)
    stop(child)
    slot = Slots(tmp_path).try_acquire("codex", 1)
    assert slot is not None
    slot.release()


def test_acquire_waits_until_a_slot_is_released(tmp_path: Path) -> None:
    slots = Slots(tmp_path)
    first = slots.try_acquire("codex", 1)
    assert first is not None
    got: list[float] = []
    started = time.monotonic()

    def wait() -> None:
        with slots.hold("codex", 1):
            got.append(time.monotonic() - started)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    assert got == []  # still waiting
    first.release()
    waiter.join(timeout=10)
    assert got and got[0] >= 0.5
    assert slots.in_use("codex", 1) == 0
