"""Reading spec-kitty 3.x event logs: the real corpus against spec-kitty's own answers, the reducer's rules, the
status surface of coordination missions, and every line spec-kitty refuses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import git

from kittydoit.errors import FeatureError
from kittydoit.lanes.eventlog import (
    DONE_LANES,
    LANES,
    log_text,
    parse_log,
    read_log,
    without_file,
)
from kittydoit.lanes.eventlog import lane as lane_of

HERE = Path(__file__).parent
MISSIONS = HERE / "corpus" / "v3" / "kitty-specs"
RECORDED = HERE / "recorded" / "spec-kitty-3.2.7"
LOG = "status.events.jsonl"


def transition(wp: str, frm: str, to: str, at: str, event_id: str, **extra: Any) -> dict[str, Any]:
    """Return a transition line as spec-kitty writes it (every field, nulls included)."""
    event = {
        "actor": "claude",
        "at": at,
        "event_id": event_id,
        "evidence": None,
        "execution_mode": "worktree",
        "force": False,
        "from_lane": frm,
        "mission_slug": "m",
        "policy_metadata": None,
        "reason": None,
        "review_ref": None,
        "to_lane": to,
        "wp_id": wp,
    }
    return {**event, **extra}


def annotation(wp: str, at: str, event_id: str, delta: dict[str, Any]) -> dict[str, Any]:
    return {"actor": "claude", "at": at, "delta": delta, "event_id": event_id, "kind": "annotation", "wp_id": wp}


def jsonl(*lines: dict[str, Any] | str) -> str:
    return "".join((line if isinstance(line, str) else json.dumps(line, sort_keys=True)) + "\n" for line in lines)


def ulid(n: int) -> str:
    return f"01KZ{n:022d}"


def at(second: int) -> str:
    return f"2026-08-17T13:32:{second:02d}.000000+00:00"


# ---- the corpus, against spec-kitty 3.2.7 ----------------------------------------------------------------


def _recorded(mission: str) -> dict[str, str]:
    lanes: dict[str, str] = json.loads((RECORDED / f"{mission}.json").read_text())["lanes"]
    return lanes


@pytest.mark.parametrize("mission", sorted(p.name for p in MISSIONS.iterdir() if p.is_dir()))
def test_corpus_lanes_equal_spec_kittys(tmp_path: Path, mission: str) -> None:
    folder = tmp_path / "kitty-specs" / mission
    shutil.copytree(MISSIONS / mission, folder)
    meta = json.loads((folder / "meta.json").read_text())
    # No git repository here: the coord missions fall back to the main checkout's log, as spec-kitty's did
    # when it was recorded (its scratch repository had no coordination branch either).
    text, where = log_text(tmp_path, folder, meta)
    assert where == str(folder / LOG)
    wps = parse_log(text, where)
    recorded = _recorded(mission)
    assert sorted(recorded) == sorted(p.name[:4] for p in (folder / "tasks").glob("WP*.md"))
    # spec-kitty's 'agent tasks status' shows a WP with a file and no transition as genesis; its
    # 'orchestrator-api mission-state', and this reader, say planned.
    expected = {wp: "planned" if lane == "genesis" else lane for wp, lane in recorded.items()}
    assert {wp: lane_of(wps, wp) for wp in recorded} == expected
    assert without_file(wps, recorded) == (["WP03"] if mission.startswith("journal-project-consent") else [])


def test_every_lane_but_canceled_occurs_in_the_corpus() -> None:
    seen = {wp.lane for mission in MISSIONS.iterdir() for wp in read_log(mission / LOG).values()}
    assert seen == set(LANES) - {"canceled"}


def test_lines_out_of_time_order_are_sorted_before_reducing() -> None:
    wps = read_log(MISSIONS / "expected-artifacts-manifest-repair-01KZY498" / LOG)
    # The last line of each WP in the file moves it to claimed; by time, every WP ends approved.
    assert {wp: w.lane for wp, w in wps.items()} == dict.fromkeys(["WP01", "WP02", "WP03", "WP04", "WP05"], "approved")
    assert all(w.transitions[-1].line < max(t.line for t in w.transitions) for w in wps.values())


def test_wp_with_events_and_no_file() -> None:
    wps = read_log(MISSIONS / "journal-project-consent-3030-01KYKWQS" / LOG)
    assert lane_of(wps, "WP03") == "planned"
    assert wps["WP03"].transitions
    assert without_file(wps, _recorded("journal-project-consent-3030-01KYKWQS")) == ["WP03"]


def test_object_actors_are_shown_as_one_string() -> None:
    wps = read_log(MISSIONS / "sync-cli-degod-wave4-01M0B0MX" / LOG)
    actors = {t.actor for w in wps.values() for t in w.transitions}
    assert "claude:reviewer-renata:reviewer" in actors  # {tool: claude, model: null, profile, role}
    assert all(isinstance(a, str) for a in actors)


# ---- the reducer -----------------------------------------------------------------------------------------


def test_string_sort_puts_a_z_timestamp_after_a_fractional_one_in_the_same_second() -> None:
    # Half a second later in time, but "…00.5+00:00" < "…00Z" as strings: spec-kitty lets the Z event win.
    text = jsonl(
        transition("WP01", "planned", "in_progress", "2026-04-01T10:00:00Z", ulid(1)),
        transition("WP01", "in_progress", "for_review", "2026-04-01T10:00:00.500000+00:00", ulid(2)),
    )
    wps = parse_log(text, "log")
    assert wps["WP01"].lane == "in_progress"
    assert [t.event_id for t in wps["WP01"].transitions] == [ulid(2), ulid(1)]


@pytest.mark.parametrize("rollback_first", [True, False])
def test_review_rollback_beats_a_forward_move_at_the_same_time(rollback_first: bool) -> None:
    ids = (ulid(1), ulid(2)) if rollback_first else (ulid(2), ulid(1))
    text = jsonl(
        transition("WP01", "for_review", "in_review", at(1), ulid(0)),
        transition("WP01", "in_review", "in_progress", at(2), ids[0]),
        transition("WP01", "in_review", "approved", at(2), ids[1]),
    )
    assert parse_log(text, "log")["WP01"].lane == "in_progress"


def test_legacy_rollback_needs_a_review_ref_to_win_a_tie() -> None:
    def lanes(review_ref: str | None) -> str:
        text = jsonl(
            transition("WP01", "for_review", "in_progress", at(2), ulid(1), review_ref=review_ref),
            transition("WP01", "for_review", "done", at(2), ulid(2)),
        )
        return parse_log(text, "log")["WP01"].lane

    assert lanes("review-cycle://m/WP01-x/review-cycle-1.md") == "in_progress"
    assert lanes(None) == "done"


def test_repeated_event_ids_keep_the_first_occurrence() -> None:
    text = jsonl(
        transition("WP01", "planned", "claimed", at(1), ulid(1)),
        transition("WP01", "claimed", "done", at(9), ulid(1)),  # same id, later in time: dropped
    )
    wp = parse_log(text, "log")["WP01"]
    assert wp.lane == "claimed"
    assert len(wp.transitions) == 1


def test_illegal_edges_and_self_loops_are_accepted() -> None:
    text = jsonl(
        transition("WP01", "genesis", "planned", at(1), ulid(1)),
        transition("WP01", "planned", "planned", at(2), ulid(2)),
        transition("WP01", "claimed", "done", at(3), ulid(3)),  # from_lane is not the current lane
    )
    assert parse_log(text, "log")["WP01"].lane == "done"


def test_annotations_fold_subtasks_in_time_order_and_never_move_lanes() -> None:
    text = jsonl(
        annotation("WP01", at(5), ulid(5), {"subtasks": {"T001": "planned", "T003": "done"}}),
        transition("WP01", "planned", "in_progress", at(1), ulid(1)),
        annotation("WP01", at(2), ulid(2), {"subtasks": {"T001": "done", "T002": "done"}, "note": "x"}),
        annotation("WP02", at(3), ulid(3), {"subtasks": {"T009": "done"}}),
    )
    wps = parse_log(text, "log")
    assert wps["WP01"].lane == "in_progress"
    assert wps["WP01"].subtasks == {"T001": "planned", "T002": "done", "T003": "done"}
    assert wps["WP02"].lane == "planned"  # named by an annotation only: no lane move yet
    assert wps["WP02"].subtasks == {"T009": "done"}
    assert wps["WP02"].transitions == ()


def test_lifecycle_retrospective_and_blank_lines_are_skipped() -> None:
    text = jsonl(
        {"event_type": "WPCreated", "payload": {"wp_id": "WP01"}},
        {"event_type": "DecisionPointOpened", "at": at(0)},
        {"event_name": "retrospective.requested", "at": at(0)},
        {"type": "RetrospectiveCaptured"},
        "",
        "   ",
        transition("WP01", "genesis", "planned", at(1), ulid(1)),
    )
    assert {wp: w.lane for wp, w in parse_log(text, "log").items()} == {"WP01": "planned"}


def test_force_count_review_result_policy_and_who_moved() -> None:
    policy = {"orchestrator_id": "kittydoit", "orchestrator_version": "0.1"}
    verdict = {"reviewer": "codex", "verdict": "approved", "reference": "r"}
    text = jsonl(
        transition("WP01", "planned", "claimed", at(1), ulid(1), policy_metadata={"agent": "claude"}),
        transition("WP01", "claimed", "for_review", at(2), ulid(2), force=True, reason="skip"),
        transition("WP01", "for_review", "in_review", at(3), ulid(3), policy_metadata=policy),
        transition("WP01", "in_review", "approved", at(4), ulid(4), policy_metadata=policy, review_result=verdict),
    )
    wp = parse_log(text, "log")["WP01"]
    assert (wp.lane, wp.force_count, wp.review_result, wp.policy_metadata) == ("approved", 1, verdict, policy)
    assert [t.by_kittydoit for t in wp.transitions] == [False, False, True, True]
    assert wp.lane in DONE_LANES
    assert wp.actor == "claude"


def test_a_forced_exit_from_review_clears_the_review_result() -> None:
    verdict = {"reviewer": "codex", "verdict": "changes_requested", "reference": "r"}
    text = jsonl(
        transition("WP01", "in_review", "in_progress", at(1), ulid(1), review_result=verdict),
        transition("WP01", "in_progress", "for_review", at(2), ulid(2)),
        transition("WP01", "for_review", "in_review", at(3), ulid(3)),
    )
    assert parse_log(text, "log")["WP01"].review_result == verdict  # carried forward
    forced = text + jsonl(transition("WP01", "in_review", "done", at(4), ulid(4), force=True, reason="r"))
    assert parse_log(forced, "log")["WP01"].review_result is None


def test_missing_log_reads_as_no_wps(tmp_path: Path) -> None:
    assert read_log(tmp_path / LOG) == {}
    assert lane_of({}, "WP01") == "planned"


# ---- lines spec-kitty refuses ----------------------------------------------------------------------------

_GOOD = transition("WP01", "planned", "claimed", at(1), ulid(1))
_BAD_LINES: dict[str, tuple[dict[str, Any] | str, str]] = {
    "unknown kind": ({**_GOOD, "kind": "x"}, "unknown kind 'x'; spec-kitty refuses this file too"),
    "missing field": ({k: v for k, v in _GOOD.items() if k != "at"}, "transition lacks 'at'"),
    "bad json": ('{"wp_id": "WP01",', "is not valid JSON"),
    "not an object": ("[1, 2]", "is not a JSON object"),
    "alias lane": ({**_GOOD, "to_lane": "doing"}, "to_lane 'doing' is not a lane"),
    "genesis target": ({**_GOOD, "to_lane": "genesis"}, "to_lane 'genesis' is not a lane"),
    "unknown from lane": ({**_GOOD, "from_lane": "todo"}, "from_lane 'todo' is not a lane"),
    "force not bool": ({**_GOOD, "force": "yes"}, "'force' must be true or false"),
    "actor object": ({**_GOOD, "actor": {"tool": "claude"}}, "an actor object must hold exactly"),
    "actor number": ({**_GOOD, "actor": 7}, "'actor' must be a string or an object"),
    "review result": ({**_GOOD, "review_result": {"verdict": "approved"}}, "review_result must hold"),
    "annotation id": (annotation("WP01", at(1), "not-a-ulid", {}), "annotation event_id 'not-a-ulid' is not a ULID"),
    "annotation delta": ({**annotation("WP01", at(1), ulid(2), {}), "delta": None}, "annotation delta must be"),
    "subtask status": (annotation("WP01", at(1), ulid(2), {"subtasks": {"T001": "ok"}}), "unknown status 'ok'"),
}


@pytest.mark.parametrize("case", sorted(_BAD_LINES))
def test_refused_lines_name_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    bad, message = _BAD_LINES[case]
    path = tmp_path / "kitty-specs" / "m" / LOG
    path.parent.mkdir(parents=True)
    path.write_text(jsonl(_GOOD, "", bad))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FeatureError) as caught:
        read_log(path)
    assert str(caught.value).startswith(f"kitty-specs/m/{LOG}: line 3: ")
    assert message in str(caught.value)


# ---- the status surface ----------------------------------------------------------------------------------

_MISSION_ID = "01ABCDEFGHJKMNPQRSTVWXYZ00"
_SLUG = "demo-01ABCDEF"
_BRANCH = f"kitty/mission-{_SLUG}"


def _coord_repo(root: Path, topology: str = "coord") -> tuple[Path, dict[str, Any]]:
    """Return a repository whose coord mission keeps lifecycle lines on main and transitions on its branch."""
    folder = root / "kitty-specs" / _SLUG
    folder.mkdir(parents=True)
    meta = {"mission_id": _MISSION_ID, "mission_slug": _SLUG, "topology": topology, "coordination_branch": _BRANCH}
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / LOG).write_text(jsonl({"event_type": "MissionCreated", "payload": {}}))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "mission")
    git(root, "checkout", "-q", "-b", _BRANCH)
    (folder / LOG).write_text(jsonl(transition("WP01", "planned", "claimed", at(1), ulid(1))))
    git(root, "commit", "-q", "-am", "status")
    git(root, "checkout", "-q", "main")
    return folder, meta


def test_coord_mission_reads_the_coordination_branch(tmp_path: Path) -> None:
    folder, meta = _coord_repo(tmp_path)
    text, where = log_text(tmp_path, folder, meta)
    assert where == f"{_BRANCH}:kitty-specs/{_SLUG}/{LOG}"
    assert lane_of(parse_log(text, where), "WP01") == "claimed"


def test_coord_mission_prefers_the_coordination_worktree(tmp_path: Path) -> None:
    folder, meta = _coord_repo(tmp_path)
    worktree = tmp_path / ".worktrees" / f"{_SLUG}-coord"
    git(tmp_path, "worktree", "add", "-q", str(worktree), _BRANCH)
    log = worktree / "kitty-specs" / _SLUG / LOG
    log.write_text(log.read_text() + jsonl(transition("WP01", "claimed", "in_progress", at(2), ulid(2))))
    text, where = log_text(tmp_path, folder, meta)
    assert where == str(log)
    assert lane_of(parse_log(text, where), "WP01") == "in_progress"  # uncommitted: only the worktree has it


def test_numbered_coord_mission_gets_the_mid8_appended(tmp_path: Path) -> None:
    folder = tmp_path / "kitty-specs" / "060-demo"
    folder.mkdir(parents=True)
    meta = {"mission_id": _MISSION_ID, "mission_slug": "060-demo", "topology": "lanes_with_coord",
            "coordination_branch": "kitty/mission-060-demo-01ABCDEF"}  # fmt: skip
    coord = tmp_path / ".worktrees" / "060-demo-01ABCDEF-coord" / "kitty-specs" / "060-demo-01ABCDEF"
    coord.mkdir(parents=True)
    (coord / LOG).write_text(jsonl(transition("WP01", "planned", "blocked", at(1), ulid(1))))
    text, where = log_text(tmp_path, folder, meta)
    assert where == str(coord / LOG)
    assert lane_of(parse_log(text, where), "WP01") == "blocked"


@pytest.mark.parametrize(
    "change",
    [
        {"coordination_branch": "kitty/mission-gone-01ABCDEF"},  # the branch does not exist
        {"topology": "lanes"},  # the stored topology wins over a leftover coordination_branch, as in spec-kitty
        {"coordination_branch": None},
    ],
    ids=["missing-branch", "lanes-topology", "no-branch"],
)
def test_main_checkout_log_otherwise(tmp_path: Path, change: dict[str, Any]) -> None:
    folder, meta = _coord_repo(tmp_path)
    text, where = log_text(tmp_path, folder, {**meta, **change})
    assert where == str(folder / LOG)
    assert parse_log(text, where) == {}


def test_empty_coordination_worktree_falls_back_to_the_main_checkout(tmp_path: Path) -> None:
    folder, meta = _coord_repo(tmp_path)
    (tmp_path / ".worktrees" / f"{_SLUG}-coord").mkdir(parents=True)  # never got a write: no mission in it
    assert log_text(tmp_path, folder, meta)[1] == str(folder / LOG)


def test_no_git_at_all_reads_the_main_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "kitty-specs" / _SLUG
    folder.mkdir(parents=True)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no git to run
    meta = {"mission_id": _MISSION_ID, "topology": "coord", "coordination_branch": _BRANCH}
    assert log_text(tmp_path, folder, meta) == ("", str(folder / LOG))
