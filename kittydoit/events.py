"""What happens inside a WP's task, read from its state record: failed attempts, retries, fallbacks, verdicts.

doit's worker processes tell the main process only when a task starts and ends. Everything in between is in
the WP's record (``.kittify/kittydoit/<feature>/wps/WPxx.json``, see :class:`kittydoit.state.WPRecord`), which
the worker rewrites at each step:

- ``attempts`` grows by one entry when an attempt ends (phase, agent, class, ``retry`` = tries of that agent
  before it);
- ``agent`` and ``attempt`` (tries in the phase so far) name the try that is running now;
- ``reviews`` grows by one entry per review verdict.

:class:`Watch` compares each look at a record with what it saw before and returns the news as :class:`Event`
values. Each event is returned exactly once, whether records are looked at every second or only when the task
ends: a retry seen while it runs is reported then, one that came and went between two looks is reported from
its entry in ``attempts``.

What the views show at one moment (:class:`Snapshot`, :class:`Row`) is here too, without rich, so that plain
output never loads it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The `phase` labels of a WP record and the doit task (and log) each belongs to.
TASK_OF_PHASE = {
    "preparing worktree": "implement",
    "implementing": "implement",
    "re-implementing": "implement",
    "reviewing": "review",
}
_SUCCESS = frozenset({"success", "hung_after_finish"})
_NOT_RUN = "not_installed"  # an agent skipped without starting it: not a try
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"[\t\n\x0b\x0c\r]")


@dataclass(frozen=True)
class Event:
    """One thing that happened to a WP, as a line of text."""

    wp: str
    kind: str  # started, attempt_failed, retried, fell_back, verdict, done, failed, blocked, skipped, note (wp "")
    text: str


def clean(text: str) -> str:
    """Return *text* fit for one line of a terminal or a CI log: no escape sequences, no control characters.

    ANSI escape sequences are dropped, line breaks and tabs become spaces, other control characters go.
    """
    return _CONTROL.sub("", _SPACE.sub(" ", _ANSI.sub("", text)))


def read_record(path: Path, run_id: str | None) -> dict[str, Any] | None:
    """Return the WP record at *path* when it belongs to run *run_id*; None otherwise.

    Only reads: a record caught half-written or unreadable is skipped this time (its writer replaces it
    atomically, so the next look sees a whole one).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("run") != run_id:
        return None
    return data


@dataclass
class _Seen:
    attempts: int = 0  # entries of `attempts` already reported
    verdicts: int = 0  # entries of `reviews` already reported
    review_successes: int = 0  # successful review attempts seen (each is followed by one verdict)
    announced: set[int] = field(default_factory=set)  # entry indexes whose retry/fallback was reported early


class Watch:
    """Turn successive looks at WP records into events, each reported once."""

    def __init__(self, review_cycles: int) -> None:
        self.review_cycles = review_cycles
        self._seen: dict[str, _Seen] = {}

    def observe(self, wp_id: str, record: Mapping[str, Any]) -> list[Event]:
        """Return what happened to *wp_id* since the last look, in order."""
        seen = self._seen.setdefault(wp_id, _Seen())
        attempts: Sequence[Mapping[str, Any]] = record.get("attempts") or []
        reviews: Sequence[Mapping[str, Any]] = record.get("reviews") or []
        events = self._verdicts(wp_id, seen, reviews)  # of reviews seen before: they precede what follows
        for index in range(seen.attempts, len(attempts)):
            entry = attempts[index]
            if index not in seen.announced:
                start = _start(wp_id, attempts, index)
                if start is not None:
                    events.append(start)
            if entry.get("class") in _SUCCESS:
                if entry.get("phase") == "review":
                    seen.review_successes += 1
                    events += self._verdicts(wp_id, seen, reviews)
            else:
                events.append(_failed_attempt(wp_id, entry))
        seen.attempts = len(attempts)
        events += self._verdicts(wp_id, seen, reviews)
        running = _running_try(wp_id, record, attempts)
        if running is not None and len(attempts) not in seen.announced:
            seen.announced.add(len(attempts))
            events.append(running)
        return events

    def _verdicts(self, wp_id: str, seen: _Seen, reviews: Sequence[Mapping[str, Any]]) -> list[Event]:
        events = []
        while seen.verdicts < min(len(reviews), seen.review_successes):
            review = reviews[seen.verdicts]
            seen.verdicts += 1
            cycle = int(review.get("cycle") or seen.verdicts)
            approved = review.get("verdict") == "approved"
            text = (
                f"{wp_id} review verdict by {review.get('reviewer', '?')}: "
                f"{'approved' if approved else 'changes requested'} (review {cycle} of {self.review_cycles})"
            )
            if not approved and cycle < self.review_cycles:
                text += "; re-implementing"
            events.append(Event(wp_id, "verdict", text))
        return events


def _failed_attempt(wp_id: str, entry: Mapping[str, Any]) -> Event:
    detail = f" ({entry['detail']})" if entry.get("detail") else ""
    text = f"{wp_id} {entry.get('phase')}: {entry.get('agent')} {entry.get('class', 'failed')}{detail}"
    return Event(wp_id, "attempt_failed", text)


def _start(wp_id: str, attempts: Sequence[Mapping[str, Any]], index: int) -> Event | None:
    """Return the retry or fallback that attempt *index* was, or None when it was a phase's first try."""
    if index == 0:
        return None
    entry, before = attempts[index], attempts[index - 1]
    if entry.get("phase") != before.get("phase") or before.get("class") in _SUCCESS:
        return None
    if entry.get("class") == _NOT_RUN:
        return None  # skipped, not started: its failure line says so
    return _try_event(wp_id, str(entry.get("phase")), str(entry.get("agent")), before, int(entry.get("retry") or 0))


def _running_try(wp_id: str, record: Mapping[str, Any], attempts: Sequence[Mapping[str, Any]]) -> Event | None:
    """Return the retry or fallback running now, when the record shows one."""
    phase = TASK_OF_PHASE.get(str(record.get("phase")))
    if record.get("status") != "running" or phase is None or not attempts:
        return None
    last = attempts[-1]
    if last.get("phase") != phase or last.get("class") in _SUCCESS:
        return None  # the phase's first try: the task's start says so
    tried = 0  # tries recorded in this phase so far: the failed entries since its last success
    for entry in reversed(attempts):
        if entry.get("phase") != phase or entry.get("class") in _SUCCESS:
            break
        tried += entry.get("class") != _NOT_RUN
    if int(record.get("attempt") or 0) <= tried:
        return None  # between tries (backing off, or choosing the next agent)
    agent = str(record.get("agent"))
    retry = sum(1 for entry in attempts[len(attempts) - tried :] if entry.get("agent") == agent)
    return _try_event(wp_id, phase, agent, last, retry)


def _try_event(wp_id: str, phase: str, agent: str, before: Mapping[str, Any], retry: int) -> Event:
    if retry and agent == before.get("agent"):
        return Event(wp_id, "retried", f"{wp_id} {phase} retried with {agent} (retry {retry})")
    return Event(
        wp_id, "fell_back", f"{wp_id} {phase} fell back to {agent} (after {before.get('agent')}: {before.get('class')})"
    )


# ---- what the views show --------------------------------------------------------------------------------

_TAIL_BYTES = 4096  # enough for the last line of any sane log


@dataclass(frozen=True)
class Row:
    """One active WP in the live view."""

    wp: str
    title: str
    phase: str
    agent: str
    attempt: int
    seconds: float
    last_line: str


@dataclass(frozen=True)
class Snapshot:
    """What the live view shows at one moment."""

    feature: str
    total: int
    done: int
    skipped: int
    failed: int
    blocked: int
    waiting: int
    seconds: float
    rows: tuple[Row, ...]


def last_line(path: Path) -> str:
    """Return the last non-empty line of the log at *path*, without control characters ('' when none).

    Reads only the end of the file. A kittydoit note (``[kittydoit <time>] ...``) is shown without its prefix.
    """
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL_BYTES))
            data = handle.read()
    except OSError:
        return ""
    for raw in reversed(data.decode("utf-8", errors="replace").split("\n")):
        line = clean(raw.rstrip("\r").rsplit("\r", 1)[-1])  # what a terminal would show after carriage returns
        if line.strip():
            if line.startswith("[kittydoit ") and "] " in line:
                line = line.split("] ", 1)[1]
            return line.strip()
    return ""
