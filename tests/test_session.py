"""The run session: how often WP news reaches the state file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from conftest import make_repo
from test_process import STOP_INSIDE_A_QUEUE_START, python_c

from kittydoit.context import load_context
from kittydoit.session import Session
from kittydoit.state import RunState


class _Clock:
    """A monotonic clock that moves only when told to, so that the test does not depend on the machine's speed."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _SlowState(RunState):
    """The real run state, on a disk where writing the state file takes *seconds* (of *ticks*)."""

    seconds = 0.02
    writes: list[set[str]]
    ticks: _Clock

    def wps(self, news: Mapping[str, tuple[str | None, str | None]]) -> None:
        self.ticks.now += self.seconds
        self.writes.append(set(news))
        super().wps(news)


def test_the_state_file_is_written_less_often_when_writing_it_is_slow(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": []})
    ctx = load_context(repo.root, None, cache=False)
    session = Session(ctx)
    state = _SlowState(ctx.paths.root, ctx.paths.feature, ctx.paths.state, ctx.clock)
    state.writes, state.ticks = [], _Clock()
    state.start(wps={"WP01": "one", "WP02": "two"}, pid=1, argv=[])
    session.state, session.monotonic = state, state.ticks
    session.wp("WP01", "running")  # the first news is written at once ...
    state.ticks.now += 0.6  # ... and the next not within 0.02 / 1 % = 2 s of it, although half a second has passed
    session.wp("WP02", "running")
    assert state.writes == [{"WP01"}]
    state.ticks.now += 1.5
    session.wp("WP02", "running")
    assert state.writes == [{"WP01"}, {"WP02"}]  # 2 s after the slow write
    state.seconds = 0.0  # writing is quick again: after one quick write, back to every half second
    session.wp("WP01", "done")
    session.flush()  # at the end of the run, whatever is pending is written
    assert state.writes == [{"WP01"}, {"WP02"}, {"WP01"}]
    session.wp("WP02", "done")
    state.ticks.now += 0.4
    session.wp("WP01", "done")
    assert len(state.writes) == 3  # within half a second
    state.ticks.now += 0.1
    session.wp("WP01", "done")
    assert state.writes[3:] == [{"WP01", "WP02"}]


def test_a_ctrl_c_that_comes_while_a_queue_starts_its_thread_is_raised_at_the_reporters_next_event(
    tmp_path: Path,
) -> None:
    # As doit hands out the first tasks: raised there, the orchestrator hung as it exited (see test_process).
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    code = STOP_INSIDE_A_QUEUE_START.replace("SIGNAL", "signal.SIGINT") + (
        "from pathlib import Path\n"
        "from kittydoit.context import load_context\n"
        "from kittydoit.session import Session\n"
        f"session = Session(load_context(Path({str(repo.root)!r}), None, cache=False))\n"
        "session.start({'WP01': 'one'})\n"
        "try:\n"
        "    multiprocessing.Queue().put('a task')\n"
        "    print('stop asked for, not begun:', session.stop_lost(), flush=True)\n"
        "finally:\n"
        "    session.close('aborted')\n"
    )
    result = python_c(tmp_path, code, timeout=20)
    assert (result.returncode, result.stdout) == (0, "stop asked for, not begun: True\n"), result.stderr


def test_a_ctrl_c_that_comes_while_a_thread_starts_is_raised_after_the_start(tmp_path: Path) -> None:
    # Raised while Thread.start waited for the new thread, the thread ran but could not be joined: the progress
    # thread's stop then failed with a traceback.
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    code = (
        "import os, signal, threading, time\n"
        "from pathlib import Path\n"
        "from kittydoit.context import load_context\n"
        "from kittydoit.session import Session\n"
        f"session = Session(load_context(Path({str(repo.root)!r}), None, cache=False))\n"
        "session.start({'WP01': 'one'})\n"
        "real_wait = threading.Event.wait\n"
        "def wait(self, timeout=None):\n"  # Thread.start waits for the new thread here: the Ctrl-C comes now
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.05)\n"
        "    return real_wait(self, timeout)\n"
        "threading.Event.wait = wait\n"
        "thread = threading.Thread(target=time.sleep, args=(0.1,))\n"
        "try:\n"
        "    thread.start()\n"
        "    threading.Event.wait = real_wait\n"
        "    print('stop asked for, not begun:', session.stop_lost(), flush=True)\n"
        "finally:\n"
        "    thread.join()\n"
        "    session.close('aborted')\n"
    )
    result = python_c(tmp_path, code, timeout=20)
    assert (result.returncode, result.stdout) == (0, "stop asked for, not begun: True\n"), result.stderr
