"""What a person (or CI) sees of a run: live progress or plain lines while it runs, a summary and a report after.

This is a doit reporter. doit calls it in the main process, also with ``-n N`` (workers report through doit's
result queue), so it sees every task start, finish and failure in order. What happens inside a task (failed
attempts, retries, fallbacks, review verdicts) is read from the WP records the workers write
(:mod:`kittydoit.events`), at each doit event and once a second.

Two views:

- **live** (a terminal): a header (done/total, failed, blocked, elapsed) and a row per active WP (phase, agent,
  try, time in the phase, the last line of its log), redrawn in place, with events printed above it
  (:mod:`kittydoit.live`);
- **plain** (stdout is not a terminal, ``CI`` is set, ``TERM=dumb``): one line per event, ``<UTC ISO time>
  <text>``, with no control characters.

``KITTYDOIT_PROGRESS=live|plain`` chooses one regardless. ``CI`` counts as set unless empty, ``0``, ``false``,
``no`` or ``off``: CI systems set ``CI=true``, and ``CI=false`` is how people say "not CI".

The once-a-second look runs in a thread started at the first task start: doit forks its worker processes
before that (a thread alive at fork time is a hazard), and the thread is stopped in ``complete_run``, which doit
calls at the end of every run, also after Ctrl-C.

The reporter also opens and closes the run's :class:`~kittydoit.session.Session`, because ``initialize`` and
``complete_run`` are doit's hooks around a run. Nothing else in kittydoit prints.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from doit.exceptions import BaseFail, TaskFailed, UnmetDependency

from kittydoit import summary as summaries
from kittydoit import workers
from kittydoit.ahead import Preparer
from kittydoit.context import Context
from kittydoit.errors import EXIT_BAD_INPUT, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_WP_FAILED, UserError
from kittydoit.events import TASK_OF_PHASE, Event, Row, Snapshot, Watch, clean, last_line, read_record
from kittydoit.session import Session
from kittydoit.state import BLOCKED, DONE, FAILED, RUNNING, SKIPPED, iso, parse_iso, read_json
from kittydoit.summary import Outcomes, Summary

log = logging.getLogger(__name__)

PROGRESS_ENV = "KITTYDOIT_PROGRESS"
_TICK = 1.0  # seconds between looks at the WP records
_NOT_CI = frozenset({"", "0", "false", "no", "off"})


def choose_view(stream: IO[str], environ: Mapping[str, str]) -> str:
    """Return ``live`` or ``plain`` for output to *stream* (see the module docstring)."""
    wanted = environ.get(PROGRESS_ENV, "").strip().lower()
    if wanted in ("live", "plain"):
        return wanted
    if environ.get("CI", "").strip().lower() not in _NOT_CI or environ.get("TERM") == "dumb":
        return "plain"
    isatty = getattr(stream, "isatty", None)
    return "live" if isatty is not None and isatty() else "plain"


class View(Protocol):
    """How the reporter shows a run."""

    @property
    def fds(self) -> Sequence[int]: ...

    def start(self, snapshot: Snapshot) -> None: ...
    def event(self, event: Event, stamp: str) -> None: ...
    def refresh(self, snapshot: Snapshot) -> None: ...
    def finish(self, summary: Summary | None, report_path: str | None, errors: Sequence[str]) -> None: ...
    def close(self) -> None: ...


class PlainView:
    """One timestamped line per event, and the summary as plain lines."""

    fds: Sequence[int] = ()  # nothing to wake the periodic look

    def __init__(self, out: IO[str], stamp: Callable[[], str]) -> None:
        self.out = out
        self.stamp = stamp

    def start(self, snapshot: Snapshot) -> None:
        self.line(f"{snapshot.feature}: {snapshot.total} work package{'' if snapshot.total == 1 else 's'}")

    def event(self, event: Event, stamp: str) -> None:
        self.line(event.text, stamp)

    def refresh(self, snapshot: Snapshot) -> None:
        pass

    def finish(self, summary: Summary | None, report_path: str | None, errors: Sequence[str]) -> None:
        for message in errors:  # a runtime error or a task error (a bug): print it in full
            self.line(f"ERROR: {message}")
        if summary is not None:
            lines = summary.lines(report_path)
            self.line(lines[0])
            for text in lines[1:]:
                self._write(clean(text))

    def close(self) -> None:
        pass

    def line(self, text: str, stamp: str | None = None) -> None:
        self._write(f"{stamp or self.stamp()} {' '.join(clean(text).split())}")

    def _write(self, text: str) -> None:
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except OSError:  # the reader went away (`kittydoit run | head`, a closed terminal): the run goes on
            devnull = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115  # lives as long as the process
            with contextlib.suppress(OSError, ValueError, AttributeError):  # a stream without a descriptor
                os.dup2(devnull.fileno(), self.out.fileno())  # so the interpreter's last flush does not fail again
            self.out = devnull


class Reporter:
    """doit reporter for kittydoit runs: live view or plain lines, summary and JSON report."""

    desc = "kittydoit: live progress in a terminal, one line per event otherwise; summary and JSON report"

    def __init__(
        self,
        ctx: Context,
        outstream: IO[str] | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        workers: int = 1,
    ):
        self.ctx = ctx
        self.out = outstream or sys.stdout
        self.environ = os.environ if environ is None else environ
        self.session = Session(ctx)
        self.outcomes = Outcomes()
        self.titles: dict[str, str] = {}
        self.started = time.monotonic()
        self.ran = False
        self.summary: Summary | None = None
        self.report_path: Path | None = None
        self._errors: list[str] = []
        self._lock = threading.RLock()
        self._watch = Watch(ctx.config.review_cycles)
        self._active: dict[str, tuple[str, float]] = {}  # WP -> (doit phase, monotonic start)
        self._records: dict[str, dict[str, Any]] = {}
        self._view: View = PlainView(self.out, self._stamp)
        self._ticker: _Ticker | None = None
        self._run_id: str | None = None
        self._workers = workers
        self._ahead = Preparer(ctx, workers)  # worktrees made while the last dependency is in review
        self._selected: list[str] | None = None  # the tasks this run was asked for, until its first task starts

    # ---- doit's reporter protocol ---------------------------------------------------------------------------

    def initialize(self, tasks: Mapping[str, Any], selected_tasks: list[str]) -> None:
        wps = sorted({name.split(":", 1)[0] for name in tasks if ":" in name})
        feature = self.ctx.feature.wps
        self.titles = {wp: feature[wp].title for wp in wps if wp in feature}
        try:
            self.session.start(self.titles)
        except UserError as refusal:  # another run holds the lock; spec-kitty missing; ...
            # A refusal is the user's to resolve, not an error while running (doit would exit 2 for any
            # exception here): one line on stderr and the bad-input exit code, for kittydoit and plain doit alike.
            sys.stderr.write(f"ERROR: {refusal}\n")
            raise SystemExit(EXIT_BAD_INPUT) from None
        self.ran = True
        if self.ctx.feature.format == "0.x":  # a 3.x claim takes a second: holding back for it would cost more
            workers.hold_back(self._workers)  # before doit forks them: see kittydoit.workers.FirstAgentFirst
        if self._workers > 1 and any(feature[wp].lane not in self.ctx.feature.finished for wp in self.titles):
            self.ctx.git.ask_once()  # before doit forks its workers, which inherit the answers
        self._selected = list(selected_tasks)
        self._run_id = self.session.run_id
        self.started = time.monotonic()
        if choose_view(self.out, self.environ) == "live":
            from kittydoit.live import LiveView  # rich is loaded only for a terminal  # noqa: PLC0415

            forced = self.environ.get(PROGRESS_ENV, "").strip().lower() == "live"
            self._view = LiveView(self.out, force_terminal=forced)
        self._view.start(self._snapshot())
        if self.ctx.settings is not None and self.ctx.settings.note:  # no agents.yaml: which agents, and why
            self._view.event(Event("", "note", self.ctx.settings.note), self._stamp())
        if self.session.speckitty_note:  # a 3.x mission: which spec-kitty moves its lanes, and how
            self._view.event(Event("", "note", f"lanes move through {self.session.speckitty_note}"), self._stamp())

    def get_status(self, task: Any) -> None:
        pass

    def execute_task(self, task: Any) -> None:
        self._stop_if_asked()
        wp, phase = _split(task.name)
        if not wp or not phase or not task.actions:
            return
        with self._lock:
            if self._selected is not None:  # doit's workers exist now: see kittydoit.ahead on forks
                self._ahead.starting(self._selected, wp)
                self._selected = None
            else:
                self._ahead.started(wp, phase)
            self._start_ticker()
            self.outcomes.started.add(wp)
            self.outcomes.implemented.discard(wp)
            self._active[wp] = (phase, time.monotonic())
            self._observe(wp)
            self._event(wp, "started", f"{wp} {phase} started")
            self.session.wp(wp, RUNNING)
            self._view.refresh(self._snapshot())

    def add_success(self, task: Any) -> None:
        self._stop_if_asked()
        wp, phase = _split(task.name)
        if not wp or not task.actions:
            return
        with self._lock:
            record = self._observe(wp)
            self._active.pop(wp, None)
            agent = record.get("reviewer" if phase == "review" else "implementer")
            self._event(wp, "done", f"{wp} {phase} done" + (f" ({agent})" if agent else ""))
            if phase == "implement":
                self.outcomes.implemented.add(wp)
                self._ahead.implemented(wp)
            if phase == "review":
                self.outcomes.done.append(wp)
                values = getattr(task, "values", None) or {}
                if values.get("single_agent"):
                    text = f"{wp} was reviewed by its own implementer, {values.get('agent')} (single-agent mode)"
                    self._event(wp, "single_agent", text)
            # written once doit has handed out the next task (execute_task, or the ticker): not on the hand-off
            self.session.wp(wp, DONE if phase == "review" else None, write=False)
            self._view.refresh(self._snapshot())

    def add_failure(self, task: Any, fail: BaseFail) -> None:
        wp, phase = _split(task.name)
        if not wp:
            return
        with self._lock:
            if isinstance(fail, UnmetDependency):
                if wp not in self.outcomes.failed and wp not in self.outcomes.blocked:
                    waits = _waits_for(fail.message)
                    self.outcomes.blocked[wp] = waits
                    self._event(wp, "blocked", f"{wp} blocked: waits for {waits}")
                    self.session.wp(wp, BLOCKED, f"waits for {waits}")
                return
            if not isinstance(fail, TaskFailed):
                self._errors.append(f"{task.name}: {fail.get_msg()}")
            reason = fail.message if isinstance(fail, TaskFailed) else fail.get_msg()
            self._observe(wp)
            self._active.pop(wp, None)
            if wp not in self.outcomes.failed:
                self.outcomes.failed[wp] = reason
                self.outcomes.failed_phase[wp] = phase or "implement"
            self._event(wp, "failed", f"{wp} {phase} FAILED: {reason}")
            self.session.wp(wp, FAILED, reason)
            self._view.refresh(self._snapshot())

    def skip_uptodate(self, task: Any) -> None:
        wp, phase = _split(task.name)
        if wp and phase == "review":
            with self._lock:
                self.outcomes.skipped.append(wp)
                self._event(wp, "skipped", f"{wp} up to date (already done)")
                self.session.wp(wp, SKIPPED)

    def skip_ignore(self, task: Any) -> None:
        wp, phase = _split(task.name)
        if wp and phase == "review":
            with self._lock:
                self._event(wp, "skipped", f"{wp} ignored (doit ignore)")

    def teardown_task(self, task: Any) -> None:
        pass

    def cleanup_error(self, exception: BaseFail) -> None:
        self._errors.append(exception.get_msg())

    def runtime_error(self, msg: str) -> None:
        self._errors.append(msg)

    def complete_run(self) -> None:
        self.session.stopping = True
        interrupted = sys.exc_info()[0] is KeyboardInterrupt or self.session.stop_reason is not None
        status = self._status(interrupted)
        try:
            self._stop_ticker()
            self._ahead.close(timeout=0 if interrupted else 30.0)
            if not self.ran:  # stopped before it started: say why
                self._view.finish(None, None, self._errors)
                return
            with self._lock:
                for wp in sorted(self.outcomes.started):
                    self._observe(wp)
                self.summary = self._summarize(status, interrupted)
                shown = None
                try:
                    self.report_path = summaries.write_report(self.ctx.paths.root, self.summary)
                    shown = self.ctx.paths.rel(self.report_path)
                except OSError as error:  # the run's outcome matters more than its report
                    log.warning("could not write the run report: %s", error)
                with _terminal_gone_ok():
                    self._view.finish(self.summary, shown, self._errors)
        finally:
            with _terminal_gone_ok():
                self._view.close()
            try:
                self.session.reap_workers()  # a worker stuck in doit's job queue must not hold the exit
            finally:
                workers.release()
                self.session.close(status)

    def exit_code(self) -> int:
        """Return the run's exit code (see kittydoit.errors): 1 when WPs failed or are blocked, 2 on errors.

        doit itself exits 2 when a task is blocked by a failed dependency; kittydoit counts that as a failed WP.
        """
        if self._errors:
            return EXIT_ERROR
        if self.outcomes.failed or self.outcomes.blocked:
            return EXIT_WP_FAILED
        return EXIT_OK

    # ---- what is shown --------------------------------------------------------------------------------------

    def _status(self, interrupted: bool) -> str:
        if interrupted:
            return "aborted"
        return {EXIT_OK: "completed", EXIT_WP_FAILED: "failed"}.get(self.exit_code(), "error")

    def _event(self, wp: str, kind: str, text: str) -> None:
        self._view.event(Event(wp, kind, text), self._stamp())

    def _observe(self, wp: str) -> dict[str, Any]:
        """Read *wp*'s record and show what happened since the last look; return the record."""
        record = read_record(self.ctx.paths.wp_record(wp), self._run_id)
        if record is None:
            return self._records.get(wp, {})
        self._records[wp] = record
        for event in self._watch.observe(wp, record):
            self._view.event(event, self._stamp())
        return record

    def _stop_if_asked(self) -> None:
        """Stop the run when a stop was asked for and its KeyboardInterrupt got lost (see kittydoit.session)."""
        if self.session.stop_lost():
            raise KeyboardInterrupt

    def _tick(self) -> None:
        if self.session.stop_lost(after=_TICK):
            self.session.ask_again()
        with self._lock:
            for wp in list(self._active):
                self._observe(wp)
            self.session.flush_due()
            self._view.refresh(self._snapshot())

    def _snapshot(self) -> Snapshot:
        now = self.ctx.clock()
        rows = tuple(self._row(wp, phase, since, now) for wp, (phase, since) in self._active.items())
        finished = len(self.outcomes.done) + len(self.outcomes.skipped)
        settled = finished + len(self.outcomes.failed) + len(self.outcomes.blocked)
        return Snapshot(
            feature=self.ctx.feature.slug,
            total=len(self.titles),
            done=finished,
            skipped=len(self.outcomes.skipped),
            failed=len(self.outcomes.failed),
            blocked=len(self.outcomes.blocked),
            waiting=max(0, len(self.titles) - settled - len(rows)),
            seconds=time.monotonic() - self.started,
            rows=rows,
        )

    def _row(self, wp: str, phase: str, since: float, now: datetime) -> Row:
        record = self._records.get(wp, {})
        label = record.get("phase") if record.get("status") == RUNNING else None
        if label is None or TASK_OF_PHASE.get(label) != phase:
            label, attempt, seconds = f"starting {phase}", 0, time.monotonic() - since
        else:
            attempt = int(record.get("attempt") or 0) if label != "preparing worktree" else 0
            seconds = _since(record.get("phase_started"), now) or time.monotonic() - since
            cycles = int(record.get("review_cycles") or 0)
            if label == "reviewing" and cycles > 1:
                label = f"reviewing ({cycles}/{self.ctx.config.review_cycles})"
        return Row(
            wp=wp,
            title=self.titles.get(wp, ""),
            phase=label,
            agent=str(record.get("agent") or "") if attempt else "",
            attempt=attempt,
            seconds=seconds,
            # a WP waiting out a backoff, a cooldown or a busy agent says so instead of showing its log
            last_line=self._last_line(wp, phase, record),
        )

    def _last_line(self, wp: str, phase: str, record: dict[str, Any]) -> str:
        """Return what a row shows last: what an idle WP waits for, else the last line of its log."""
        if record.get("waiting"):
            return f"waiting for {record['waiting']}"
        return last_line(self.ctx.paths.log(wp, phase))

    def _summarize(self, status: str, interrupted: bool) -> Summary:
        run = read_json(self.ctx.paths.run_file) or {}
        run["ended"] = iso(self.ctx.clock())
        if interrupted:
            run["reason"] = self.session.stop_reason or "interrupted"
        paths = self.ctx.paths
        try:  # one listing rather than two path checks per WP (a rerun of 500 WPs that are all done)
            present = set(os.listdir(paths.logs))
        except OSError:
            present = set()
        folder = paths.rel(paths.logs)
        phases = ("implement", "review")
        logs = {
            wp: {p: f"{folder}/{wp}-{p}.log" for p in phases if f"{wp}-{p}.log" in present} for wp in self.titles
        }
        return summaries.build(
            feature=self.ctx.feature.slug,
            titles=self.titles,
            outcomes=self.outcomes,
            records=self._records,
            run=run,
            seconds=time.monotonic() - self.started,
            status=status,
            exit_code=EXIT_INTERRUPTED if interrupted else self.exit_code(),
            logs=logs,
            landing=self._landing(),
        )

    def _landing(self) -> str | None:
        """Say how a 3.x mission lands once its WPs are approved (kittydoit stops at approved)."""
        feature = self.ctx.feature
        if feature.format != "3.x" or not self.outcomes.done:
            return None
        return (f"approved WPs land with `spec-kitty merge --mission {feature.slug}` "
                "(it merges the lane branches and moves them to done)")  # fmt: skip

    def _stamp(self) -> str:
        return iso(self.ctx.clock())

    # ---- the once-a-second look -----------------------------------------------------------------------------

    def _start_ticker(self) -> None:
        """Start the periodic look, once doit's workers exist (see the module docstring)."""
        if self._ticker is None:
            self._ticker = _Ticker(self._tick, _TICK, self._view.fds)
            self._ticker.start()

    def _stop_ticker(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.stop()


class _Ticker(threading.Thread):
    """Call *tick* every *interval* seconds, and at once when one of *fds* has input, until stopped."""

    def __init__(self, tick: Callable[[], None], interval: float, fds: Sequence[int]) -> None:
        super().__init__(name="kittydoit-progress", daemon=True)
        self._tick = tick
        self._interval = interval
        self._fds = list(fds)
        self._wake_r, self._wake_w = os.pipe()
        self._failed = False

    def run(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self._wake_r, *self._fds], [], [], self._interval)
                if self._wake_r in ready:
                    return
                try:
                    self._tick()
                except Exception:  # a display glitch must never stop or fail a run
                    if not self._failed:
                        log.warning("progress display failed; the run goes on", exc_info=True)
                    self._failed = True
        finally:
            os.close(self._wake_r)

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # the thread already ended
            os.write(self._wake_w, b"x")
        self.join(timeout=10)
        os.close(self._wake_w)


@contextlib.contextmanager
def _terminal_gone_ok() -> Iterator[None]:
    """Carry on when the terminal is gone (a hang-up): the summary is in the report file and the run state."""
    try:
        yield
    except OSError as error:
        log.debug("the terminal is gone: %s", error)
        with contextlib.suppress(OSError):  # so the interpreter's last flush does not fail again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)


def _split(name: str) -> tuple[str | None, str | None]:
    if ":" not in name:
        return None, None
    wp, phase = name.split(":", 1)
    return wp, phase


def _waits_for(message: str) -> str:
    """Turn doit's unmet-dependency message (the failed task names) into the WPs waited for."""
    names = {part.split(":", 1)[0] for part in message.split() if ":" in part}
    return ", ".join(sorted(names)) or message


def _since(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    try:
        then = parse_iso(stamp).replace(tzinfo=now.tzinfo)
    except ValueError:
        return None
    return max(0.0, (now - then).total_seconds())
