"""The spec-kitty a 3.x mission needs: found, its contract checked, refused in one line; the policy kittydoit sends.

These run without spec-kitty: a small script named ``spec-kitty`` stands in for it where a test needs one on PATH.
The real spec-kitty is exercised in tests/test_orchestrated.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git

from kittydoit.agents import BUILTIN
from kittydoit.config import AgentSettings
from kittydoit.feature import load_feature
from kittydoit.lanes.orchestrated import policy
from kittydoit.speckitty import SpecKitty, SpecKittyMissing, _local_check_policy

CORPUS = Path(__file__).with_name("corpus") / "v3" / "kitty-specs"


def fake_spec_kitty(folder: Path, contract: str) -> Path:
    """Write a ``spec-kitty`` that answers contract-version with *contract* (a shell script: no server)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {"api_version": contract, "min_supported_provider_version": "0.1.0"}
    envelope = {"contract_version": contract, "command": "orchestrator-api.contract-version", "success": True,
                "error_code": None, "data": data}  # fmt: skip
    script = folder / "spec-kitty"
    script.write_text(f"#!/bin/sh\necho '{json.dumps(envelope)}'\n")
    script.chmod(0o755)
    return folder


def small_mission(root: Path) -> Path:
    """Return a repository holding a two-WP 3.x mission that nothing has started."""
    folder = root / "kitty-specs" / "demo-01M8SR5F"
    (folder / "tasks").mkdir(parents=True)
    meta = {"mission_id": "01M8SR5FAAAAAAAAAAAAAAAAAA", "mission_slug": "demo-01M8SR5F", "target_branch": "main",
            "topology": "lanes", "friendly_name": "demo"}  # fmt: skip
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "status.events.jsonl").write_text("")
    for wp, deps in (("WP01", "[]"), ("WP02", "[WP01]")):
        (folder / "tasks" / f"{wp}-x.md").write_text(
            f"---\nwork_package_id: {wp}\ntitle: Work {wp}\ndependencies: {deps}\nsubtasks: [T00{wp[-1]}]\n---\n\n"
            f"Do {wp}.\n"
        )
    (root / ".kittify").mkdir()
    (root / ".kittify" / "agents.yaml").write_text(
        f"agents:\n  fake:\n    command: [{json.dumps(sys.executable)}, -c, 'print(1)']\n"
        "single_agent_mode: {enabled: true, agent: fake, review_delay_seconds: 0}\n"
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "mission")
    return root


def test_an_older_contract_is_refused_saying_how_to_install_a_supported_spec_kitty(tmp_path: Path) -> None:
    bin_dir = fake_spec_kitty(tmp_path / "bin", "1.2.0")
    environ = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    with pytest.raises(SpecKittyMissing) as refused:
        SpecKitty(tmp_path, environ).start()
    assert "contract 1.2.0" in str(refused.value) and "pip install 'spec-kitty-cli>=3.2.6'" in str(refused.value)


def test_a_run_with_an_older_spec_kitty_is_refused_before_anything_starts(tmp_path: Path) -> None:
    root = small_mission(tmp_path / "repo")
    bin_dir = fake_spec_kitty(tmp_path / "bin", "1.2.0")
    log = root / "kitty-specs" / "demo-01M8SR5F" / "status.events.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "kittydoit", "run"], cwd=root, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CI": "true"}, check=False,
    )  # fmt: skip
    assert result.returncode == 3, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "contract 1.2.0" in errors[0] and "spec-kitty-cli>=3.2.6" in errors[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert log.read_text() == ""
    assert not (root / ".worktrees").exists()


def test_a_3x_mission_lists_with_its_lanes_and_needs_no_spec_kitty_to_read(tmp_path: Path) -> None:
    root = small_mission(tmp_path / "repo")
    result = subprocess.run([sys.executable, "-m", "kittydoit", "list"], cwd=root, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PATH": "/usr/bin:/bin"}, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [line.split()[:2] for line in result.stdout.splitlines()[:2]] == [["WP01", "planned"], ["WP02", "planned"]]


def test_the_policy_names_every_flag_that_lets_an_agent_act_without_asking() -> None:
    claude, codex, gemini = (AgentSettings(BUILTIN[a]) for a in ("claude-code", "codex", "gemini"))
    implementing = policy([claude, gemini], "implementation")
    assert implementing["orchestrator_id"] == "kittydoit"
    assert implementing["agent_family"] == "claude-code,gemini"
    assert implementing["dangerous_flags"] == ["--permission-mode bypassPermissions", "--approval-mode yolo"]
    assert implementing["approval_mode"] == "bypassed"
    reviewing = policy([codex], "review")
    assert reviewing["dangerous_flags"] == [] and reviewing["approval_mode"] == "never-asked"
    assert reviewing["sandbox_mode"] == "read-only"
    assert policy([codex], "implementation")["sandbox_mode"] == "workspace-write"
    assert _local_check_policy({"policy": implementing}) == {"refused": None}


def test_a_flag_spec_kitty_bans_is_refused_by_the_local_rule_too() -> None:
    from kittydoit.agents import custom_agent  # noqa: PLC0415

    yolo = AgentSettings(custom_agent("yolo", ["agent", "--yolo", "--dangerously-skip-permissions"]))
    answer = _local_check_policy({"policy": policy([yolo], "implementation")})
    assert answer["refused"] and "--yolo" in answer["refused"]


def test_execution_lanes_order_wps_that_share_a_worktree(tmp_path: Path) -> None:
    feature = load_feature(tmp_path, CORPUS / "080-ci-hardening-and-lint-cleanup")
    after = {wp.id: set(wp.after) for wp in feature.wps.values()}
    assert {"WP06"} <= after["WP07"] and {"WP07"} <= after["WP08"]  # lane-f: WP06, WP07, WP08
    assert {"WP01", "WP02", "WP03", "WP04", "WP05"} <= after["WP06"]  # lane-f depends on lanes a-e
    assert "WP09" in after["WP10"] and "WP08" in after["WP09"]  # lane-g (WP09, WP10) after lane-f
    order = feature.schedule_order()
    for wp_id, befores in after.items():
        assert all(order.index(b) < order.index(wp_id) for b in befores)
