"""Which agent runs: installed, preferred, under its max_concurrent, and never its own reviewer silently."""

from __future__ import annotations

import json
import sys
import time

import pytest
from conftest import FAKE_AGENT, FEATURE, Repo, git, make_repo

pytestmark = pytest.mark.slow


def command(repo: Repo, role: str) -> str:
    parts = [sys.executable, str(FAKE_AGENT), role, "--state", str(repo.state), "--plan", str(repo.plan_file)]
    return json.dumps(parts)


def configure(repo: Repo, text: str) -> None:
    (repo.root / ".kittify" / "agents.yaml").write_text(text)
    git(repo.root, "commit", "-qam", "agents")


def marker(repo: Repo, wp: str) -> dict:
    return json.loads(
        (repo.root / ".kittify/kittydoit" / FEATURE / "markers" / f"{wp}-review.json").read_text()
    )


def test_an_agent_that_is_not_installed_is_passed_over(tmp_path) -> None:  # type: ignore[no-untyped-def]
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    configure(
        repo,
        (
            "agents:\n"
            "  missing-coder: {command: [kittydoit-no-such-agent, --go], roles: [implementation]}\n"
            f"  fake-coder: {{command: {command(repo, 'implement')}, roles: [implementation]}}\n"
            f"  fake-reviewer: {{command: {command(repo, 'review')}, roles: [review]}}\n"
            "defaults: {implementation: [missing-coder, fake-coder], review: [fake-reviewer]}\n"
        ),
    )
    result = repo.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'agent: "fake-coder"' in repo.wp_file("WP01").read_text()


def test_single_agent_mode_reviews_with_the_same_agent_and_says_so(tmp_path) -> None:  # type: ignore[no-untyped-def]
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    # one command for both roles: {role} is implementation or review; the fake agent wants implement or review
    script = (
        f'role=$1; [ "$role" = implementation ] && role=implement; exec {sys.executable} {FAKE_AGENT} '
        f'"$role" --state {repo.state} --plan {repo.plan_file}'
    )
    solo = ["sh", "-c", script, "solo", "{role}"]
    configure(
        repo,
        (
            f"agents:\n  solo: {{command: {json.dumps(solo)}}}\n"
            "single_agent_mode: {enabled: true, agent: solo, review_delay_seconds: 0}\n"
        ),
    )
    result = repo.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    log = (repo.root / ".kittify/logs" / FEATURE / "WP01-review.log").read_text()
    assert "single-agent mode: solo reviews its own work (no other reviewer is configured); pausing 0 s" in log
    assert "WP01 was reviewed by its own implementer, solo (single-agent mode)" in result.stdout
    assert "single-agent mode: WP01 reviewed by their own implementer" in result.stdout
    record = marker(repo, "WP01")
    assert record["single_agent"] is True and record["agent"] == record["implementer"] == "solo"


def test_two_agents_never_review_their_own_work(tmp_path) -> None:  # type: ignore[no-untyped-def]
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    script = (
        f'role=$1; [ "$role" = implementation ] && role=implement; exec {sys.executable} {FAKE_AGENT} '
        f'"$role" --state {repo.state} --plan {repo.plan_file}'
    )
    configure(
        repo,
        (
            f"agents:\n  one: {{command: {json.dumps(['sh', '-c', script, 'one', '{role}'])}}}\n"
            f"  two: {{command: {json.dumps(['sh', '-c', script, 'two', '{role}'])}}}\n"
            "defaults: {implementation: [one, two], review: [one, two]}\n"
        ),
    )
    result = repo.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    record = marker(repo, "WP01")
    assert (record["implementer"], record["agent"], record["single_agent"]) == ("one", "two", False)
    assert "single-agent" not in result.stdout


def intervals(repo: Repo, role: str) -> list[tuple[float, float]]:
    calls = repo.calls()
    starts = {(c["wp"], c["call"]): c["start"] for c in calls if "start" in c and c["role"] == role}
    ends = {(c["wp"], c["call"]): c["end"] for c in calls if "end" in c and c["role"] == role}
    return sorted((starts[k], ends[k]) for k in starts)


@pytest.mark.parametrize("second_coder", [False, True])
def test_max_concurrent_holds_across_worker_processes(tmp_path, second_coder: bool) -> None:  # type: ignore[no-untyped-def]
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": []})
    repo.plan({wp: {"implement": [{"sleep": 1.0}]} for wp in ("WP01", "WP02")})
    other = (
        f"  coder-b: {{command: {command(repo, 'implement')}, roles: [implementation]}}\n"
        if second_coder
        else ""
    )
    configure(
        repo,
        (
            "agents:\n"
            f"  coder-a: {{command: {command(repo, 'implement')}, roles: [implementation], max_concurrent: 1}}\n"
            + other
            + f"  fake-reviewer: {{command: {command(repo, 'review')}, roles: [review]}}\n"
            f"defaults: {{implementation: [coder-a{', coder-b' if second_coder else ''}], review: [fake-reviewer]}}\n"
        ),
    )
    result = repo.kittydoit("-n", "2", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    (_, a_end), (b_start, _) = intervals(repo, "implement")
    overlapped = b_start < a_end
    assert overlapped is second_coder  # one slot: the second WP waits; a second coder: it takes that one
    agents = {repo.wp_file(wp).read_text().split('agent: "')[1].split('"')[0] for wp in ("WP01", "WP02")}
    assert agents == ({"coder-a", "coder-b"} if second_coder else {"coder-a"})


def test_global_concurrency_caps_the_agents_running_at_once_whichever_they_are(tmp_path) -> None:  # type: ignore[no-untyped-def]
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": [], "WP03": []})
    repo.plan({wp: {"implement": [{"sleep": 0.5}], "review": [{"sleep": 0.5}]} for wp in ("WP01", "WP02", "WP03")})
    configure(
        repo,
        (
            "agents:\n"
            f"  coder-a: {{command: {command(repo, 'implement')}, roles: [implementation]}}\n"
            f"  coder-b: {{command: {command(repo, 'implement')}, roles: [implementation]}}\n"
            f"  fake-reviewer: {{command: {command(repo, 'review')}, roles: [review]}}\n"
            "defaults: {implementation: [coder-a, coder-b], review: [fake-reviewer]}\n"
            "global_concurrency: 2\n"
        ),
    )
    result = repo.kittydoit("-n", "3", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    spans = intervals(repo, "implement") + intervals(repo, "review")
    assert len(spans) == 6
    most = max(sum(start <= t < end for start, end in spans) for t, _ in spans)
    assert most == 2  # three workers, three agents able to run, but two at once


def test_an_agent_in_cursors_format_that_hangs_after_its_result_is_stopped_and_its_result_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    result_line = json.dumps({"type": "result", "subtype": "success", "is_error": False, "session_id": "c1",
                              "result": "Looks right.\nVERDICT: APPROVED\nNo notes."}) + "\n"  # fmt: skip
    repo.plan({"WP01": {"review": [{"stdout": result_line, "hang": True}]}})
    configure(repo, (
        "agents:\n"
        f"  fake-coder: {{command: {command(repo, 'implement')}, roles: [implementation]}}\n"
        f"  hanging-reviewer: {{command: {command(repo, 'review')}, roles: [review], output: cursor}}\n"
        "global_timeout: 120\n"
    ))  # fmt: skip
    started = time.monotonic()
    result = repo.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 60  # stopped once the result was out, not at the timeout
    assert repo.lane("WP01") == "done" and 'reviewed_by: "hanging-reviewer"' in repo.wp_file("WP01").read_text()
