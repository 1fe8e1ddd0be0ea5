"""Run one agent process: under its supervisor, output streamed to a log file, a staged stop.

Agents are node or python wrappers with children of their own, and some of those leave the agent's process group.
Every agent therefore runs under a small supervisor process (:mod:`kittydoit.supervisor`) that starts it in a
session of its own, adopts everything it starts, stops all of it in stages (SIGTERM, a grace period, SIGKILL) when
asked, and kills all of it at once when the process that started it dies, by any signal, SIGKILL included. Its stdout
and stderr are read as they come and appended to the log file (``tail -f`` works) while being kept, up to a
cap, for parsing. The prompt arrives as a file opened on stdin: fully written, then EOF, never a pipe an
agent could block on.

While an agent runs, its process group id is recorded in a pid file; a later run (or ``kittydoit abort``)
uses :func:`stop_recorded` to stop a group that outlived everything else (its supervisor killed with SIGKILL).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from kittydoit import supervisor

_CAPTURE_LIMIT = 16 * 1024 * 1024  # keep the last 16 MiB of each stream for parsing
_READ_SIZE = 65536
_FINISH_WINDOW = 256 * 1024
_PROC = Path("/proc")  # a final result is looked for in the last part of stdout only
_SUPERVISOR_SLACK = 5.0  # seconds a supervisor may take beyond the grace period before it is killed itself
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
POKE = signal.SIGURG  # what a SignalRelay sends the main thread (a signal nothing else here uses; ignored by default)


@dataclass(frozen=True)
class ProcessResult:
    """What one run of an agent process produced."""

    argv: tuple[str, ...]
    returncode: int | None  # None when kittydoit stopped the process before it exited
    duration: float
    log_path: Path
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)
    timed_out: bool = False
    idle_timed_out: bool = False
    finished_then_hung: bool = False  # output was complete but the process did not exit: stopped, result kept

    def __bool__(self) -> bool:
        if self.finished_then_hung:
            return True
        return self.returncode == 0 and not self.timed_out and not self.idle_timed_out

    def tail(self, lines: int = 12) -> str:
        """Return the last *lines* lines of output (stderr first, then stdout), for messages."""
        text = "\n".join(part.rstrip() for part in (self.stderr, self.stdout) if part.strip())
        return "\n".join(text.splitlines()[-lines:])


class ProcessRunner:
    """Start processes in their own group, stream their output to a log, stop them as a group."""

    def __init__(self, *, grace_seconds: float = 5.0, drain_seconds: float = 2.0, finish_wait: float = 10.0):
        self.grace_seconds = grace_seconds
        self.drain_seconds = drain_seconds
        self.finish_wait = finish_wait

    def prepare(self) -> None:
        """Fork the supervisor of this process's next agent now, unless it has one (:func:`prepare_spare`).

        Every agent but a process's first starts under a spare forked while the agent before it ran. The first
        (at a run's start, one per doit worker) had its supervisor forked on its way to the agent, about 10 ms
        after the prompt was ready; an implement asks for it before making the WP's worktree (or, for a 3.x
        mission, before spec-kitty's claim), so the fork and the child's first steps overlap git's work.
        Interleaved, 30 runs each, zero-time agents: launch -> first agent 198 -> 184 ms at ``-n 1``,
        197 -> 192 ms at ``-n 4``.
        """
        prepare_spare()

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        log_path: Path,
        stdin_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        idle_timeout: float | None = None,
        pid_file: Path | None = None,
        is_finished: Callable[[str], bool] | None = None,
    ) -> ProcessResult:
        """Run *argv* in *cwd* until it exits, times out, or finished output is followed by a hang.

        ``is_finished(stdout)`` tells when the output holds a complete final result; a process still
        alive ``finish_wait`` seconds after that is stopped and its result kept.
        """
        started = time.monotonic()
        deadline = started + timeout if timeout else None
        with contextlib.ExitStack() as stack:
            log = stack.enter_context(log_path.open("ab"))
            proc = _Supervised.start(argv, cwd=cwd, env=env, stdin_path=stdin_path, grace=self.grace_seconds,
                                     drain=self.drain_seconds)  # fmt: skip
            for stream in (proc.report, proc.stdout, proc.stderr):
                stack.enter_context(stream)
            report = proc.report
            agent: list[int] = []  # its pid, once the supervisor has started it
            stack.callback(self._stop, proc, agent)
            agent.append(_started(proc, report, argv[0]))
            _do_queued(_AT_START)
            if pid_file:
                _record(pid_file, agent[0], proc.pid)
                stack.callback(_unlink, pid_file)
            prepare_spare()  # for the next agent, while this one runs
            out, err, said = bytearray(), bytearray(), bytearray()
            now = time.monotonic()
            watch = _Watch(deadline, idle_timeout, self.drain_seconds, self.finish_wait, now,
                           put_off_at=now + _PUT_OFF_AFTER if _PUT_OFF else None)  # fmt: skip
            try:
                ending = self._pump(proc, log, out=out, err=err, said=(report, said), watch=watch,
                                    is_finished=is_finished)  # fmt: skip
            finally:
                proc.stdout.close()
                proc.stderr.close()
            duration = time.monotonic() - started
        _do_queued(_PUT_OFF)  # what an agent that ended sooner left undone
        return ProcessResult(
            argv=tuple(argv),
            returncode=_exit_code(said, proc) if ending is None else None,
            duration=duration,
            log_path=log_path,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            timed_out=ending == "timeout",
            idle_timed_out=ending == "idle",
            finished_then_hung=ending == "hung",
        )

    def _pump(
        self,
        proc: _Supervised,
        log: BinaryIO,
        *,
        out: bytearray,
        err: bytearray,
        said: tuple[BinaryIO, bytearray],
        watch: _Watch,
        is_finished: Callable[[str], bool] | None,
    ) -> str | None:
        """Copy output to the log until the pipes close; return why it stopped early (see _Watch), or None.

        *said* is the supervisor's report pipe and what it said: read beside the output, never logged.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ, out)
            selector.register(proc.stderr, selectors.EVENT_READ, err)
            selector.register(said[0], selectors.EVENT_READ, said[1])
            while selector.get_map():
                now = time.monotonic()
                if watch.put_off_at is not None and now >= watch.put_off_at:
                    watch.put_off_at = None
                    _do_queued(_PUT_OFF)
                    now = time.monotonic()
                ending = watch.ending(now, proc)
                if ending == "drained":
                    break  # a left-behind child holds the pipes open; _stop ends it
                if ending:
                    return ending
                for key, _ in selector.select(watch.wait(time.monotonic())):
                    chunk = os.read(key.fd, _READ_SIZE)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    buffer: bytearray = key.data
                    if buffer is said[1]:
                        buffer += chunk
                        continue
                    watch.last_output = time.monotonic()
                    log.write(chunk)
                    log.flush()
                    buffer += chunk
                    if len(buffer) > _CAPTURE_LIMIT:
                        del buffer[: len(buffer) - _CAPTURE_LIMIT]
                    if buffer is out and is_finished and watch.finished_at is None:
                        watch.finished(is_finished(out[-_FINISH_WINDOW:].decode("utf-8", "replace")))
        if _reported_exit(said[1]) is not None:
            # The agent's whole tree is gone and the supervisor only exits now (1-2 ms for a fork of a big
            # worker): it is reaped later (see _Supervised.let_exit), not waited for on the way to the next agent.
            proc.reported = True
            return None
        remaining = None if watch.deadline is None else max(0.0, watch.deadline - time.monotonic())
        try:
            proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            return "timeout"
        return None

    def _stop(self, proc: _Supervised, agent: Sequence[int]) -> None:
        """Have the supervisor stop the agent's whole tree in stages; a signal meanwhile makes it stop at once."""
        if proc.reported:
            proc.let_exit()
            return

        def at_once() -> None:
            with contextlib.suppress(ProcessLookupError):  # it is done already
                proc.send_signal(signal.SIGUSR1)

        with signals_held(on_signal=at_once):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.grace_seconds + _SUPERVISOR_SLACK)
            except subprocess.TimeoutExpired:  # the supervisor itself is stuck: kill it, and its agent's group
                proc.kill()
                proc.wait()
                for pgid in agent:
                    _signal_group(pgid, signal.SIGKILL)


class _Supervised:
    """An agent's supervisor, forked from this process (:func:`kittydoit.supervisor.fork_spare`): its output
    pipes, its report pipe, and the ``poll``/``wait``/``send_signal``/``kill`` of a ``subprocess.Popen``."""

    def __init__(self, pid: int, stdout: BinaryIO, stderr: BinaryIO, report: BinaryIO) -> None:
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.report = report
        self.returncode: int | None = None
        self.reported = False  # it reported the agent's exit and closed its report pipe: it is ending

    def let_exit(self) -> None:
        """Leave the ending supervisor to exit by itself; the next start reaps it (no zombies pile up)."""
        _EXITING.add(self.pid)

    @classmethod
    def start(
        cls,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str] | None,
        stdin_path: Path | None,
        grace: float,
        drain: float,
    ) -> _Supervised:
        """Start *argv* under this process's spare supervisor (:func:`spare`), forked now when there is none."""
        _reap_exiting()
        request = {
            "cwd": str(cwd), "env": dict(os.environ if env is None else env),
            "stdin": None if stdin_path is None else str(stdin_path), "grace": grace, "drain": drain,
        }  # fmt: skip
        try:
            return cls._ordered(spare, list(argv), request)
        except BrokenPipeError:  # the spare died after spare() looked (someone killed it): a new one
            return cls._ordered(supervisor.fork_spare, list(argv), request)

    @classmethod
    def _ordered(cls, take: Callable[[], supervisor.Spare], argv: list[str], request: dict[str, Any]) -> _Supervised:
        """Have the supervisor *take* returns start *argv* as *request* says."""
        forked: list[_Supervised] = []
        try:  # a signal's Python handler must not run inside fork's hooks, where it would be lost: held till after
            with signals_held():
                ready = take()
                forked.append(cls(ready.pid, *(os.fdopen(fd, "rb", buffering=0) for fd in
                                               (ready.stdout, ready.stderr, ready.report))))  # fmt: skip
                supervisor.order(ready, argv, **request)
        except BaseException:
            if forked:  # the held signal, delivered, or a spare that died: the agent must not outlive this
                forked[0].send_signal(signal.SIGUSR1)
                forked[0].wait()
                for stream in (forked[0].stdout, forked[0].stderr, forked[0].report):
                    stream.close()
            raise
        return forked[0]

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the supervisor to exit; raise ``subprocess.TimeoutExpired`` after *timeout* seconds."""
        if self.poll() is not None or timeout is None:
            if self.returncode is None:
                self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
            return self.returncode
        end = time.monotonic() + timeout
        with contextlib.closing(_PidFd(self.pid)) as exited:
            while (code := self.poll()) is None:
                left = end - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(["kittydoit-supervisor"], timeout)
                exited.wait(left)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # never signal a pid that was reaped (and may be reused)
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _PidFd:
    """Wait for a child to exit without polling (a pidfd, Linux 5.3+); short sleeps where there is none."""

    def __init__(self, pid: int) -> None:
        try:
            self.fd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.fd = None

    def wait(self, seconds: float) -> None:
        if self.fd is None:
            time.sleep(min(seconds, 0.005))
        else:
            select.select([self.fd], [], [], seconds)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


@contextlib.contextmanager
def signals_held(on_signal: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP while a step that must not be cut in half runs, then deliver the first one.

    A git command killed midway leaves locks behind, and an agent's stop cut short leaves it running, so such steps
    finish first; *on_signal* is called at once for each signal held (say, to make a stop hurry). Only the Python
    handlers are swapped (masking the signal in this thread is not enough: the kernel may hand a process-wide signal
    to another thread). Signals that are ignored stay ignored. The first signal held goes to the handler it was
    meant for once the step is done, also when the step failed: what a stop's handler raises then replaces the
    failure (often the stop's own doing: with ``-n 0`` the git a step runs is in the terminal's process group too).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[signal.Signals] = []

    def hold(signum: int, frame: object) -> None:
        received.append(signal.Signals(signum))
        if on_signal is not None:
            on_signal()

    previous = {}
    for sig in HELD_SIGNALS:
        if signal.getsignal(sig) not in (signal.SIG_IGN, None):
            previous[sig] = signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            handler = previous[received[0]]
            if callable(handler):  # with this frame: a doit worker's handler looks for its task loop in it
                handler(received[0], sys._getframe())
            elif handler == signal.SIG_DFL:
                raise KeyboardInterrupt  # the stop wins over what the step raised


class SignalRelay:
    """Wake the main thread when another thread of this process took a signal, so its Python handler runs at once.

    Python runs signal handlers in the main thread only. The kernel may hand a signal sent to the process to any
    of its threads (a queue-feeder thread of doit's, kittydoit's progress or preparing thread), and there the C
    level only notes it: a main thread asleep in a read (doit waiting for a worker's result, a worker waiting for
    its next task) sleeps on, and the handler ran once the read returned, as late as the end of the next agent (a
    Ctrl-C obeyed after 5 s, a worker's SIGTERM lost until it was killed). The relay has the signal written to a
    pipe (``signal.set_wakeup_fd``, from whichever thread takes it) and a thread of its own sends :data:`POKE`
    to the main thread alone: the read there ends (EINTR), and Python runs every handler that is due. Made and
    closed in the main thread.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._poke = signal.signal(POKE, _poked)
        self._wakeup = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._main = threading.get_ident()
        self._thread = threading.Thread(target=self._relay, name="kittydoit-signals", daemon=True)
        self._thread.start()

    def _relay(self) -> None:
        try:
            while data := os.read(self._read, 64):
                if 0 in data:  # written by close(): no signal has number 0
                    return
                if any(number != POKE for number in data):
                    with contextlib.suppress(ProcessLookupError):  # the main thread is ending
                        signal.pthread_kill(self._main, POKE)
        finally:
            os.close(self._read)

    def close(self) -> None:
        """Give the signals back as they were and end the relay's thread."""
        signal.set_wakeup_fd(self._wakeup)
        signal.signal(POKE, self._poke)
        with contextlib.suppress(OSError):  # a pipe full of signal numbers: the thread lives on, harmless
            os.write(self._write, b"\0")
        self._thread.join(timeout=1.0)
        os.close(self._write)

    def forget(self) -> None:
        """In a process forked from this one (where the relay's thread does not exist): close the relay's pipe."""
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):  # closed already
                os.close(fd)


def _poked(signum: int, frame: object) -> None:
    """POKE's handler: nothing to do; the main thread woke, and the handlers that are due run."""


@dataclass
class _Watch:
    """The clocks of one agent run, and when to stop reading its output."""

    deadline: float | None
    idle_timeout: float | None
    drain: float
    finish_wait: float
    last_output: float
    exited_at: float | None = None
    finished_at: float | None = None
    put_off_at: float | None = None  # when to do the work put off until this agent runs (see after_next_start)

    def ending(self, now: float, proc: _Supervised) -> str | None:
        """Return why to stop now: ``timeout``, ``idle``, ``hung`` (finished, did not exit), ``drained``."""
        if self.deadline is not None and now >= self.deadline:
            return "timeout"
        if self.idle_timeout is not None and now - self.last_output >= self.idle_timeout:
            return "idle"
        if self.exited_at is None and proc.poll() is not None:
            self.exited_at = now
        if self.exited_at is not None:
            return "drained" if now - self.exited_at >= self.drain else None
        if self.finished_at is not None and now - self.finished_at >= self.finish_wait:
            return "hung"
        return None

    def finished(self, complete: bool) -> None:
        """Note that the output now holds a complete final result (when *complete*)."""
        if complete:
            self.finished_at = time.monotonic()

    def wait(self, now: float) -> float:
        """Return how long the next read may block."""
        waits = [1.0]
        if self.deadline is not None:
            waits.append(self.deadline - now)
        if self.exited_at is not None:
            waits.append(self.exited_at + self.drain - now)
        if self.put_off_at is not None:
            waits.append(self.put_off_at - now)
        return max(0.0, min(waits))


def stop_group(pgid: int, grace_seconds: float, reap: subprocess.Popen[bytes] | None = None) -> bool:
    """Send SIGTERM to process group *pgid*, then SIGKILL after *grace_seconds*; True if any was running."""
    if not _group_alive(pgid, reap):
        return False
    _signal_group(pgid, signal.SIGTERM)
    end = time.monotonic() + grace_seconds
    while time.monotonic() < end:
        if not _group_alive(pgid, reap):
            return True
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)
    end = time.monotonic() + 5.0
    while _group_alive(pgid, reap) and time.monotonic() < end:
        time.sleep(0.02)
    return True


def stop_recorded(pid_dir: Path, grace_seconds: float = 5.0) -> list[int]:
    """Stop the process groups recorded in *pid_dir* by runs that did not end them; return their ids."""
    stopped = []
    for pid_file in sorted(pid_dir.glob("*.pid")) if pid_dir.is_dir() else []:
        try:
            record = json.loads(pid_file.read_text())
            pgid, started = int(record["pgid"]), record.get("started")
        except (OSError, ValueError, KeyError, TypeError):
            _unlink(pid_file)
            continue
        leader_start = process_start_time(pgid)
        # The leader still running under the same start time, or gone while its group lives on, is ours;
        # Linux does not hand out a pid that is still in use as a process group id.
        if leader_start in (None, started) and stop_group(pgid, grace_seconds):
            stopped.append(pgid)
        _unlink(pid_file)
    return stopped


def process_start_time(pid: int) -> str | None:
    """Return the kernel's start time of *pid* (a token to tell pid reuse apart), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _started(proc: _Supervised, report: BinaryIO, program: str) -> int:
    """Return the agent's pid once the supervisor has started it; raise OSError as Popen would when it could not."""
    line = bytearray()
    while not line.endswith(b"\n"):
        chunk = report.read(1)
        if not chunk:
            proc.wait()
            detail = proc.stderr.read().decode("utf-8", "replace").strip()
            raise RuntimeError(f"kittydoit's agent supervisor failed (exit code {proc.returncode}): {detail}")
        line += chunk
    word, value = line.decode().rstrip("\n").split(" ", 1)
    if word == "failed":
        proc.wait()
        raise RuntimeError(f"kittydoit's agent supervisor failed: {value}")
    if word == "error":
        proc.wait()
        number = int(value)
        raise OSError(number, os.strerror(number), program)
    return int(value)


def _exit_code(said: bytearray, proc: _Supervised) -> int | None:
    """Return the agent's exit code as its supervisor reported it (-N: ended by signal N)."""
    code = _reported_exit(said)
    return proc.returncode if code is None else code


def _reported_exit(said: bytearray) -> int | None:
    """Return the exit code in the supervisor's report, or None when it reported none."""
    for line in said.decode("utf-8", "replace").splitlines():
        if line.startswith("exit "):
            return int(line.split()[1])
    return None


_SPARE: dict[int, supervisor.Spare] = {}  # this process's spare supervisor, by the pid of the process that forked it


def spare() -> supervisor.Spare:
    """Return this process's spare supervisor, taking it (it serves one agent), or fork one now.

    A spare inherited through a fork (a doit worker forked from the orchestrator) is its parent's, not this
    process's: its pipes are closed here and it is left to its parent.
    """
    for owner in [pid for pid in _SPARE if pid != os.getpid()]:
        _close(_SPARE.pop(owner))
    ready = _SPARE.pop(os.getpid(), None)
    if ready is not None and _gone(ready.pid):  # killed while it waited
        _close(ready)
        ready = None
    return ready or supervisor.fork_spare()


def prepare_spare() -> None:
    """Fork a spare supervisor for this process's next agent, unless it has one (see kittydoit.supervisor)."""
    if os.getpid() in _SPARE:
        return
    with contextlib.suppress(OSError), signals_held():  # no spare (no memory, too many processes): forked when needed
        _SPARE[os.getpid()] = supervisor.fork_spare()


def at_next_start(work: Callable[[], None]) -> None:
    """Do *work* right after this process's next agent has started (its supervisor reported its pid).

    For what waits for that start elsewhere (:class:`kittydoit.workers.FirstAgentFirst`): it must be quick. Work
    still waiting when the process ends is not done; an ``OSError`` it raises is ignored.
    """
    _AT_START.append((os.getpid(), work))


_AT_START: list[tuple[int, Callable[[], None]]] = []  # (the process that asked, the work): see at_next_start


def after_next_start(work: Callable[[], None]) -> None:
    """Do *work* while this process's next agent runs, rather than on the way to it.

    For writes nobody waits for (a parse-cache entry, the record naming the agent): they sat between one agent's
    exit and the next one's start. They are done once the agent has run for :data:`_PUT_OFF_AFTER` seconds, not at
    its start: beside an agent's start, and its first git commands, they took 5-20 times as long, and a serial run
    of 200 zero-time WPs was a tenth slower. An agent that ends sooner has them done right after its end, as they
    were before. Work still waiting when the process ends is not done, so nothing may depend on it; an ``OSError``
    it raises is ignored for the same reason.
    """
    _PUT_OFF.append((os.getpid(), work))


def _do_queued(queue: list[tuple[int, Callable[[], None]]]) -> None:
    """Do the work *queue* holds (see at_next_start, after_next_start); a forked copy's is its parent's, dropped."""
    while queue:
        pid, work = queue.pop(0)
        if pid == os.getpid():
            with contextlib.suppress(OSError):
                work()


_PUT_OFF_AFTER = 0.1  # seconds an agent runs before the work put off until then is done (see after_next_start)
_PUT_OFF: list[tuple[int, Callable[[], None]]] = []  # (the process that put it off, the work): see after_next_start


def discard_spare() -> None:
    """End this process's spare supervisor, if any, and reap it (when a run ends)."""
    ready = _SPARE.pop(os.getpid(), None)
    if ready is not None:
        _close(ready)
        with contextlib.suppress(ChildProcessError):  # reaped elsewhere already
            os.waitpid(ready.pid, 0)


def _close(ready: supervisor.Spare) -> None:
    for fd in (ready.command, ready.report, ready.stdout, ready.stderr):
        with contextlib.suppress(OSError):  # closed already
            os.close(fd)


def _gone(pid: int) -> bool:
    """Tell whether the child *pid* has exited (and reap it)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True


_EXITING: set[int] = set()  # supervisors that reported their agent's end and exit by themselves (let_exit)


def _reap_exiting() -> None:
    """Reap the supervisors left to exit by themselves. Each had nothing left but its ``os._exit`` when it was
    left, so by the next start it has exited (on a busy machine, waiting for it takes a moment at most)."""
    while _EXITING:
        with contextlib.suppress(ChildProcessError):  # reaped elsewhere already
            os.waitpid(_EXITING.pop(), 0)


def _record(pid_file: Path, pid: int, supervisor: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pgid": pid, "started": process_start_time(pid), "supervisor": supervisor}))
    os.replace(tmp, pid_file)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # already removed
        path.unlink()


def _group_alive(pgid: int, reap: subprocess.Popen[bytes] | None) -> bool:
    """Tell whether process group *pgid* has a member that is not a zombie."""
    if reap is not None:
        reap.poll()  # a zombie leader still counts as a group member until reaped
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Orphaned members become zombies until init reaps them, which in a container can take a while.
    return _has_live_member(pgid) if _PROC.is_dir() else True


def _has_live_member(pgid: int) -> bool:
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group ended meanwhile
        os.killpg(pgid, sig)
