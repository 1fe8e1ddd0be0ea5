"""Concurrency slots that hold across every process of every run in a repository: per agent, and overall.

An agent with ``max_concurrent: N`` has N slot files under ``.kittify/kittydoit/slots/<agent>/``; running it
means holding an exclusive ``flock`` on one of them. The kernel drops a lock when its holder exits, even by
SIGKILL, so a crashed worker never leaks a slot, and doit's worker processes (forked or not) and separate runs
all see the same slots. Waiting for a slot is a blocking ``flock``, not a polling loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

SLOTS_DIR = Path(".kittify") / "kittydoit" / "slots"
# ``global_concurrency`` caps the agents running at once, whichever they are: every running agent also holds one
# of these slots. They live beside the agents' folders, so no agent id can clash with them.
GLOBAL_SLOTS_DIR = Path(".kittify") / "kittydoit" / "slots-global"
GLOBAL = "all"


class Slot:
    """One held slot of one agent; release it (or leave the ``with`` block) when the agent is done."""

    def __init__(self, agent_id: str, index: int, handle: IO[str]) -> None:
        self.agent_id = agent_id
        self.index = index
        self._handle: IO[str] | None = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Slots:
    """The slot files of one repository."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def for_repo(cls, root: Path) -> Slots:
        return cls(root / SLOTS_DIR)

    @classmethod
    def global_for_repo(cls, root: Path) -> Slots:
        """The slots of ``global_concurrency`` (one pool, :data:`GLOBAL`)."""
        return cls(root / GLOBAL_SLOTS_DIR)

    def try_acquire(self, agent_id: str, limit: int) -> Slot | None:
        """Take a free slot of *agent_id* (one of *limit*) without waiting; None when all are taken."""
        for index in range(limit):
            handle = self._open(agent_id, index)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return self._held(agent_id, index, handle)
        return None

    def acquire(self, agent_id: str, limit: int) -> Slot:
        """Take a slot of *agent_id*, waiting (in the kernel, no polling) when all *limit* are taken.

        A waiter queues on one slot file, chosen by its pid, so waiters spread over the slots.
        """
        slot = self.try_acquire(agent_id, limit)
        if slot is not None:
            return slot
        index = os.getpid() % limit
        handle = self._open(agent_id, index)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except BaseException:
            handle.close()
            raise
        return self._held(agent_id, index, handle)

    def in_use(self, agent_id: str, limit: int) -> int:
        """Return how many of *agent_id*'s slots are held right now (for status output)."""
        taken = 0
        for index in range(limit):
            slot = None
            with contextlib.suppress(OSError):  # an unreadable slot folder counts as free
                handle = self._open(agent_id, index)
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    slot = handle
                except BlockingIOError:
                    taken += 1
                finally:
                    if slot is not None:
                        fcntl.flock(slot, fcntl.LOCK_UN)
                    handle.close()
        return taken

    @contextlib.contextmanager
    def hold(self, agent_id: str, limit: int) -> Iterator[Slot]:
        """Hold a slot of *agent_id* for the ``with`` block, waiting for one if needed."""
        slot = self.acquire(agent_id, limit)
        try:
            yield slot
        finally:
            slot.release()

    def _open(self, agent_id: str, index: int) -> IO[str]:
        folder = self.folder / agent_id
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{index}.slot", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        return os.fdopen(fd, "r+", encoding="utf-8")

    @staticmethod
    def _held(agent_id: str, index: int, handle: IO[str]) -> Slot:
        """Write who holds the slot into its file, for a person looking: in place, and truncated only when its
        length changes (truncating every time was a file system update on the way to every agent's start)."""
        said = f"{os.getpid()}\n".encode()
        fd = handle.fileno()
        os.pwrite(fd, said, 0)
        if os.fstat(fd).st_size != len(said):
            os.ftruncate(fd, len(said))
        return Slot(agent_id, index, handle)
