"""The supervisor of one agent: a small process between kittydoit and the agent, so the agent's tree dies with it.

:class:`kittydoit.process.ProcessRunner` forks it ahead of time with :func:`fork_spare`, from the process that runs
the agent, and hands it the agent with :func:`order`; it goes straight to :func:`supervise` and never returns to the
caller's code (standard library only, and no new Python to start: executing ``python supervisor.py`` cost 25-35 ms
on a 2-core machine at every agent start, on the critical path of every hand-off between WPs). The supervisor

- asks the kernel for SIGUSR1 when its parent dies (``PR_SET_PDEATHSIG``), whatever killed the parent, SIGKILL
  included: a doit worker, or with ``-n 0`` the orchestrator itself;
- becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``), so every process the agent starts stays its
  descendant, also one that called ``setsid`` or double-forked to leave the agent's process group;
- starts the agent in a session of its own (the agent's process group) on the given stdin, stdout and stderr,
  and reports ``started PID`` (or ``error ERRNO``) on its report pipe, and ``exit CODE`` when it is done;
- on SIGTERM (also SIGINT, SIGHUP), stops every descendant in stages: SIGTERM, a grace period, SIGKILL;
- on SIGUSR1 (its parent died, or kittydoit wants it over at once) sends SIGKILL to every descendant at once;
- when the agent exits by itself, gives what it left running a drain period to end, then stops it in stages.

It exits when no descendant is left. Signals are blocked and taken one at a time with ``sigtimedwait``: no handler
can run in the middle of another.

Why a process of its own: a doit worker dies in the same ``kill -9`` as the orchestrator (they share its process
group), and an agent's grandchildren do not die with their parent. Linux ties a process to its parent's death
(``PR_SET_PDEATHSIG``) and lets a process adopt its orphaned descendants (``PR_SET_CHILD_SUBREAPER``); one
supervisor per agent uses both and needs no next run to clean up.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_STOP = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_NOW = signal.SIGUSR1
_WATCHED = {signal.SIGCHLD, _NOW, *_STOP}
_LOOK = 0.05  # seconds between looks for descendants while stopping them
_MAX_FD = 1 << 20  # closerange stops at the real limit (close_range(2) on Linux)


@dataclass(frozen=True)
class Spare:
    """A supervisor forked ahead of its agent, waiting for what to start (:func:`fork_spare`), as the forking
    process sees it: the supervisor's pid and this side's ends of its pipes."""

    pid: int
    command: int  # write the order here (:func:`order`), then close it
    report: int  # ``started PID`` (or ``error ERRNO``), then ``exit CODE``
    stdout: int  # the agent's output
    stderr: int


def fork_spare() -> Spare:
    """Fork a supervisor that waits for its order (:func:`order`), then starts the agent and supervises it.

    Forking a big process (a doit worker) takes milliseconds, and the child's first steps as many again: done
    while the previous agent runs, they are off the way from one agent to the next (see kittydoit.process). A spare
    that reads the end of its order pipe without an order (its parent closed it) exits, and one whose parent dies is
    killed by the kernel. In the child only this function's own calls run (system calls through modules already
    imported), and it ends with ``os._exit``: safe after ``fork`` even when the caller has other threads
    (multiprocessing's queue feeder in a doit worker, kittydoit's preparing thread in the orchestrator).

    At once, the spare leaves the run's process group and session, points its stdin, stdout and stderr at
    ``/dev/null`` and closes everything else it inherited. So it holds no pipe, lock or terminal of its parent's
    while it waits, and a Ctrl-C or hang-up sent to the run's process group never reaches it. Every signal it gets
    was sent to it: a stop its parent sends after the order and before the agent has started stops that agent as
    soon as it starts.
    """
    prctl = _prctl()  # looked up here: the loader's lock may be held by another thread at the fork
    command_r, command_w = os.pipe()
    report_r, report_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    parent = os.getpid()
    # Blocked before the fork, so in the child from its first instant (as supervise() wants them): a stop sent to
    # it at once would otherwise go to a Python handler it inherited, and be lost.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork() in a multi-threaded process
            pid = os.fork()
    except OSError:  # no memory, or too many processes: nothing was forked
        for fd in (command_r, command_w, report_r, report_w, out_r, out_w, err_r, err_w):
            os.close(fd)
        raise
    finally:
        if os.getpid() == parent:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    if pid:
        for fd in (command_r, report_w, out_w, err_w):
            os.close(fd)
        return Spare(pid, command_w, report_r, out_r, err_r)
    code = 70
    try:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # a spare has nothing to stop: it just goes
        if os.getppid() != parent:  # the parent died before that took effect
            os._exit(0)
        os.setsid()  # out of the run's process group: a Ctrl-C or hang-up meant for the run never reaches it
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # it never holds the run's terminal or output pipe open, however long it waits
        _close_all_but({0, 1, 2, command_r, report_w, out_w, err_w})
        received = bytearray()
        while chunk := os.read(command_r, 65536):
            received += chunk
        code = _start_ordered(received, parent, out_w, err_w, report_w) if received else 0
    except BaseException as error:  # the child must never return into the caller's code
        said = f"error {error.errno}" if isinstance(error, OSError) and error.errno else f"failed {error!r}"
        with contextlib.suppress(BaseException):
            os.write(report_w, f"{said}\n".encode())
    finally:
        os._exit(code)


def _start_ordered(received: bytearray, parent: int, out_w: int, err_w: int, report_w: int) -> int:
    """In a spare: start the agent that *received* orders, writing to *out_w* and *err_w*, supervise it until its
    tree is gone, reporting on *report_w*; return the exit code."""
    request = json.loads(received)
    stdin = os.open(request["stdin"] or os.devnull, os.O_RDONLY)
    for target, fd in enumerate((stdin, out_w, err_w)):
        if fd != target:
            os.dup2(fd, target)
    _close_all_but({0, 1, 2, report_w})
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])  # posix_spawnp looks argv[0] up on the agent's PATH
    return supervise(parent, request["grace"], request["drain"], report_w, request["argv"])


def order(
    spare: Spare, argv: list[str], *, cwd: str, env: dict[str, str], stdin: str | None, grace: float, drain: float
) -> None:
    """Have *spare* start *argv* in *cwd* with *env*, its stdin the file *stdin* (or none); close the order pipe.

    Raise OSError (BrokenPipeError) when the spare is gone.
    """
    data = memoryview(json.dumps(
        {"argv": argv, "cwd": cwd, "env": env, "stdin": stdin, "grace": grace, "drain": drain}
    ).encode())  # fmt: skip
    try:
        while data:
            data = data[os.write(spare.command, data) :]
    finally:
        os.close(spare.command)


def _close_all_but(keep: set[int]) -> None:
    """Close every file descriptor but those in *keep*."""
    low = 0
    for fd in sorted(keep):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _MAX_FD)


@functools.cache
def _prctl() -> Callable[..., int]:
    """Return libc's ``prctl``."""
    return ctypes.CDLL(None, use_errno=True).prctl


def supervise(parent: int, grace: float, drain: float, report_fd: int, argv: list[str]) -> int:
    """Start *argv* and supervise it until its whole tree is gone; report on *report_fd*; return the exit code."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
    prctl = _prctl()
    prctl(_PR_SET_PDEATHSIG, _NOW, 0, 0, 0)
    prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    os.set_inheritable(report_fd, False)
    report = os.fdopen(report_fd, "w", buffering=1)
    orphaned = os.getppid() != parent  # the parent died before the death signal was asked for
    reset = {*_WATCHED, signal.SIGPIPE, signal.SIGXFSZ}  # as subprocess does, and what a worker ignores
    try:
        agent = os.posix_spawnp(argv[0], argv, os.environ, setsid=True, setsigmask=(), setsigdef=reset)
    except OSError as error:
        report.write(f"error {error.errno or 0}\n")
        return 127
    report.write(f"started {agent}\n")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)  # the agent's output pipe closes when the agent's tree is gone, not when the supervisor is
    code = _supervise(agent, grace, drain, kill_now=orphaned)
    report.write(f"exit {code}\n")
    report.close()
    return 0


def _supervise(agent: int, grace: float, drain: float, *, kill_now: bool) -> int:
    """Wait for the agent and everything it started; return the agent's exit code (-N: killed by signal N)."""
    code: int | None = None
    stage = "running"  # -> draining (the agent exited) -> stopping (SIGTERM sent) -> killing (SIGKILL)
    deadline = float("inf")
    if kill_now:
        stage = "killing"
    while True:
        code = _reap(agent, code)
        if code is not None and stage == "running":
            stage, deadline = "draining", time.monotonic() + drain
        if stage != "running":
            left = _descendants() if _has_children() else set()
            if not left and code is not None:
                return code
            if stage == "killing":
                _signal_all(agent, left, signal.SIGKILL)
            elif time.monotonic() >= deadline:
                if stage == "draining":
                    stage, deadline = "stopping", time.monotonic() + grace
                    _signal_all(agent, left, signal.SIGTERM)
                else:
                    stage = "killing"
                    _signal_all(agent, left, signal.SIGKILL)
        wait = None if stage == "running" else max(0.0, min(_LOOK, deadline - time.monotonic()))
        received = signal.sigtimedwait(_WATCHED, wait) if wait is not None else signal.sigwaitinfo(_WATCHED)
        if received is None or received.si_signo == signal.SIGCHLD:
            continue
        if received.si_signo == _NOW:
            stage = "killing"
        elif stage in ("running", "draining"):
            stage, deadline = "stopping", time.monotonic() + grace
            _signal_all(agent, _descendants(), signal.SIGTERM)


def _reap(agent: int, code: int | None) -> int | None:
    """Reap every child that ended (orphans of the agent's tree become children here); return the agent's code."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return code
        if pid == 0:
            return code
        if pid == agent:
            code = os.waitstatus_to_exitcode(status)


def _has_children() -> bool:
    """Tell whether any process is still below this one: as a subreaper, every live descendant has a live or
    unreaped ancestor among its children (the usual case after an agent exits takes no look through /proc)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _descendants() -> set[int]:
    """Return the live processes below this one (a subreaper: orphans below it stay below it)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended while we looked
        if fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _signal_all(agent: int, pids: set[int], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(agent, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # it ended meanwhile
            os.kill(pid, sig)
