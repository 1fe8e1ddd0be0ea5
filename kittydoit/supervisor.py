"""The supervisor of one agent: a small process between kittydoit and the agent, so the agent's tree dies with it.

:class:`kittydoit.process.ProcessRunner` starts it with :func:`start_forked`, a fork of the process that runs the
agent, which goes straight to :func:`supervise` and never returns to the caller's code (standard library only,
and no new Python to start: executing ``python supervisor.py`` cost 25-35 ms on a 2-core machine at every agent
start, on the critical path of every hand-off between WPs). The supervisor

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
import os
import signal
import time
import warnings

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_STOP = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_NOW = signal.SIGUSR1
_WATCHED = {signal.SIGCHLD, _NOW, *_STOP}
_LOOK = 0.05  # seconds between looks for descendants while stopping them
_MAX_FD = 1 << 20  # closerange stops at the real limit (close_range(2) on Linux)


def start_forked(
    argv: list[str],
    *,
    cwd: str,
    env: dict[str, str],
    stdio: tuple[int, int, int],
    grace: float,
    drain: float,
) -> tuple[int, int]:
    """Fork a supervisor that runs *argv* in *cwd* with *env* on the file descriptors *stdio*.

    Return the supervisor's pid and the read end of its report pipe (see the module's docstring). The child
    holds none of *stdio* once the agent has started: the agent's output pipes close when the agent's tree is
    gone. In the child only this function's own calls run (system calls through modules already imported), and
    it ends with ``os._exit``: safe after ``fork`` even when the caller has other threads (multiprocessing's
    queue feeder in a doit worker).
    """
    report_r, report_w = os.pipe()
    parent = os.getpid()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork() in a multi-threaded process
        pid = os.fork()
    if pid:
        os.close(report_w)
        return pid, report_r
    code = 70
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)  # as in supervise(), before anything else
        os.setsid()
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        os.closerange(3, report_w)
        os.closerange(report_w + 1, _MAX_FD)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)  # posix_spawnp looks argv[0] up on the agent's PATH
        code = supervise(parent, grace, drain, report_w, argv)
    except BaseException as error:  # the child must never return into the caller's code
        said = f"error {error.errno}" if isinstance(error, OSError) and error.errno else f"failed {error!r}"
        with contextlib.suppress(BaseException):
            os.write(report_w, f"{said}\n".encode())
    finally:
        os._exit(code)


def supervise(parent: int, grace: float, drain: float, report_fd: int, argv: list[str]) -> int:
    """Start *argv* and supervise it until its whole tree is gone; report on *report_fd*; return the exit code."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, _NOW, 0, 0, 0)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
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
