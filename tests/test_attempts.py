"""Classifying agent attempts, and the retry, backoff and fallback rules of a phase."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kittydoit.agents import custom_agent
from kittydoit.attempts import Attempt, NeedsHuman, Outcome, PhaseRun, backoff, classify
from kittydoit.config import AgentSettings, parse_config
from kittydoit.outputs import AgentOutput
from kittydoit.process import ProcessResult
from kittydoit.state import AgentHealth, WPRecord


def agent(name: str = "coder", binary: str = "true") -> AgentSettings:
    return AgentSettings(spec=custom_agent(name, [binary]))


def result(code: int | None = 0, stdout: str = "", stderr: str = "", **flags: bool) -> ProcessResult:
    return ProcessResult(("x",), code, 1.5, Path("log"), stdout, stderr, **flags)


def judged(res: ProcessResult, *, need_answer: bool = True, **output: object) -> Attempt:
    out = AgentOutput(final_text=output.pop("final_text", res.stdout or None), **output)  # type: ignore[arg-type]
    return classify(agent(), res, out, need_answer=need_answer)


@pytest.mark.parametrize(
    ("res", "outcome", "evidence"),
    [
        (result(0, "done"), Outcome.SUCCESS, ""),
        (result(None, timed_out=True), Outcome.TIMEOUT, "still running after 2 s"),
        (result(None, "partial", finished_then_hung=True), Outcome.HUNG_AFTER_FINISH, "process still alive"),
        (result(1, "", "API Error: 429 Too Many Requests"), Outcome.RATE_LIMITED, "429 Too Many Requests"),
        (result(1, "", "Error: Not logged in. Run /login"), Outcome.AUTH_FAILED, "Not logged in"),
        (result(3, "", "Segmentation fault"), Outcome.CRASH, "Segmentation fault"),
        (result(0, ""), Outcome.UNUSABLE_OUTPUT, "no result"),
    ],
)
def test_classify(res: ProcessResult, outcome: Outcome, evidence: str) -> None:
    attempt = judged(res)
    assert attempt.outcome is outcome
    assert evidence in " ".join(attempt.evidence)
    assert bool(attempt) == (outcome in (Outcome.SUCCESS, Outcome.HUNG_AFTER_FINISH))


def test_structured_fields_decide_before_patterns() -> None:
    attempt = judged(result(1, "", "some unrelated text"), failure="rate_limit", error="api_error_status 429")
    assert attempt.outcome is Outcome.RATE_LIMITED
    assert attempt.evidence == ("api_error_status 429",)
    attempt = judged(result(0, "{}"), final_text=None, is_error=True, error="is_error: true")
    assert attempt.outcome is Outcome.CRASH and attempt.detail == "reported an error"


def test_a_rejected_command_line_is_not_worth_retrying() -> None:
    attempt = judged(result(2, "", "error: unexpected argument '--full-auto' found"), failure="usage",
                     error="unexpected argument '--full-auto' found")  # fmt: skip
    assert attempt.outcome is Outcome.CANNOT_RUN
    assert attempt.detail == "the agent rejected its command line (exit code 2)"


def test_text_implementer_may_print_nothing() -> None:
    assert judged(result(0, ""), need_answer=False).outcome is Outcome.SUCCESS


def make_run(tmp_path: Path, settings: dict[str, object], sleeps: list[float]) -> PhaseRun:
    clock = lambda: datetime.now(UTC)  # noqa: E731
    config = parse_config({"agents": {"a": {"command": ["true"]}}, "retry_backoff_seconds": 2, **settings})
    record = WPRecord(tmp_path / "wps" / "WP01.json", "WP01", "run-1", clock)
    health = AgentHealth(tmp_path / "health.json", clock)
    return PhaseRun(config, health, record, "implement", "log", sleep=sleeps.append)


def scripted(outcomes: dict[str, list[Outcome]]):  # type: ignore[no-untyped-def]
    calls: list[str] = []

    def attempt(settings: AgentSettings) -> Attempt:
        calls.append(settings.id)
        outcome = outcomes[settings.id].pop(0)
        return Attempt(settings.id, outcome, outcome.value, (f"{settings.id} said {outcome.value}",))

    return attempt, calls


def test_transient_failures_are_retried_with_doubling_backoff_then_fall_back(tmp_path: Path) -> None:
    sleeps: list[float] = []
    run = make_run(tmp_path, {"max_retries": 2}, sleeps)
    attempt, calls = scripted({"a": [Outcome.CRASH, Outcome.TIMEOUT, Outcome.CRASH], "b": [Outcome.SUCCESS]})
    done = run.run([agent("a"), agent("b")], attempt)
    assert done.agent == "b"
    assert calls == ["a", "a", "a", "b"]
    assert sleeps == [2.0, 4.0]
    record = run.record.data
    assert (record["retries"], record["fallbacks"]) == (2, 1)
    assert [a["class"] for a in record["attempts"]] == ["crash", "timeout", "crash", "success"]


def test_auth_failure_and_no_change_are_not_retried_with_that_agent(tmp_path: Path) -> None:
    run = make_run(tmp_path, {}, [])
    attempt, calls = scripted({"a": [Outcome.AUTH_FAILED], "b": [Outcome.NO_CHANGE], "c": [Outcome.SUCCESS]})
    assert run.run([agent("a"), agent("b"), agent("c")], attempt).agent == "c"
    assert calls == ["a", "b", "c"]
    health = run.health.snapshot()
    assert health["a"]["last_failure"]["class"] == "auth_failed" and health["a"]["cooling_down_until"]
    assert health["c"]["consecutive_failures"] == 0 and health["c"]["last_success"]


def test_rate_limited_agent_cools_down_for_every_wp(tmp_path: Path) -> None:
    run = make_run(tmp_path, {"max_retries": 0, "rate_limit_cooldown_seconds": 300}, [])
    attempt, calls = scripted({"a": [Outcome.RATE_LIMITED], "b": [Outcome.SUCCESS, Outcome.SUCCESS]})
    run.run([agent("a"), agent("b")], attempt)
    other_wp = make_run(tmp_path, {"max_retries": 0}, [])  # another WP, same health file
    assert other_wp.run([agent("a"), agent("b")], attempt).agent == "b"
    assert calls == ["a", "b", "b"]


@pytest.mark.parametrize(("strategy", "expected"), [("same_agent", ["a", "a", "a", "a"]), ("fail", ["a"])])
def test_strategies_without_fallback(tmp_path: Path, strategy: str, expected: list[str]) -> None:
    run = make_run(tmp_path, {"fallback_strategy": strategy}, [])
    attempt, calls = scripted({"a": [Outcome.CRASH] * 4, "b": [Outcome.SUCCESS]})
    with pytest.raises(NeedsHuman, match=r"every agent failed \(a"):
        run.run([agent("a"), agent("b")], attempt)
    assert calls == expected


def test_missing_binary_is_skipped_and_named(tmp_path: Path) -> None:
    run = make_run(tmp_path, {}, [])
    attempt, calls = scripted({"b": [Outcome.CRASH] * 4})
    with pytest.raises(NeedsHuman) as caught:
        run.run([agent("a", binary="no-such-agent-binary"), agent("b")], attempt)
    assert calls == ["b"] * 4
    message = str(caught.value)
    assert "a not_installed: 'no-such-agent-binary' is not installed" in message
    assert "b (4 attempts) crash: crash [b said crash]" in message


def test_rate_limited_agent_is_retried_after_its_cooldown_when_nobody_else_can(tmp_path: Path) -> None:
    sleeps: list[float] = []
    run = make_run(tmp_path, {"max_retries": 1, "rate_limit_cooldown_seconds": 30}, sleeps)
    attempt, calls = scripted({"a": [Outcome.RATE_LIMITED, Outcome.SUCCESS]})
    assert run.run([agent("a")], attempt).agent == "a"
    assert calls == ["a", "a"]
    assert len(sleeps) == 1 and 25 < sleeps[0] <= 30


def test_backoff_is_capped() -> None:
    config = parse_config({"agents": {"a": {"command": ["true"]}}, "retry_backoff_seconds": 10})
    assert [backoff(config, n) for n in (1, 2, 3, 6)] == [10, 20, 40, 300]
