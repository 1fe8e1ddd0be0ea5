"""Failures, retries, fallback, escalation, run state, status and abort, through whole runs with fake agents."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import FEATURE, Repo, make_repo
from test_process import wait_gone
from test_run import agent_pids, wait_for

pytestmark = pytest.mark.slow

RATE_LIMIT = {"stderr": "API Error: 429 Too Many Requests (rate limit)\n", "exit": 1}
NOT_LOGGED_IN = {"stderr": "Error: Not logged in. Please run /login\n", "exit": 1}


def state(repo: Repo) -> dict:
    return json.loads((repo.root / ".kittify" / "orchestration-state.json").read_text())["runs"][FEATURE]


def agents_called(repo: Repo, wp: str, role: str) -> list[str]:
    return [c["agent"] for c in repo.calls() if "start" in c and c["wp"] == wp and c["role"] == role]


def two_coders(tmp_path: Path, wps: dict, extra: str = "") -> Repo:
    return make_repo(tmp_path / "repo", wps, implementers=("coder-a", "coder-b"), config_extra=extra)


def test_rate_limit_falls_back_at_once_and_other_wps_skip_the_cooling_agent(tmp_path: Path) -> None:
    repo = two_coders(tmp_path, {"WP01": [], "WP02": ["WP01"]}, "max_retries: 1\nrate_limit_cooldown_seconds: 600\n")
    repo.plan({"WP01": {"implement@coder-a": [RATE_LIMIT]}})
    result = repo.kittydoit("-n", "2", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert agents_called(repo, "WP01", "implement") == ["coder-a", "coder-b"]  # no waiting for the cooldown
    assert agents_called(repo, "WP02", "implement") == ["coder-b"]  # coder-a was cooling down for every WP
    run = state(repo)
    wp01 = run["wps"]["WP01"]
    assert [a["class"] for a in wp01["attempts"] if a["phase"] == "implement"] == ["rate_limited", "success"]
    assert "429 Too Many Requests" in " ".join(wp01["attempts"][0]["evidence"])
    assert (wp01["retries"], wp01["fallbacks"], wp01["review_cycles"]) == (0, 1, 1)
    health = run["agents"]["coder-a"]
    assert health["consecutive_failures"] == 1 and health["cooling_down_until"]
    assert run["agents"]["coder-b"]["last_success"]
    assert run["run"]["status"] == "completed"
    assert all(wp["status"] == "done" for wp in run["wps"].values())


def test_auth_failure_is_not_retried_and_falls_back(tmp_path: Path) -> None:
    repo = two_coders(tmp_path, {"WP01": []})
    repo.plan({"WP01": {"implement@coder-a": [NOT_LOGGED_IN]}})
    result = repo.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert agents_called(repo, "WP01", "implement") == ["coder-a", "coder-b"]
    attempts = state(repo)["wps"]["WP01"]["attempts"]
    assert attempts[0]["class"] == "auth_failed" and "Not logged in" in attempts[0]["evidence"][0]
    text = repo.wp_file("WP01").read_text()
    assert 'agent: "coder-a"' in text  # the lane moved to doing with the first agent...
    assert "– coder-b – shell_pid=" in text and "lane=for_review" in text  # ...and coder-b delivered


def test_exhausted_options_call_for_a_human_naming_every_agent(tmp_path: Path) -> None:
    repo = two_coders(tmp_path, {"WP01": [], "WP02": ["WP01"], "WP03": []}, "max_retries: 1\n")
    repo.plan({"WP01": {"implement@coder-a": [{"exit": 2, "stderr": "panic: nil map\n"}],
                        "implement@coder-b": [NOT_LOGGED_IN]}})  # fmt: skip
    result = repo.kittydoit("-n", "2", "run")
    assert result.returncode == 1
    out = result.stdout
    assert (
        "WP01 needs a human: implement failed, every agent failed (coder-a (2 attempts) crash: exit code 2 "
        "[panic: nil map]; coder-b auth_failed: authentication failed [Error: Not logged in. Please run /login])"
    ) in out
    assert "Logs: .kittify/logs/001-demo/WP01-implement.log" in out
    assert "`doit forget WP01` to start WP01 over" in out
    assert "summary: 1/3 done, 1 failed, 1 blocked" in out
    assert out.count("  failed  WP01") == 1 and "  blocked WP02: waits for WP01" in out
    run = state(repo)
    assert run["run"]["status"] == "failed"
    assert run["wps"]["WP02"]["status"] == "blocked" and run["wps"]["WP01"]["status"] == "failed"
    assert repo.lane("WP01") == "planned"


def test_timeouts_are_retried(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []}, config_extra="global_timeout: 1\nmax_retries: 1\n")
    repo.plan({"WP01": {"implement": [{"sleep": 30}, {}]}})
    result = repo.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [a["class"] for a in state(repo)["wps"]["WP01"]["attempts"]][:2] == ["timeout", "success"]


def test_review_cycles_and_retries_are_counted_apart(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []}, config_extra="max_retries: 1\nreview_cycles: 2\n")
    repo.plan({"WP01": {"review": [{"stdout": "hmm\n"}, {"verdict": "CHANGES_REQUESTED", "say": "Fix."}, {}]}})
    result = repo.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    wp01 = state(repo)["wps"]["WP01"]
    assert (wp01["retries"], wp01["review_cycles"], wp01["fallbacks"]) == (1, 2, 0)
    assert [a["class"] for a in wp01["attempts"] if a["phase"] == "review"] == [
        "unusable_output", "success", "success"
    ]  # fmt: skip


def test_corrupt_state_file_is_set_aside_not_a_crash(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    state_file = repo.root / ".kittify" / "orchestration-state.json"
    state_file.write_text("{ not json")
    result = repo.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "orchestration-state.json was unreadable" in result.stderr
    assert list(state_file.parent.glob("orchestration-state.json.corrupt-*"))
    assert state(repo)["wps"]["WP01"]["status"] == "done"
    assert (repo.root / ".kittify" / "orchestration-state.json.prev").exists()


def test_status_shows_the_active_wp_while_running_and_the_outcome_after(diamond: Repo) -> None:
    diamond.plan({"WP01": {"implement": [{"sleep": 3}]}})
    run = diamond.popen("-n", "2", "run")
    try:
        wait_for(lambda: diamond.started() == ["WP01"], what="WP01's agent")
        time.sleep(0.3)
        shown = diamond.kittydoit("status", check=True).stdout
        assert "running for" in shown and "0/4 done · 1 running · 3 pending" in shown
        assert "WP01  Title of WP01" in shown and "implementing" in shown and "fake-coder" in shown
        assert "attempt 1" in shown
        data = json.loads(diamond.kittydoit("status", "--json", check=True).stdout)
        assert data["running"] is True and list(data["active"]) == ["WP01"]
        assert data["active"]["WP01"]["phase"] == "implementing"
    finally:
        run.communicate(timeout=60)
    after = diamond.kittydoit("status", check=True).stdout
    assert "completed" in after and "4/4 done" in after


def test_abort_from_another_terminal_stops_everything_and_the_next_run_completes(diamond: Repo) -> None:
    diamond.plan({"WP02": {"implement": [{"sleep": 60, "child": 60}, {}]},
                  "WP03": {"implement": [{"sleep": 60, "child": 60}, {}]}})  # fmt: skip
    run = diamond.popen("-n", "2", "run")
    wait_for(lambda: {"WP02", "WP03"} <= set(diamond.started()), what="WP02 and WP03")
    wait_for(lambda: len((diamond.state / "children.txt").read_text().split()) == 2
             if (diamond.state / "children.txt").exists() else False, what="grandchildren")  # fmt: skip
    aborted = diamond.kittydoit("abort", check=True)
    assert "stopped the run of 001-demo" in aborted.stdout
    assert "kept 3 worktree(s)" in aborted.stdout
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, out + err
    assert wait_gone(agent_pids(diamond), seconds=20) == []
    recorded = state(diamond)
    assert recorded["run"]["status"] == "aborted" and "kittydoit abort" in recorded["run"]["reason"]
    assert recorded["wps"]["WP01"]["status"] == "done"
    shown = diamond.kittydoit("status", check=True).stdout
    assert "aborted (aborted with `kittydoit abort`)" in shown and "interrupted:" in shown
    count = len(diamond.started())
    result = diamond.kittydoit("-n", "2", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(set(diamond.started()[count:])) == ["WP02", "WP03", "WP04"]
    assert "WP01" not in diamond.started()[count:]


def test_abort_when_nothing_runs(diamond: Repo) -> None:
    result = diamond.kittydoit("abort", check=True)
    assert "no kittydoit run is going for 001-demo" in result.stdout
