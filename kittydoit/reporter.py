"""What a person (or CI) sees of a run: one line per event, and a summary at the end.

This is a doit reporter. doit calls it in the main process, also with ``-n N`` (workers report through doit's
result queue), so it sees every task start, finish and failure in order. It also opens and closes the run's
:class:`~kittydoit.session.Session`, because ``initialize`` and ``complete_run`` are doit's hooks around a run.
Nothing else in kittydoit prints.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from doit.exceptions import BaseFail, TaskFailed, UnmetDependency

from kittydoit.context import Context
from kittydoit.errors import EXIT_ERROR, EXIT_OK, EXIT_WP_FAILED
from kittydoit.session import Session
from kittydoit.state import BLOCKED, DONE, FAILED, RUNNING, SKIPPED


@dataclass
class Tally:
    """Per-WP outcome of a run, counted once per WP."""

    total: int = 0
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already done before this run
    failed: dict[str, str] = field(default_factory=dict)  # WP -> reason
    blocked: dict[str, str] = field(default_factory=dict)  # WP -> what it waits for
    self_reviewed: list[str] = field(default_factory=list)  # reviewed by their implementer (single-agent mode)


class Reporter:
    """Plain-line doit reporter for kittydoit runs."""

    desc = "kittydoit: one line per event, summary at the end"

    def __init__(self, ctx: Context, outstream: IO[str] | None = None) -> None:
        self.ctx = ctx
        self.out = outstream or sys.stdout
        self.session = Session(ctx)
        self.tally = Tally()
        self.started = time.monotonic()
        self._phase_done: dict[str, set[str]] = {}
        self._errors: list[str] = []
        self.ran = False

    # ---- doit's reporter protocol ---------------------------------------------------------------------------

    def initialize(self, tasks: Mapping[str, Any], selected_tasks: list[str]) -> None:
        wps = sorted({name.split(":", 1)[0] for name in tasks if ":" in name})
        feature = self.ctx.feature.wps
        self.session.start({wp: feature[wp].title for wp in wps if wp in feature})
        self.ran = True
        self.started = time.monotonic()
        self.tally.total = len(wps)
        self._line(f"{self.ctx.feature.slug}: {len(wps)} work packages")

    def get_status(self, task: Any) -> None:
        pass

    def execute_task(self, task: Any) -> None:
        wp, phase = _split(task.name)
        if wp and task.actions:
            self._line(f"{wp} {phase} started")
            self.session.wp(wp, RUNNING)

    def add_success(self, task: Any) -> None:
        wp, phase = _split(task.name)
        if not wp or not task.actions:
            return
        self._line(f"{wp} {phase} done")
        self._phase_done.setdefault(wp, set()).add(phase)
        if phase == "review":
            self.tally.done.append(wp)
            values = getattr(task, "values", None) or {}
            if values.get("single_agent"):
                self.tally.self_reviewed.append(wp)
                self._line(f"{wp} was reviewed by its own implementer, {values.get('agent')} (single-agent mode)")
        self.session.wp(wp, DONE if phase == "review" else None)

    def add_failure(self, task: Any, fail: BaseFail) -> None:
        wp, phase = _split(task.name)
        if not wp:
            return
        if isinstance(fail, UnmetDependency):
            if wp not in self.tally.failed and wp not in self.tally.blocked:
                self.tally.blocked[wp] = fail.message
                self._line(f"{wp} blocked: waits for {_waits_for(fail.message)}")
                self.session.wp(wp, BLOCKED, f"waits for {_waits_for(fail.message)}")
            return
        if not isinstance(fail, TaskFailed):
            self._errors.append(f"{task.name}: {fail.get_msg()}")
        reason = fail.message if isinstance(fail, TaskFailed) else fail.get_msg()
        if wp not in self.tally.failed:
            self.tally.failed[wp] = reason
        self._line(f"{wp} {phase} FAILED: {reason}")
        self.session.wp(wp, FAILED, reason)

    def skip_uptodate(self, task: Any) -> None:
        wp, phase = _split(task.name)
        if wp and phase == "review":
            self.tally.skipped.append(wp)
            self.session.wp(wp, SKIPPED, now=False)

    def skip_ignore(self, task: Any) -> None:
        wp, phase = _split(task.name)
        if wp and phase == "review":
            self._line(f"{wp} ignored (doit ignore)")

    def teardown_task(self, task: Any) -> None:
        pass

    def cleanup_error(self, exception: BaseFail) -> None:
        self._errors.append(exception.get_msg())

    def runtime_error(self, msg: str) -> None:
        self._errors.append(msg)

    def complete_run(self) -> None:
        try:
            for message in self._errors:  # a runtime error or a task error (a bug): print it in full
                self._line(f"ERROR: {message}")
            self._summary()
        finally:
            interrupted = sys.exc_info()[0] is KeyboardInterrupt
            status = {EXIT_OK: "completed", EXIT_WP_FAILED: "failed"}.get(self.exit_code(), "error")
            self.session.close("aborted" if interrupted else status)

    def exit_code(self) -> int:
        """Return the run's exit code (see kittydoit.errors): 1 when WPs failed or are blocked, 2 on errors.

        doit itself exits 2 when a task is blocked by a failed dependency; kittydoit counts that as a failed WP.
        """
        if self._errors:
            return EXIT_ERROR
        if self.tally.failed or self.tally.blocked:
            return EXIT_WP_FAILED
        return EXIT_OK

    # ---- output -------------------------------------------------------------------------------------------

    def _summary(self) -> None:
        t = self.tally
        if not t.total:
            return
        elapsed = time.monotonic() - self.started
        parts = [f"{len(t.done) + len(t.skipped)}/{t.total} done"]
        if t.skipped:
            parts.append(f"{len(t.skipped)} already done")
        if t.failed:
            parts.append(f"{len(t.failed)} failed")
        if t.blocked:
            parts.append(f"{len(t.blocked)} blocked")
        self._line(f"summary: {', '.join(parts)} in {elapsed:.1f} s")
        if t.self_reviewed:
            self._line(f"  single-agent mode: {', '.join(t.self_reviewed)} reviewed by their own implementer")
        for wp, reason in t.failed.items():
            self._line(f"  failed  {wp}: {reason.splitlines()[0] if reason else ''}")
        for wp, reason in t.blocked.items():
            self._line(f"  blocked {wp}: waits for {_waits_for(reason)}")

    def _line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.out.write(f"{stamp} {text}\n")
        self.out.flush()


def _split(name: str) -> tuple[str | None, str | None]:
    if ":" not in name:
        return None, None
    wp, phase = name.split(":", 1)
    return wp, phase


def _waits_for(message: str) -> str:
    """Turn doit's unmet-dependency message (the failed task names) into the WPs waited for."""
    names = {part.split(":", 1)[0] for part in message.split() if ":" in part}
    return ", ".join(sorted(names)) or message
