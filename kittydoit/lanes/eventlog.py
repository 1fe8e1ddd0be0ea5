"""Read the lanes of a spec-kitty 3.x mission from its append-only event log, ``status.events.jsonl``.

Reading only: lanes move through ``spec-kitty orchestrator-api``, never by writing this file. The rules are
spec-kitty's own (3.2.7, the same since 2.0 for lanes), so that kittydoit and spec-kitty always agree:

- Lines are told apart as spec-kitty does: ``kind: "annotation"`` lines are folded into the WP's runtime
  slots (here: its subtasks); any other ``kind`` value is an error, because spec-kitty refuses such a file;
  retrospective rows (``event_name: retrospective.*`` or a ``type`` of the retrospective set) and mission
  lifecycle envelopes (an ``event_type`` key) are skipped; every other line must be a complete lane
  transition. Blank lines are skipped.
- The reducer: drop repeated ``event_id`` s (the first wins), sort by (``at`` *as a string*, ``event_id``) --
  file order does not matter -- and let each transition set its WP's lane, except that a review rollback
  beats a forward move with the same ``at``. Edges are not checked: old logs hold edges that are illegal
  today, and self-loops, and spec-kitty accepts them.
- A WP with no transition is ``planned`` (what ``orchestrator-api mission-state`` says; ``agent tasks
  status`` shows such a WP as ``genesis``).

Which copy of the log to read depends on the mission's topology: see :func:`log_text`.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kittydoit.errors import FeatureError

LANES = ("planned", "claimed", "in_progress", "for_review", "in_review", "approved", "done", "blocked", "canceled")
DONE_LANES = frozenset({"approved", "done"})  # a dependency in one of these is satisfied
EVENTS_FILE = "status.events.jsonl"
ORCHESTRATOR_ID = "kittydoit"  # policy_metadata.orchestrator_id of the moves kittydoit makes

COORD_TOPOLOGIES = frozenset({"coord", "lanes_with_coord"})

_SEED_LANE = "genesis"  # a WP's lane before finalize-tasks seeds it; only ever a from_lane
_RETROSPECTIVE_TYPES = frozenset({"RetrospectiveCaptured", "RetrospectiveCaptureFailed", "RetrospectiveSkipped"})
_ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
_MID8_TAIL = re.compile(r"-([0-9A-HJKMNP-TV-Z]{8})$")
_ACTOR_KEYS = ("tool", "model", "profile", "role")  # the order string actors use: claude:opus:pedro:implementer
_SUBTASK_STATUSES = frozenset({*LANES, _SEED_LANE, "uninitialized"})
_REFUSED = "spec-kitty refuses this file too"


@dataclass(frozen=True)
class Transition:
    """One lane transition line of the log."""

    event_id: str
    wp_id: str
    from_lane: str
    to_lane: str
    at: str
    actor: str  # a {role, profile, tool, model} actor is shown as "tool:model:profile:role", nulls left out
    force: bool
    reason: str | None
    review_ref: str | None
    review_result: Mapping[str, Any] | None
    policy_metadata: Mapping[str, Any] | None
    line: int  # 1-based line number in the file

    @property
    def is_rollback(self) -> bool:
        """Return whether this is a review sending the WP back (it beats a forward move at the same time)."""
        if self.to_lane != "in_progress":
            return False
        return self.from_lane == "in_review" or (self.from_lane == "for_review" and self.review_ref is not None)

    @property
    def by_kittydoit(self) -> bool:
        """Return whether kittydoit made this move (its policy metadata names kittydoit as the orchestrator)."""
        return self.policy_metadata is not None and self.policy_metadata.get("orchestrator_id") == ORCHESTRATOR_ID


@dataclass(frozen=True)
class WPLog:
    """What the log says about one WP, reduced."""

    lane: str = "planned"
    transitions: tuple[Transition, ...] = ()  # in reducer order, repeated event ids dropped
    force_count: int = 0  # forced transitions that took effect
    subtasks: Mapping[str, str] = field(default_factory=dict)  # subtask id -> status ("done", ...)
    # Of the last transition carrying one; None again after an exit from in_review without one (a forced exit).
    review_result: Mapping[str, Any] | None = None
    policy_metadata: Mapping[str, Any] | None = None  # of the transition that set the lane
    actor: str | None = None  # of the transition that set the lane


@dataclass(frozen=True)
class _Annotation:
    event_id: str
    wp_id: str
    at: str
    actor: str
    delta: Mapping[str, Any]


def parse_log(text: str, where: str | Path) -> dict[str, WPLog]:
    """Return each WP named in the log *text* with its reduced state; *where* names the log in errors.

    Raises FeatureError naming *where* and the line for a line spec-kitty would refuse, or that is not a
    well-typed transition.
    """
    transitions: list[Transition] = []
    annotations: list[_Annotation] = []
    # splitlines, as spec-kitty does, so that line numbers agree with its own messages.
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            raise _error(where, number, f"is not valid JSON ({error.msg}, column {error.colno}); {_REFUSED}") from None
        if not isinstance(obj, dict):
            raise _error(where, number, f"is not a JSON object; {_REFUSED}")
        kind = obj.get("kind")
        if kind is not None:
            if kind != "annotation":
                raise _error(where, number, f"unknown kind {kind!r}; {_REFUSED}")
            annotations.append(_annotation(obj, where, number))
        elif not _skipped(obj):
            transitions.append(_transition(obj, where, number))
    return _reduce(transitions, annotations)


def read_log(path: Path) -> dict[str, WPLog]:
    """Return the reduced WPs of the log file at *path* (none when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise FeatureError(path, f"cannot be read ({error})") from None
    return parse_log(text, path)


def read_mission(root: Path, mission_dir: Path, meta: Mapping[str, object]) -> dict[str, WPLog]:
    """Return the reduced WPs of the mission's log, read from its status surface (see :func:`log_text`)."""
    return parse_log(*log_text(root, mission_dir, meta))


def lane(wps: Mapping[str, WPLog], wp_id: str) -> str:
    """Return the lane of *wp_id*: ``planned`` when the log has no transition for it."""
    entry = wps.get(wp_id)
    return entry.lane if entry is not None else "planned"


def without_file(wps: Mapping[str, WPLog], wp_ids: Iterable[str]) -> list[str]:
    """Return the WPs the log names that are not among *wp_ids* (the WPs that have a file), in id order."""
    known = set(wp_ids)
    return sorted((w for w in wps if w not in known), key=_id_order)


def log_text(root: Path, mission_dir: Path, meta: Mapping[str, object]) -> tuple[str, str]:
    """Return the text of the mission's status surface and where it came from (a path, or ``branch:path``).

    ``single_branch`` and ``lanes`` missions keep their log in the main checkout. ``coord`` and
    ``lanes_with_coord`` missions (or, when meta.json predates ``topology``, any with a
    ``coordination_branch``) write transitions to the coordination branch only, so that copy is read: from
    the coordination worktree ``.worktrees/<slug>[-<mid8>]-coord`` when it holds the mission, else from the
    branch itself (``git show``), else from the main checkout. The text is empty when there is no log at all.

    Reading the branch goes beyond spec-kitty 3.2.7: while the coordination worktree does not exist, its
    ``agent tasks status`` and ``orchestrator-api mission-state`` report the main checkout's log (every WP
    genesis/planned) even when the branch holds transitions. The branch is what the mission's lanes are.
    """
    primary = mission_dir / EVENTS_FILE
    branch = meta.get("coordination_branch")
    topology = meta.get("topology")
    coordinated = topology in COORD_TOPOLOGIES or (topology is None and bool(branch))
    if coordinated and isinstance(branch, str) and branch:
        folder = _coord_folder(mission_dir, meta)
        if folder is not None:
            coord_root = root / ".worktrees" / f"{folder}-coord"
            in_worktree = coord_root / "kitty-specs" / folder
            if in_worktree.is_dir():
                return _file_text(in_worktree / EVENTS_FILE), str(in_worktree / EVENTS_FILE)
            # A worktree without the mission is one that never got a write: spec-kitty reads the main checkout.
            if not coord_root.is_dir():
                found = _branch_text(root, branch, [f"kitty-specs/{folder}/{EVENTS_FILE}"])
                if found is not None:
                    return found
    return _file_text(primary), str(primary)


# ---- parsing ---------------------------------------------------------------------------------------------


def _skipped(obj: Mapping[str, Any]) -> bool:
    """Return whether a line without a kind is not a lane transition (retrospective row, lifecycle envelope)."""
    event_name = obj.get("event_name")
    if isinstance(event_name, str) and event_name.startswith("retrospective."):
        return True
    if isinstance(obj.get("type"), str) and obj["type"] in _RETROSPECTIVE_TYPES:
        return True
    return "event_type" in obj


def _transition(obj: Mapping[str, Any], where: str | Path, number: int) -> Transition:
    def required(key: str) -> Any:
        if key not in obj:
            raise _error(where, number, f"transition lacks '{key}'; {_REFUSED}")
        return obj[key]

    def text(key: str) -> str:
        value = required(key)
        if not isinstance(value, str) or not value:
            raise _error(where, number, f"'{key}' must be a non-empty string, not {value!r}")
        return value

    def optional(key: str, kind: type, shown: str) -> Any:
        value = obj.get(key)
        if value is not None and not isinstance(value, kind):
            raise _error(where, number, f"'{key}' must be {shown} or null, not {value!r}")
        return value

    event_id, wp_id = text("event_id"), text("wp_id")
    from_lane, to_lane = text("from_lane"), text("to_lane")
    if from_lane not in LANES and from_lane != _SEED_LANE:
        raise _error(where, number, f"from_lane {from_lane!r} is not a lane ({_lane_list()}); {_REFUSED}")
    if to_lane not in LANES:
        raise _error(where, number, f"to_lane {to_lane!r} is not a lane ({_lane_list()}); {_REFUSED}")
    at = text("at")
    actor = _actor(required("actor"), where, number)
    force = required("force")
    if not isinstance(force, bool):
        raise _error(where, number, f"'force' must be true or false, not {force!r}")
    text("execution_mode")
    review_result = obj.get("review_result") or None  # spec-kitty reads an empty object as none
    if review_result is not None and (
        not isinstance(review_result, dict) or not {"reviewer", "verdict", "reference"} <= review_result.keys()
    ):
        raise _error(where, number, f"review_result must hold reviewer, verdict and reference; {_REFUSED}")
    return Transition(
        event_id=event_id,
        wp_id=wp_id,
        from_lane=from_lane,
        to_lane=to_lane,
        at=at,
        actor=actor,
        force=force,
        reason=optional("reason", str, "a string"),
        review_ref=optional("review_ref", str, "a string"),
        review_result=review_result,
        policy_metadata=optional("policy_metadata", dict, "an object"),
        line=number,
    )


def _annotation(obj: Mapping[str, Any], where: str | Path, number: int) -> _Annotation:
    for key in ("event_id", "wp_id", "at", "actor", "delta"):
        if key not in obj:
            raise _error(where, number, f"annotation lacks '{key}'; {_REFUSED}")
    event_id = obj["event_id"]
    if not isinstance(event_id, str) or not _ULID.fullmatch(event_id):
        raise _error(where, number, f"annotation event_id {event_id!r} is not a ULID; {_REFUSED}")
    delta = obj["delta"]
    if not isinstance(delta, dict):
        raise _error(where, number, f"annotation delta must be an object; {_REFUSED}")
    subtasks = delta.get("subtasks")
    if subtasks is not None:
        if not isinstance(subtasks, dict):
            raise _error(where, number, f"annotation subtasks must be an object; {_REFUSED}")
        for subtask, status in subtasks.items():
            if status not in _SUBTASK_STATUSES:
                raise _error(where, number, f"subtask {subtask} has unknown status {status!r}; {_REFUSED}")
    return _Annotation(
        event_id=event_id,
        wp_id=str(obj["wp_id"]),
        at=str(obj["at"]),
        actor=_actor(obj["actor"], where, number),
        delta=delta,
    )


def _actor(value: object, where: str | Path, number: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if set(value) != set(_ACTOR_KEYS) or not all(v is None or isinstance(v, str) for v in value.values()):
            wanted = "exactly role, profile, tool and model (strings or null)"
            raise _error(where, number, f"an actor object must hold {wanted}; {_REFUSED}")
        return ":".join(value[k] for k in _ACTOR_KEYS if value[k])
    raise _error(where, number, f"'actor' must be a string or an object, not {value!r}")


# ---- reducing --------------------------------------------------------------------------------------------


def _reduce(transitions: list[Transition], annotations: list[_Annotation]) -> dict[str, WPLog]:
    unique: dict[str, Transition] = {}
    for event in transitions:
        unique.setdefault(event.event_id, event)  # the first occurrence wins
    history: dict[str, list[Transition]] = {}
    for event in sorted(unique.values(), key=lambda e: (e.at, e.event_id)):
        history.setdefault(event.wp_id, []).append(event)
    wps = {wp_id: _walk(events) for wp_id, events in history.items()}
    subtasks: dict[str, dict[str, str]] = {}
    for note in sorted(annotations, key=lambda a: (a.at, a.event_id)):
        if note.wp_id not in wps:  # named by annotations only: no lane move yet
            wps[note.wp_id] = WPLog(actor=note.actor)
        subtasks.setdefault(note.wp_id, {}).update(note.delta.get("subtasks") or {})
    for wp_id, marks in subtasks.items():
        wps[wp_id] = replace(wps[wp_id], subtasks=marks)
    return dict(sorted(wps.items(), key=lambda item: _id_order(item[0])))


def _walk(events: list[Transition]) -> WPLog:
    """Return the state one WP's transitions (sorted, at least one) leave it in."""
    current = events[0]
    force_count = 0
    review_result: Mapping[str, Any] | None = None
    for event in events:
        if event is not events[0] and current.at == event.at and current.is_rollback and not event.is_rollback:
            continue  # a forward move does not beat a review rollback made at the same time
        current = event
        force_count += event.force
        if event.review_result is not None or event.from_lane == "in_review":
            review_result = event.review_result
    return WPLog(
        lane=current.to_lane,
        transitions=tuple(events),
        force_count=force_count,
        review_result=review_result,
        policy_metadata=current.policy_metadata,
        actor=current.actor,
    )


# ---- the status surface ----------------------------------------------------------------------------------


def _coord_folder(mission_dir: Path, meta: Mapping[str, object]) -> str | None:
    """Return the mission's folder name on the coordination branch: ``<slug>-<mid8>`` (slug kept verbatim)."""
    slug = str(meta.get("mission_slug") or mission_dir.name)
    mid8 = meta.get("mid8")
    if not mid8:
        mission_id = meta.get("mission_id")
        tail = _MID8_TAIL.search(slug)
        mid8 = str(mission_id)[:8] if mission_id else (tail.group(1) if tail else None)
    if not mid8:
        return None
    return slug if slug.endswith(f"-{mid8}") else f"{slug}-{mid8}"


def _file_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as error:
        raise FeatureError(path, f"cannot be read ({error})") from None


def _branch_text(root: Path, branch: str, paths: list[str]) -> tuple[str, str] | None:
    """Return the first of *paths* found on *branch* with where it came from, or None (no git, branch or file)."""
    if branch.startswith("-"):
        return None  # would read as an option
    for path in paths:
        try:
            result = subprocess.run(
                ["git", "-c", "core.quotepath=false", "show", f"{branch}:{path}"],
                cwd=root,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=False,
            )
        except OSError:  # git is not installed: there is no branch to read
            return None
        if result.returncode == 0:
            try:
                return result.stdout.decode("utf-8"), f"{branch}:{path}"
            except UnicodeDecodeError as error:
                raise FeatureError(f"{branch}:{path}", f"is not UTF-8 ({error})") from None
    return None


# ---- small helpers ---------------------------------------------------------------------------------------


def _error(where: str | Path, number: int, message: str) -> FeatureError:
    return FeatureError(where, f"line {number}: {message}")


def _lane_list() -> str:
    return ", ".join(LANES)


def _id_order(wp_id: str) -> tuple[int, str]:
    digits = wp_id[2:]
    return (int(digits), wp_id) if wp_id.startswith("WP") and digits.isdigit() else (1 << 30, wp_id)
