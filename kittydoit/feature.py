"""Find a spec-kitty feature and read and check its work packages.

Everything here runs before any task starts: a feature that fails a check is rejected with one line that
names the file and the fix, and nothing has been started or changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kittydoit.errors import FeatureError
from kittydoit.parsecache import ParseCache
from kittydoit.wpfile import WPDocument, read_raw

log = logging.getLogger(__name__)

LANES = ("planned", "doing", "for_review", "done")  # spec-kitty 0.x; 3.x has nine (kittydoit.lanes.eventlog)
SPECS_DIR = "kitty-specs"
EVENTS_FILE = "status.events.jsonl"  # its presence makes a feature a spec-kitty 3.x mission
FINISHED_3X = frozenset({"approved", "done", "canceled"})  # a 3.x WP in these lanes never runs again
FINISHED_0X = frozenset({"done"})

# Frontmatter fields that record progress rather than define the work: changing them never makes a WP stale.
BOOKKEEPING = frozenset(
    {
        "lane",
        "assignee",
        "agent",
        "shell_pid",
        "review_status",
        "reviewed_by",
        "review_feedback_file",
        "reviewer",
        "reviewer_agent",
        "reviewer_shell_pid",
        "history",
        "activity_log",
    }
)

# Bump when what is read from a WP file changes, so that WPs cached by an older kittydoit are parsed again.
_CACHE_FORMAT = 1

_WP_ID = re.compile(r"WP\d+")
_FILE_ID = re.compile(r"(WP\d+)(?![0-9])")
_FOLDER_NUMBER = re.compile(r"(\d+)-")
_TITLE_HEADING = re.compile(r"^#\s+Work Package Prompt:\s*WP\d+\s*[–—:-]\s*(.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class WorkPackage:
    """One work package as read at load time (lanes move later; re-read the file for the current lane)."""

    id: str
    path: Path
    title: str
    lane: str
    dependencies: tuple[str, ...]
    spec: str
    digest: str
    fields: Mapping[str, object] = field(repr=False)
    # What it runs after: its dependencies, and in a 3.x mission the WPs before it in its execution lane (they
    # share one worktree) and the lanes its lane depends on. The same as *dependencies* in a 0.x feature.
    after: tuple[str, ...] = ()

    @property
    def number(self) -> int:
        return int(self.id[2:])


@dataclass(frozen=True)
class Feature:
    """A feature folder ``kitty-specs/NNN-slug`` and its work packages, in id order."""

    root: Path
    slug: str
    path: Path
    layout: str  # "flat" (tasks/WPxx-*.md) or "lanes" (tasks/<lane>/WPxx-*.md, spec-kitty before 0.9)
    target_branch: str | None
    friendly_name: str
    wps: Mapping[str, WorkPackage]
    cache: ParseCache | None = None  # WPs as parsed, so that unchanged files are not parsed again
    format: str = "0.x"  # "3.x": a spec-kitty 3.x mission, whose lanes live in status.events.jsonl
    meta: Mapping[str, object] = field(default_factory=dict, repr=False)
    # 3.x: WPs the event log names that have no WP file (spec-kitty refuses to run them), with their lanes.
    without_file: Mapping[str, str] = field(default_factory=dict)

    @property
    def lanes(self) -> tuple[str, ...]:
        """The lanes of this feature's format, in workflow order."""
        from kittydoit.lanes.eventlog import LANES as LANES_3X  # noqa: PLC0415  # reading 0.x needs none of it

        return LANES_3X if self.format == "3.x" else LANES
    # WP -> the ids its file lists under dependencies that no WP file has (a WP file deleted after its
    # dependants were planned); they are left out of the WP's dependencies (see load_feature)
    missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def finished(self) -> frozenset[str]:
        """The lanes in which a WP never runs again (0.x: done; 3.x: approved, done, canceled)."""
        return FINISHED_3X if self.format == "3.x" else FINISHED_0X

    @property
    def tasks_dir(self) -> Path:
        return self.path / "tasks"

    def dependants(self, wp_id: str) -> list[str]:
        """Return the WPs that list *wp_id* as a dependency."""
        return [w.id for w in self.wps.values() if wp_id in w.dependencies]

    def chain_lengths(self) -> dict[str, int]:
        """Return, per WP, the number of WPs on the longest dependency chain that starts at it."""
        after: dict[str, list[str]] = {wp_id: [] for wp_id in self.wps}
        for wp in self.wps.values():
            for dep in wp.after:
                after[dep].append(wp.id)
        lengths: dict[str, int] = {}
        for wp_id in reversed(topological_order(self.wps)):
            lengths[wp_id] = 1 + max((lengths[d] for d in after[wp_id]), default=0)
        return lengths

    def schedule_order(self) -> list[str]:
        """Return the WPs longest-remaining-chain first (ties by id), the order doit should start them in."""
        lengths = self.chain_lengths()
        return sorted(self.wps, key=lambda w: (-lengths[w], self.wps[w].number))

    def remember(self, before: tuple[Path, bytes], after: tuple[Path, bytes], lane: str) -> None:
        """Note in the cache that the WP file *before* (path, bytes) became *after* by a lane move to *lane*.

        A lane move changes bookkeeping only (lane, review fields, the Activity Log and Review Feedback
        sections), never what the WP reads as, so the entry of the file as it was, if cached, holds for the file
        as it is with the new lane: the next load needs no parse and no parse is spent here either. A file that
        was not cached as it was (say, edited by hand during the run) is parsed at the next load.
        """
        if self.cache is None:
            return
        old_path, old_bytes = before
        new_path, new_bytes = after
        self.cache.remember(
            (old_path.name, _cache_key(old_path, self._folder_lane(old_path), old_bytes)),
            (new_path.name, _cache_key(new_path, self._folder_lane(new_path), new_bytes)),
            {"lane": lane},
        )

    def _folder_lane(self, path: Path) -> str | None:
        return path.parent.name if self.layout == "lanes" else None

    def relpath(self, path: Path) -> str:
        """Return *path* relative to the repository root, for messages."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def find_root(start: Path) -> Path:
    """Return the nearest folder at or above *start* that holds ``kitty-specs/``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / SPECS_DIR).is_dir():
            return folder
    raise FeatureError(
        start, f"no {SPECS_DIR}/ folder here or above; run kittydoit inside a spec-kitty repository"
    )


def feature_dirs(root: Path) -> list[Path]:
    """Return the feature folders under ``kitty-specs/``, sorted by name."""
    return sorted(p for p in (root / SPECS_DIR).iterdir() if p.is_dir() and not p.name.startswith("."))


def select_feature(root: Path, name: str | None) -> Path:
    """Return the feature folder named *name*, or the only one there is.

    *name* is a path, a folder name, the ``NNN`` of a numbered folder, or, for a spec-kitty 3.x mission, its
    meta.json ``mission_slug``, its ``mission_id`` or that id's first 8 characters (the mid8 that ends
    ``<slug>-<mid8>`` folder names).
    """
    features = feature_dirs(root)
    listing = ", ".join(p.name for p in features) or "none"
    specs = root / SPECS_DIR
    if name:
        as_path = Path(name)
        candidates = [as_path if as_path.is_absolute() else Path.cwd() / as_path]
        candidates.append(specs / as_path.name)
        for candidate in candidates:
            if (candidate / "tasks").is_dir() or (candidate.is_dir() and candidate.parent == specs):
                return candidate.resolve()
        matches = [p for p in features if name in _other_names(p)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            shown = ", ".join(p.name for p in matches)
            raise FeatureError(specs, f"'{name}' names several features: {shown}; choose one by its folder name")
        raise FeatureError(specs, f"no feature '{name}'; choose one of: {listing}")
    if len(features) == 1:
        return features[0]
    if not features:
        raise FeatureError(specs, "holds no feature folders (expected kitty-specs/NNN-slug/tasks/)")
    raise FeatureError(
        specs, f"holds several features; choose one with --feature (or feature=...): {listing}"
    )


def _other_names(folder: Path) -> set[str]:
    """Return what else names the feature in *folder*: its number, and a 3.x mission's slug, id and mid8."""
    names = set()
    number = _FOLDER_NUMBER.match(folder.name)
    if number:
        names.add(number.group(1))
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return names  # no meta.json (0.x), or a broken one that loading this feature will report
    if isinstance(meta, dict):
        for key in ("mission_slug", "mission_id"):
            if isinstance(meta.get(key), str) and meta[key]:
                names.add(meta[key])
        if isinstance(meta.get("mission_id"), str) and len(meta["mission_id"]) >= 8:
            names.add(meta["mission_id"][:8])
    return names


def load_feature(root: Path, folder: Path, cache: Path | None = None, *, strict: bool = True) -> Feature:
    """Read and check every work package of the feature in *folder*.

    A folder holding ``status.events.jsonl`` is a spec-kitty 3.x mission (even when the log holds no transition
    yet): its lanes come from that log, never from a WP file's ``lane:``. Any other folder is a 0.x feature.
    With a *cache* folder (see :mod:`kittydoit.parsecache`), a WP file whose bytes are the same as when it was
    last parsed is taken from there, unparsed.

    A dependency on a WP that has no file is left out of the dependant's dependencies and kept in
    ``Feature.missing``. It matters only for a dependant that could still run: *strict* (for a run) makes that
    an error naming every such dependency; a ``done`` dependant only gets a warning, as does every dependant
    when not *strict* (reading a feature never fails for it).
    """
    tasks = folder / "tasks"
    if not tasks.is_dir():
        raise FeatureError(folder, "has no tasks/ folder with work package files")
    meta = _read_meta(folder)
    mission = (folder / EVENTS_FILE).exists()
    # In a 3.x mission, folders under tasks/ hold a WP's review cycles (tasks/WP01-x/review-cycle-1.md).
    lane_dirs = [] if mission else [d for d in sorted(tasks.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    layout = "lanes" if lane_dirs else "flat"
    files: list[tuple[Path, str | None]] = [(p, None) for p in _wp_files(tasks)]
    for lane_dir in lane_dirs:
        if lane_dir.name not in LANES:
            raise FeatureError(lane_dir, f"is not a lane folder; lanes are {', '.join(LANES)}")
        files += [(p, lane_dir.name) for p in _wp_files(lane_dir)]
    if not files:
        raise FeatureError(tasks, "holds no work packages (WPxx-title.md files)")
    wps: dict[str, WorkPackage] = {}
    parsed = ParseCache(cache) if cache is not None else None  # saved once the whole feature has passed its checks
    for path, folder_lane in files:
        wp = _load_wp(path, folder_lane, parsed, mission=mission)
        if wp.id in wps:
            raise FeatureError(path, f"{wp.id} is also defined in {wps[wp.id].path.name}; ids must be unique")
        wps[wp.id] = wp
    ordered = dict(sorted(wps.items(), key=lambda item: item[1].number))
    without_file: dict[str, str] = {}
    if mission:
        ordered, without_file = _mission_lanes(root, folder, meta, ordered)
    missing = _missing_dependencies(
        root, ordered, strict=strict, finished=FINISHED_3X if mission else FINISHED_0X
    )
    for wp_id, ids in missing.items():
        wp = ordered[wp_id]
        kept = tuple(d for d in wp.dependencies if d not in ids)
        ordered[wp_id] = replace(wp, dependencies=kept, after=tuple(d for d in wp.after if d not in ids))
    if not mission:
        ordered = {wp_id: replace(wp, after=wp.dependencies) for wp_id, wp in ordered.items()}
    _check_dependencies(ordered)
    if parsed is not None:
        parsed.save()
    return Feature(
        root=root,
        slug=folder.name,
        path=folder,
        layout=layout,
        target_branch=str(meta["target_branch"]) if meta.get("target_branch") else None,
        friendly_name=str(meta.get("friendly_name") or folder.name),
        wps=ordered,
        cache=parsed,
        format="3.x" if mission else "0.x",
        meta=meta,
        without_file=without_file,
        missing=missing,
    )


def mission_log(feature: Feature) -> Mapping[str, Any]:
    """Return what a 3.x mission's event log says of each WP now (read from its status surface)."""
    from kittydoit.lanes import eventlog  # noqa: PLC0415  # 0.x features never need it

    return eventlog.read_mission(feature.root, feature.path, feature.meta)


def _mission_lanes(
    root: Path, folder: Path, meta: Mapping[str, object], wps: dict[str, WorkPackage]
) -> tuple[dict[str, WorkPackage], dict[str, str]]:
    """Return a 3.x mission's WPs with their lanes from the event log and their execution-lane order.

    Also return the WPs the log names that have no file, with their lanes. A dependency on such a WP that is
    approved or done is met (spec-kitty counts it so) and dropped.
    """
    from kittydoit.lanes import eventlog  # noqa: PLC0415

    log = eventlog.read_mission(root, folder, meta)
    without_file = {w: eventlog.lane(log, w) for w in eventlog.without_file(log, wps)}
    met = {w for w, lane in without_file.items() if lane in eventlog.DONE_LANES}
    order = _execution_order(folder, wps)
    result = {}
    for wp_id, wp in wps.items():
        deps = tuple(d for d in wp.dependencies if d not in met)
        after = tuple(dict.fromkeys([*deps, *(w for w in order.get(wp_id, ()) if w not in deps)]))
        result[wp_id] = replace(wp, lane=eventlog.lane(log, wp_id), dependencies=deps, after=after)
    return result, without_file


def _execution_order(folder: Path, wps: Mapping[str, WorkPackage]) -> dict[str, tuple[str, ...]]:
    """Return, per WP, the WPs it must run after because of ``lanes.json``'s execution lanes.

    WPs of one execution lane share one worktree, so each runs after the one before it in the lane's order; the
    first WP of a lane that ``depends_on_lanes`` runs after the last WP of each of those lanes.
    """
    path = folder / "lanes.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        lanes = {str(lane["lane_id"]): [str(w) for w in lane.get("wp_ids", []) if str(w) in wps]
                 for lane in data.get("lanes", [])}  # fmt: skip
        needs = {str(lane["lane_id"]): [str(d) for d in lane.get("depends_on_lanes", [])] for lane in data["lanes"]}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise FeatureError(path, f"is not a lanes.json spec-kitty can read ({error}); run `spec-kitty agent "
                           "mission finalize-tasks` again or remove it") from None  # fmt: skip
    order: dict[str, list[str]] = {}
    for lane_id, members in lanes.items():
        for before, wp_id in itertools.pairwise(members):
            order.setdefault(wp_id, []).append(before)
        if members:
            for needed in needs.get(lane_id, []):
                if lanes.get(needed):
                    order.setdefault(members[0], []).append(lanes[needed][-1])
    return {wp_id: tuple(before) for wp_id, before in order.items()}


def topological_order(wps: Mapping[str, WorkPackage]) -> list[str]:
    """Return the WP ids with every dependency before its dependants (ids checked acyclic)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(wp_id: str) -> None:
        if wp_id in seen:
            return
        seen.add(wp_id)
        for dep in wps[wp_id].after:
            visit(dep)
        order.append(wp_id)

    for wp_id in wps:
        visit(wp_id)
    return order


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """Return one dependency cycle as a closed path (``[WP01, WP02, WP01]``), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    for start in graph:
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, list[str]]] = [(start, list(graph[start]))]
        state[start] = 1
        path.append(start)
        while stack:
            node, pending = stack[-1]
            if not pending:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            nxt = pending.pop(0)
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt) and nxt in graph:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, list(graph[nxt])))
    return None


def _wp_files(folder: Path) -> list[Path]:
    found = [p for p in folder.iterdir() if p.name.startswith("WP") and p.suffix == ".md" and p.is_file()]
    return sorted(found, key=lambda p: p.name)  # all in one folder: by name, as paths sort (and far faster)


def _read_meta(folder: Path) -> dict[str, object]:
    path = folder / "meta.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FeatureError(path, f"is not valid JSON ({error}); fix or remove it") from None
    if not isinstance(data, dict):
        raise FeatureError(path, "must hold a JSON object")
    return data


def _load_wp(
    path: Path, folder_lane: str | None, cache: ParseCache | None, *, mission: bool = False
) -> WorkPackage:
    """Return the WP in *path*, from the *cache* when the file is as it was when last parsed (else added to it)."""
    if cache is None:
        return _wp_from_doc(path, folder_lane, WPDocument.read(path), mission=mission)
    raw = read_raw(path)
    key = _cache_key(path, "3.x" if mission else folder_lane, raw)
    cached = cache.lookup(path.name, key)
    if cached is not None:
        with contextlib.suppress(KeyError, TypeError):  # an entry of another shape is parsed again
            return _from_entry(path, cached)
    wp = _wp_from_doc(path, folder_lane, WPDocument.decode(path, raw), mission=mission)
    cache.add(path.name, key, _entry(wp))
    return wp


def _wp_from_doc(path: Path, folder_lane: str | None, doc: WPDocument, *, mission: bool = False) -> WorkPackage:
    match = _FILE_ID.match(path.name)
    if not match:
        raise FeatureError(path, "file name must start with a WP id, WP + digits (e.g. WP01-title.md)")
    file_id = match.group(1)
    declared = doc.get("work_package_id")
    if declared is not None:
        if not isinstance(declared, str) or not _WP_ID.fullmatch(declared):
            raise FeatureError(path, f"work_package_id {declared!r} is not WP + digits (e.g. WP01)")
        if declared != file_id:
            raise FeatureError(
                path, f"work_package_id '{declared}' differs from the file name's '{file_id}'; make them agree"
            )
    lane = folder_lane or doc.get("lane") or "planned"
    if mission:
        lane = "planned"  # a 3.x WP file's lane: is never trusted; the event log's lane replaces this
    elif lane not in LANES:
        raise FeatureError(path, f"lane {lane!r} is not one of {', '.join(LANES)}")
    dependencies = _dependencies(path, doc.get("dependencies"), file_id, mission=mission)
    spec = doc.spec()
    work_fields = {k: v for k, v in doc.get_all().items() if k not in BOOKKEEPING}
    digest = hashlib.sha256(
        json.dumps([work_fields, spec], sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()
    return WorkPackage(
        id=file_id,
        path=path,
        title=_title(doc, file_id),
        lane=lane,
        dependencies=dependencies,
        spec=spec,
        digest=digest,
        fields=work_fields,
    )


def _cache_key(path: Path, folder_lane: str | None, raw: bytes) -> str:
    """Return what a cached WP is valid for: the file's name, lane folder and bytes, and how WPs are read."""
    digest = hashlib.sha256(f"{_CACHE_FORMAT}\0{sorted(BOOKKEEPING)}\0{path.name}\0{folder_lane}\0".encode())
    digest.update(raw)
    return digest.hexdigest()


def _from_entry(path: Path, wp: Mapping[str, Any]) -> WorkPackage:
    return WorkPackage(
        id=wp["id"],
        path=path,
        title=wp["title"],
        lane=wp["lane"],
        dependencies=tuple(wp["dependencies"]),
        spec=wp["spec"],
        digest=wp["digest"],
        fields=wp["fields"],
    )


def _entry(wp: WorkPackage) -> dict[str, Any]:
    """Return what the parse cache keeps of *wp* (its path is where it is found)."""
    return {
        "id": wp.id,
        "title": wp.title,
        "lane": wp.lane,
        "dependencies": list(wp.dependencies),
        "spec": wp.spec,
        "digest": wp.digest,
        "fields": wp.fields,
    }


def _dependencies(path: Path, value: object, own_id: str, *, mission: bool = False) -> tuple[str, ...]:
    if value is None:
        return ()
    if mission and isinstance(value, str):  # spec-kitty wrote some as the string '[]' (or '[WP01]')
        value = [v.strip().strip("'\"") for v in value.strip().strip("[]").split(",") if v.strip()]
    if not isinstance(value, list):
        raise FeatureError(path, "dependencies must be a list of WP ids, e.g. [WP01, WP02]")
    result: list[str] = []
    for item in value:
        if not isinstance(item, str) or not _WP_ID.fullmatch(item):
            raise FeatureError(path, f"dependency {item!r} is not a WP id (WP + digits)")
        if item == own_id:
            raise FeatureError(path, f"{own_id} depends on itself; remove it from dependencies")
        if item not in result:
            result.append(item)
    return tuple(result)


def _title(doc: WPDocument, wp_id: str) -> str:
    for key in ("title", "work_package_title"):
        value = doc.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    match = _TITLE_HEADING.search(doc.body())
    return match.group(1) if match else wp_id


def _missing_dependencies(
    root: Path, wps: Mapping[str, WorkPackage], *, strict: bool, finished: frozenset[str] = FINISHED_0X
) -> dict[str, tuple[str, ...]]:
    """Return, per WP, its dependencies that no WP file has; refuse those that matter when *strict*.

    A ``done`` WP never runs again, so its missing dependency is a warning. Any other WP would run and need it:
    with *strict* every such dependency is named in one error, otherwise each is a warning.
    """
    known = ", ".join(wps)
    missing = {wp.id: ids for wp in wps.values() if (ids := tuple(d for d in wp.dependencies if d not in wps))}
    refused: list[tuple[Path, str]] = []
    for wp_id, ids in missing.items():
        wp = wps[wp_id]
        for dep in ids:
            if wp.lane in finished:
                log.warning(
                    "%s: dependency '%s' does not exist; %s is done, so it is skipped and nothing waits for %s",
                    _relative(root, wp.path), dep, wp_id, dep,
                )
            elif strict:
                refused.append((wp.path, dep))
            else:
                log.warning(
                    "%s: dependency '%s' does not exist; a run refuses to start until it is removed from "
                    "dependencies (or %s's file is restored)",
                    _relative(root, wp.path), dep, dep,
                )
    if len(refused) == 1:
        path, dep = refused[0]
        raise FeatureError(
            path,
            f"dependency '{dep}' does not exist (work packages: {known}); remove it from dependencies "
            f"(or restore {dep}'s file)",
        )
    if refused:
        lines = [f"  - {_relative(root, path)}: dependency '{dep}' does not exist" for path, dep in refused]
        raise FeatureError(
            None,
            f"{len(refused)} dependencies of work packages that would run do not exist (work packages: {known}); "
            "remove them from dependencies (or restore those WP files):\n" + "\n".join(lines),
        )
    return missing


def _relative(root: Path, path: Path) -> str:
    """Return *path* relative to *root* when it lies under it."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _check_dependencies(wps: Mapping[str, WorkPackage]) -> None:
    cycle = find_cycle({w.id: w.after for w in wps.values()})
    if cycle:
        raise FeatureError(
            wps[cycle[0]].path, f"dependency cycle {' -> '.join(cycle)}; remove one of these dependencies"
        )
