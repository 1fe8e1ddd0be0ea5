"""spec-kitty 3.x missions run for real: real spec-kitty 3.2.7, real missions of the corpus, scripted agents.

The missions are copies of real ones from spec-kitty's own repository with their WPs reopened
(``tests/spec_kitty.py``). After kittydoit runs them, spec-kitty itself is asked what happened: every WP approved
(``agent tasks status``), the log valid and nothing forced (``agent status validate``, ``force_count`` 0), every line
that was there before untouched. spec-kitty-cli is installed once per machine; without a reachable package index
(and nothing cached) these tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.spec_kitty import Mission, mission_repo

pytestmark = [pytest.mark.spec_kitty, pytest.mark.slow]


def _lanes(mission: Mission) -> dict[str, str]:
    status = mission.spec_kitty_json("agent", "tasks", "status", "--mission", mission.slug, "--json")
    return {str(w["id"]): str(w["lane"]) for w in status["work_packages"]}  # type: ignore[union-attr]


def _assert_spec_kitty_agrees(mission: Mission, before: bytes) -> None:
    """Every WP approved, nothing forced, the log valid, and every line it had before kept byte for byte."""
    lanes = _lanes(mission)
    assert set(lanes.values()) == {"approved"}, lanes
    validate = mission.spec_kitty_json("agent", "status", "validate", "--mission", mission.slug, "--json")
    assert validate["passed"] is True, validate
    snapshot = json.loads((mission.folder / "status.json").read_text())
    assert {w: v["force_count"] for w, v in snapshot["work_packages"].items()} == dict.fromkeys(lanes, 0)
    after = mission.log.read_bytes()
    assert after.startswith(before)
    assert all(not t["force"] for t in mission.transitions())


def _first_start(mission: Mission, role: str) -> dict[str, float]:
    starts: dict[str, float] = {}
    for call in mission.calls():
        if "start" in call and call["role"] == role:
            starts.setdefault(str(call["wp"]), float(call["start"]))  # type: ignore[arg-type]
    return starts


def _last_end(mission: Mission, role: str) -> dict[str, float]:
    return {str(c["wp"]): float(c["end"]) for c in mission.calls() if "end" in c and c["role"] == role}  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["mission-type-guard-registry-01KZY2FG", "080-ci-hardening-and-lint-cleanup"])
def test_a_reopened_mission_runs_to_approved_through_spec_kitty(
    tmp_path: Path, spec_kitty_bin: Path, name: str
) -> None:
    mission = mission_repo(tmp_path, name, spec_kitty=spec_kitty_bin)
    before = mission.log.read_bytes()
    result = mission.kittydoit("-n", "2", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    _assert_spec_kitty_agrees(mission, before)
    # Dependencies and execution lanes kept: nothing started before what it runs after was approved.
    from kittydoit.feature import load_feature  # noqa: PLC0415

    feature = load_feature(mission.root, mission.folder)
    starts, approved = _first_start(mission, "implement"), _last_end(mission, "review")
    for wp in feature.wps.values():
        for before_wp in wp.after:
            assert approved[before_wp] <= starts[wp.id], (wp.id, before_wp)
    # kittydoit stops at approved and says how to land the mission.
    assert "spec-kitty merge" in result.stdout
    # A second run has nothing to do: the log says approved.
    calls = len(mission.calls())
    again = mission.kittydoit("run")
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(mission.calls()) == calls


def test_a_rejected_review_is_recorded_as_spec_kitty_records_one(tmp_path: Path, spec_kitty_bin: Path) -> None:
    mission = mission_repo(tmp_path, "mission-type-guard-registry-01KZY2FG", spec_kitty=spec_kitty_bin)
    mission.plan({"WP01": {"review": [{"verdict": "CHANGES_REQUESTED", "say": "Cover the strict split with a test."},
                                      {"verdict": "APPROVED"}]}})  # fmt: skip
    before = mission.log.read_bytes()
    result = mission.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    _assert_spec_kitty_agrees(mission, before)
    assert mission.started("implement").count("WP01") == 2
    rejected = [t for t in mission.transitions() if t.get("review_result", {}) and
                t["review_result"]["verdict"] == "changes_requested"]  # type: ignore[index]  # fmt: skip
    assert len(rejected) == 1
    assert (rejected[0]["from_lane"], rejected[0]["to_lane"]) == ("in_review", "in_progress")
    cycle = next((mission.folder / "tasks").glob("WP01-*/review-cycle-1.md"))
    assert rejected[0]["review_ref"] == f"review-cycle://{mission.slug}/{cycle.parent.name}/review-cycle-1.md"
    text = cycle.read_text()
    assert "cycle_number: 1" in text and "Cover the strict split with a test." in text
    # The re-implementation got the feedback in its prompt.
    prompt = (mission.root / ".kittify" / "logs" / mission.slug / "WP01-implement.prompt.md").read_text()
    assert "Cover the strict split with a test." in prompt


def test_kill_9_mid_run_then_a_rerun_finishes_without_redoing_approved_wps(
    tmp_path: Path, spec_kitty_bin: Path
) -> None:
    mission = mission_repo(tmp_path, "feature-alias-removal-01KW0N87", spec_kitty=spec_kitty_bin)
    gate = tmp_path / "gate"
    mission.plan({"WP03": {"implement": [{"wait": str(gate)}, {}]}})
    before = mission.log.read_bytes()
    run = subprocess.Popen([sys.executable, "-m", "kittydoit", "run"], cwd=mission.root, env=mission.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                           start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 240
    while "WP03" not in mission.started("implement"):
        assert run.poll() is None and time.monotonic() < deadline, "WP03 never started"
        time.sleep(0.1)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert _lanes(mission)["WP03"] == "in_progress"  # left by kittydoit: its policy says so
    result = mission.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    _assert_spec_kitty_agrees(mission, before)
    assert mission.started("implement").count("WP01") == 1
    assert mission.started("review").count("WP01") == 1
    assert mission.started("review").count("WP02") == 1


def test_a_wp_claimed_by_someone_else_is_reported_and_left_alone(tmp_path: Path, spec_kitty_bin: Path) -> None:
    mission = mission_repo(tmp_path, "mission-type-guard-registry-01KZY2FG", spec_kitty=spec_kitty_bin)
    policy = {"orchestrator_id": "someone-else", "orchestrator_version": "1", "agent_family": "claude",
              "approval_mode": "x", "sandbox_mode": "x", "network_mode": "x", "dangerous_flags": []}  # fmt: skip
    claim = mission.spec_kitty("orchestrator-api", "start-implementation", "--mission", mission.slug, "--wp", "WP01",
                               "--actor", "claude:opus:pedro:implementer", "--policy", json.dumps(policy))  # fmt: skip
    assert claim.returncode == 0, claim.stdout + claim.stderr
    before = mission.log.read_bytes()
    result = mission.kittydoit("run")
    assert result.returncode == 1
    assert "WP01" in result.stdout and "not by kittydoit" in result.stdout
    assert _lanes(mission) == {"WP01": "in_progress", "WP02": "approved"}
    assert "WP01" not in mission.started("implement")
    assert mission.log.read_bytes().startswith(before)


def test_an_agent_whose_flags_spec_kitty_refuses_stops_the_run_before_any_agent(
    tmp_path: Path, spec_kitty_bin: Path
) -> None:
    extra = (
        "  yolo-coder:\n"
        f"    command: [{json.dumps(sys.executable)}, {json.dumps(str(Path(__file__).with_name('fake_agent.py')))},"
        " implement, --yolo]\n"
        "    roles: [implementation]\n"
    )
    mission = mission_repo(tmp_path, "mission-type-guard-registry-01KZY2FG", spec_kitty=spec_kitty_bin)
    agents = mission.root / ".kittify" / "agents.yaml"
    agents.write_text(agents.read_text().replace("defaults:", extra + "defaults:", 1))
    before = mission.log.read_bytes()
    result = mission.kittydoit("run")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "--yolo" in result.stderr and "agents.yolo-coder.command" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert mission.calls() == []
    assert mission.log.read_bytes() == before


def test_plain_commands_serve_when_spec_kittys_interpreter_cannot_be_found(
    tmp_path: Path, spec_kitty_bin: Path
) -> None:
    wrapper = tmp_path / "wrapped-bin"
    wrapper.mkdir()
    script = wrapper / "spec-kitty"
    script.write_text(f'#!/bin/sh\nexec "{spec_kitty_bin / "spec-kitty"}" "$@"\n')
    script.chmod(0o755)
    mission = mission_repo(tmp_path, "mission-type-guard-registry-01KZY2FG", spec_kitty=wrapper)
    before = mission.log.read_bytes()
    result = mission.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    _assert_spec_kitty_agrees(mission, before)


def test_a_missing_spec_kitty_is_refused_in_one_line_saying_how_to_install_it(tmp_path: Path) -> None:
    mission = mission_repo(tmp_path, "mission-type-guard-registry-01KZY2FG", spec_kitty=None)
    empty = tmp_path / "no-spec-kitty"
    empty.mkdir()
    (empty / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    mission.env["PATH"] = f"{empty}{os.pathsep}{Path(sys.executable).parent}"
    before = mission.log.read_bytes()
    result = mission.kittydoit("run")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "spec-kitty is not installed" in result.stderr and "pip install 'spec-kitty-cli>=3.2.6'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert mission.calls() == [] and mission.log.read_bytes() == before


def test_spec_kittys_server_does_the_global_upkeep_for_its_first_command_only(
    tmp_path: Path, spec_kitty_bin: Path
) -> None:
    from kittydoit.speckitty import SpecKitty  # noqa: PLC0415

    mission = mission_repo(tmp_path, "mission-type-guard-registry-01KZY2FG", spec_kitty=spec_kitty_bin)
    # What spec-kitty's upkeep (ensure_runtime) writes last, and skips everything for while it is current.
    lock = Path(mission.env["SPEC_KITTY_HOME"]) / "cache" / "version.lock"
    lock.unlink(missing_ok=True)
    speckitty = SpecKitty(mission.root, environ=mission.env)
    note = speckitty.start()
    try:
        assert "served by one long-lived process" in note
        assert lock.exists()  # the first command (the contract check) did the upkeep
        lock.unlink()
        code, out, _ = speckitty.run("orchestrator-api", "contract-version")
        assert code == 0 and json.loads(out[out.index("{") :])["success"] is True
        assert speckitty.address is not None  # answered by the server
        assert not lock.exists()  # and not again
    finally:
        speckitty.close()
    mission.spec_kitty("orchestrator-api", "contract-version")
    assert lock.exists()  # the plain command does it at every start
