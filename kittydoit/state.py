"""The run state: what a run is doing and did, for ``kittydoit status``, the live view, the summary and CI.

Three kinds of files, each with one writer, so parallel doit workers never contend for one big file:

- ``.kittify/kittydoit/<feature>/wps/WPxx.json`` -- one WP's live record (status, phase, agent, every attempt
  with its class and evidence, retries, fallbacks, review cycles, timings), written by the worker running it.
- ``.kittify/kittydoit/<feature>/agent-health.json`` -- per agent: consecutive failures, last success, cooling
  down until; read by every worker choosing an agent, updated under a lock after each attempt.
- ``.kittify/orchestration-state.json`` -- the whole picture per feature (``runs.<feature>``: run id, start, end,
  status, per-WP records, agent health), merged by the orchestrator's main process at each doit event and at the
  end of the run.

Every write is atomic (a temporary file, then rename) and keeps the previous copy as ``<name>.prev``. A file
that cannot be read is reported, set aside as ``<name>.corrupt-<time>`` and replaced: never a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_FILE = Path(".kittify") / "orchestration-state.json"
SCHEMA_VERSION = 1

# WP statuses in the state
PENDING, RUNNING, DONE, FAILED, BLOCKED, SKIPPED = "pending", "running", "done", "failed", "blocked", "skipped"


def new_run_id(now: datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{os.urandom(3).hex()}"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(stamp: str) -> datetime:
    """Read a stamp :func:`iso` wrote (UTC); ValueError for anything else. (``datetime.strptime`` would import
    the ``_strptime`` module: 3 ms of every run's start.)"""
    if len(stamp) != 20 or stamp[10] != "T" or not stamp.endswith("Z"):
        raise ValueError(f"not a UTC time stamp: {stamp!r}")
    return datetime.fromisoformat(stamp[:-1]).replace(tzinfo=UTC)


# ---- files ----------------------------------------------------------------------------------------------


def read_json(path: Path) -> dict[str, Any] | None:
    """Return the JSON object in *path*; None when there is none. A corrupt file is set aside, not fatal."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        log.warning("%s cannot be read (%s); carrying on without it", path, error.strerror)
        return None
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        with contextlib.suppress(OSError):  # someone else moved it already
            os.replace(path, aside)
        log.warning("%s was unreadable (%s); set aside as %s", path, error, aside.name)
        previous = path.with_name(path.name + ".prev")
        if previous.exists() and previous != path:
            with contextlib.suppress(ValueError, OSError):
                data = json.loads(previous.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    return data
        return None
    return data


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write *data* to *path* atomically, keeping the previous version as ``<name>.prev`` (made as any new file:
    the umask decides who may read it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(path, _NEW_FILE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # Compact, so json's C encoder does the work: the run state is rewritten often during a run.
            # `kittydoit status --json` prints it readably.
            handle.write(json.dumps(data, separators=(",", ":")) + "\n")  # dumps, not dump: only it has C speed
        if path.exists():  # keep the previous version; a hard link leaves *path* in place all along
            prev_tmp = path.with_name(f".{path.name}.prev.tmp")
            prev_tmp.unlink(missing_ok=True)
            with contextlib.suppress(FileNotFoundError):  # it went away meanwhile: nothing to keep
                os.link(path, prev_tmp)
                os.replace(prev_tmp, path.with_name(path.name + ".prev"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str | bytes) -> None:
    """Replace *path* with *text* (UTF-8 when str) through a temporary file in the same folder, keeping its mode
    (a new file is made as any new file: the umask decides who may read it)."""
    try:
        mode: int | None = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    fd, tmp = _temporary(path, _NEW_FILE if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8") if isinstance(text, str) else text)
            if mode is not None:
                os.fchmod(handle.fileno(), mode)  # as it was, whatever the umask
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _temporary(path: Path, mode: int) -> tuple[int, str]:
    """Create a new temporary file beside *path*; return its descriptor (open for writing) and its name.

    Named by this process's pid and a counter rather than at random (``tempfile.mkstemp``), which costs a
    quarter more per write, and kittydoit writes several of these between one agent's end and the next one's start.
    A name left by a process that died with the same pid is skipped.
    """
    while True:
        tmp = f"{path.parent}/.{path.name}.{os.getpid()}-{next(_TEMPORARY)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode), tmp
        except FileExistsError:
            continue


_TEMPORARY = itertools.count()  # see _temporary; taking the next number is atomic under the GIL
_NEW_FILE = 0o666  # a new file's mode before the umask, as open() and every editor use


@contextlib.contextmanager
def locked(lock_path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on *lock_path* (created when missing); yield whether it is held, which it always is
    when *wait* (otherwise it is not when another holds it)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---- one WP, written by the worker running it -------------------------------------------------------------


class WPRecord:
    """The live record of one WP in the current run.

    :meth:`update` writes it at once; :meth:`note` only changes it, for a step that another write follows within
    milliseconds (the start of a phase, an attempt's outcome): each write is a file replaced, and several of them
    sat between one agent's exit and the next agent's start. Whoever notes must see that it is written:
    :meth:`flush`, or any later update (the workflow flushes when an action ends, however it ends).
    """

    def __init__(self, path: Path, wp_id: str, run_id: str | None, clock: Callable[[], datetime]) -> None:
        self.path = path
        self.clock = clock
        data = read_json(path) or {}
        if data.get("run") != run_id:
            data = {"wp": wp_id, "run": run_id, "attempts": [], "retries": 0, "fallbacks": 0, "review_cycles": 0}
        self.data: dict[str, Any] = data
        self._unwritten = False

    def update(self, **fields: Any) -> None:
        """Set *fields* and write the record."""
        self.note(**fields)
        self.flush()

    def note(self, **fields: Any) -> None:
        """Set *fields*, to be written with the next update or flush."""
        self.data.update(fields)
        self.data["updated"] = iso(self.clock())
        self._unwritten = True

    def flush(self) -> None:
        """Write what was noted and not written yet."""
        if self._unwritten:
            write_json(self.path, self.data)
            self._unwritten = False

    def start(self, phase: str, **fields: Any) -> None:
        """Note that *phase* began (with *fields*); written with the next update (say, the agent chosen)."""
        self.note(status=RUNNING, phase=phase, started=self.data.get("started") or iso(self.clock()),
                  phase_started=iso(self.clock()), ended=None, reason=None, **fields)  # fmt: skip

    def add_attempt(self, attempt: Mapping[str, Any]) -> None:
        """Note an attempt's outcome; written with the next update."""
        self.data["attempts"].append(dict(attempt))
        self.note()

    def count(self, key: str) -> None:
        self.update(**{key: int(self.data.get(key, 0)) + 1})

    def finish(self, status: str, reason: str | None = None) -> None:
        self.update(status=status, phase=None, ended=iso(self.clock()), reason=reason)


# ---- agent health, shared by all workers ------------------------------------------------------------------


class AgentHealth:
    """Per-agent health for a feature's runs: failures, last success, cooling-down deadline."""

    def __init__(self, path: Path, clock: Callable[[], datetime]) -> None:
        self.path = path
        self.clock = clock

    def snapshot(self) -> dict[str, Any]:
        return read_json(self.path) or {}

    def cooling_until(self, agent_id: str) -> float | None:
        """Return the epoch time until which *agent_id* should not be used, or None when it may be."""
        until = self.snapshot().get(agent_id, {}).get("cooling_down_until_epoch")
        if until is None or until <= self.clock().timestamp():
            return None
        return float(until)

    def failed_auth(self, agent_id: str) -> bool:
        """Tell whether *agent_id* is cooling down after an authentication failure (no use waiting for it)."""
        entry = self.snapshot().get(agent_id, {})
        cooling = (entry.get("cooling_down_until_epoch") or 0) > self.clock().timestamp()
        return bool(cooling and entry.get("last_failure", {}).get("class") == "auth_failed")

    def record(self, agent_id: str, outcome: str, *, cooldown: float | None = None) -> None:
        """Record an attempt's outcome; *cooldown* seconds marks the agent unavailable for every WP.

        A success of an agent that is healthy already (no failure since its last success, no cooldown) and
        succeeded less than :data:`_SUCCESS_FRESH` seconds ago changes nothing worth a write: ``last_success``
        is kept to within that. Every other outcome is written under the lock.
        """
        succeeded = outcome in ("success", "hung_after_finish")
        if succeeded and not cooldown and self._healthy(agent_id):
            return
        with locked(self.path.with_suffix(".lock")):
            data = self.snapshot()
            entry = data.setdefault(agent_id, {"consecutive_failures": 0, "last_success": None})
            now = self.clock()
            if succeeded:
                entry.update(consecutive_failures=0, last_success=iso(now))
            else:
                entry["consecutive_failures"] = int(entry.get("consecutive_failures", 0)) + 1
                entry["last_failure"] = {"class": outcome, "at": iso(now)}
            if cooldown:
                until = now.timestamp() + cooldown
                entry["cooling_down_until_epoch"] = until
                entry["cooling_down_until"] = iso(datetime.fromtimestamp(until, now.tzinfo))
            write_json(self.path, data)

    def _healthy(self, agent_id: str) -> bool:
        """Tell whether *agent_id* has no failure since a success less than :data:`_SUCCESS_FRESH` s ago."""
        entry = self.snapshot().get(agent_id) or {}
        if entry.get("consecutive_failures") or entry.get("cooling_down_until_epoch") or not entry.get("last_success"):
            return False
        try:
            age = (self.clock() - parse_iso(str(entry["last_success"]))).total_seconds()
        except (TypeError, ValueError):
            return False
        return 0 <= age < _SUCCESS_FRESH


_SUCCESS_FRESH = 60.0  # seconds within which an agent's last success is kept (see AgentHealth.record)


# ---- the whole picture, merged by the main process --------------------------------------------------------


class RunState:
    """``.kittify/orchestration-state.json``: the current or last run of each feature."""

    def __init__(self, root: Path, feature: str, feature_state: Path, clock: Callable[[], datetime]) -> None:
        self.path = root / STATE_FILE
        self.feature = feature
        self.wp_dir = feature_state / "wps"
        self.health = AgentHealth(feature_state / "agent-health.json", clock)
        self.run_file = feature_state / "run.json"
        self.clock = clock

    def start(self, *, wps: Mapping[str, str], pid: int, argv: list[str]) -> str:
        """Record a new run of the feature; return its id."""
        now = self.clock()
        run_id = new_run_id(now)
        run = {"id": run_id, "feature": self.feature, "started": iso(now), "ended": None, "status": "running",
               "pid": pid, "argv": argv}  # fmt: skip
        write_json(self.run_file, run)
        for stale in self.wp_dir.glob("*.json") if self.wp_dir.is_dir() else []:
            stale.unlink()
        fresh = {wp: {"status": PENDING, "title": title} for wp, title in wps.items()}
        self._merge(lambda entry: entry.update(run=run, wps=fresh))
        return run_id

    def run_id(self) -> str | None:
        data = read_json(self.run_file) or {}
        return data.get("id")

    def wp_file(self, wp_id: str) -> Path:
        return self.wp_dir / f"{wp_id}.json"

    def wps(self, news: Mapping[str, tuple[str | None, str | None]]) -> None:
        """Merge the live records of the WPs in *news* (each with the status and reason doit reported, if any)
        into the state file, in one write however many there are."""
        records = {}
        for wp_id, (status, reason) in news.items():
            record = read_json(self.wp_file(wp_id)) or {}
            if status:
                record["status"] = status
            if reason:
                record["reason"] = reason
            records[wp_id] = record

        def apply(entry: dict[str, Any]) -> None:
            wps = entry.setdefault("wps", {})
            for wp_id, record in records.items():
                wps[wp_id] = {**wps.get(wp_id, {}), **record}

        self._merge(apply)

    def finish(self, status: str, reason: str | None = None) -> None:
        """Record the end of the run with *status* (completed, failed, aborted, error)."""
        run = read_json(self.run_file) or {}
        run.update(ended=iso(self.clock()), status=status, reason=reason)
        write_json(self.run_file, run)

        def apply(entry: dict[str, Any]) -> None:
            entry["run"] = run
            wps = entry.setdefault("wps", {})
            for wp_id, wp in wps.items():
                final = wp.get("status") not in (None, PENDING, RUNNING)
                decided = {k: wp[k] for k in ("status", "reason") if final and k in wp}
                wps[wp_id] = {**wp, **(read_json(self.wp_file(wp_id)) or {}), **decided}
                if wps[wp_id].get("status") == RUNNING:
                    wps[wp_id]["status"] = "interrupted"

        self._merge(apply)

    def _merge(self, apply: Callable[[dict[str, Any]], None]) -> None:
        with locked(self.path.with_name(self.path.name + ".lock")):
            data = read_json(self.path) or {}
            if data.get("version") != SCHEMA_VERSION:
                data = {"version": SCHEMA_VERSION, "runs": {}}
            entry = data.setdefault("runs", {}).setdefault(self.feature, {})
            apply(entry)
            entry["agents"] = self.health.snapshot()
            data["last_feature"] = self.feature
            write_json(self.path, data)


def load(root: Path) -> dict[str, Any]:
    """Return the orchestration state of the repository at *root* (empty when there is none)."""
    data = read_json(root / STATE_FILE) or {}
    return data if data.get("version") == SCHEMA_VERSION else {"version": SCHEMA_VERSION, "runs": {}}
