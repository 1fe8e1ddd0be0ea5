"""Parsing what agents print into one AgentOutput: recorded real outputs of each CLI, and edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kittydoit import outputs
from kittydoit.agents import BUILTIN

RECORDED = Path(__file__).with_name("recorded")  # written by `python -m tests.agent_clis.record`
ANSWER = "Done: wrote standin.txt as the specification asks."


def recorded(agent: str, case: str) -> outputs.AgentOutput:
    data = json.loads((RECORDED / agent / f"{case}.json").read_text())
    return BUILTIN[agent].parse_output(data["stdout"], data["stderr"], data["returncode"])


SUCCESSES = ["claude-code", "codex", "copilot", "gemini", "qwen", "opencode", "kilocode"]


@pytest.mark.parametrize("agent", SUCCESSES)
def test_a_real_successful_run_gives_the_final_answer_and_session(agent: str) -> None:
    output = recorded(agent, "implement")
    assert output and output.final_text == ANSWER
    assert output.session_id and output.is_final and not output.is_error and output.failure is None
    review = recorded(agent, "review")
    verdict = outputs.find_verdict(review.final_text)
    assert verdict is not None and verdict.approved


@pytest.mark.parametrize(
    ("agent", "tokens", "cost"),
    [
        ("claude-code", (240, 60), 0.00216),
        ("codex", (240, 60), None),
        ("gemini", (360, 90), None),
        ("qwen", (240, 60), None),
        ("opencode", (240, 60), 0.0),
    ],
)
def test_tokens_and_cost_are_read_where_the_agent_reports_them(
    agent: str, tokens: tuple[int, int], cost: float | None
) -> None:
    output = recorded(agent, "implement")
    assert (output.input_tokens, output.output_tokens) == tokens
    assert output.cost_usd == cost


@pytest.mark.parametrize("agent", ["claude-code", "codex", "copilot"])
def test_a_real_rate_limit_is_classified_from_structured_fields(agent: str) -> None:
    output = recorded(agent, "rate-limit")
    assert not output and output.rate_limited and output.status_code == 429
    assert output.final_text is None and output.is_error
    assert any("429" in line for line in output.evidence)


@pytest.mark.parametrize("agent", ["claude-code", "copilot", "gemini", "qwen", "augment"])
def test_a_real_missing_login_is_an_auth_failure(agent: str) -> None:
    output = recorded(agent, "auth")
    assert not output and output.auth_failed and not output.rate_limited
    assert output.evidence


def test_gemini_auth_failure_comes_from_its_exit_code_and_stderr_json() -> None:
    output = recorded("gemini", "auth")
    assert output.evidence[0] == "exit code 41" and "Auth method" in (output.error or "")


@pytest.mark.parametrize(
    "agent", ["claude-code", "codex", "copilot", "gemini", "qwen", "opencode", "kilocode", "augment"]
)
def test_a_real_rejected_flag_is_a_usage_failure(agent: str) -> None:
    output = recorded(agent, "unknown-flag")
    assert output.failure == outputs.USAGE and not output.rate_limited


def test_a_successful_answer_that_mentions_429_is_not_a_failure() -> None:
    stdout = json.dumps(
        {"type": "result", "is_error": False, "result": "Handled HTTP 429 rate limit errors."}
    )
    output = outputs.parse("claude", stdout, "", returncode=0, signals=BUILTIN["claude-code"].failures)
    assert output and output.failure is None


def test_claude_error_with_success_subtype_is_an_error() -> None:
    stdout = json.dumps(
        {
            "type": "result",
            "subtype": "success",
            "is_error": True,
            "result": "API Error: 500",
            "api_error_status": 500,
            "session_id": "s",
        }
    )
    output = outputs.parse("claude", stdout, "", returncode=1)
    assert output.is_error and output.failure == outputs.API and output.final_text is None


def test_opencode_error_event_carries_retryable_and_status() -> None:
    events = [
        {"type": "step_start", "sessionID": "ses_1", "part": {}},
        {
            "type": "error",
            "sessionID": "ses_1",
            "error": {
                "name": "APIError",
                "data": {"message": "Too Many Requests", "isRetryable": True, "statusCode": 429},
            },
        },
    ]
    output = outputs.parse("opencode", "\n".join(json.dumps(e) for e in events), "", returncode=1)
    assert output.rate_limited and output.retryable is True and output.status_code == 429
    assert output.session_id == "ses_1" and output.evidence == ("error APIError: Too Many Requests",)


def test_opencode_answer_is_the_last_message_and_tool_steps_are_not_final() -> None:
    events = [
        {"type": "text", "part": {"messageID": "m1", "text": "Let me look."}},
        {
            "type": "step_finish",
            "part": {"reason": "tool-calls", "tokens": {"input": 5, "output": 1}, "cost": 0.01},
        },
    ]
    first = outputs.parse("opencode", "\n".join(json.dumps(e) for e in events), "")
    assert not first.is_final
    events += [
        {"type": "text", "part": {"messageID": "m2", "text": "All "}},
        {"type": "text", "part": {"messageID": "m2", "text": "done."}},
        {
            "type": "step_finish",
            "part": {"reason": "stop", "tokens": {"input": 7, "output": 2}, "cost": 0.02},
        },
    ]
    output = outputs.parse("opencode", "\n".join(json.dumps(e) for e in events), "")
    assert output.final_text == "All done." and output.is_final
    assert (output.input_tokens, output.output_tokens, output.cost_usd) == (12, 3, pytest.approx(0.03))


@pytest.mark.parametrize(
    ("code", "kind"), [(41, outputs.AUTH), (53, outputs.LIMIT), (54, outputs.TOOL), (1, outputs.OTHER)]
)
def test_gemini_exit_codes_classify_failures(code: int, kind: str) -> None:
    output = outputs.parse(
        "gemini", "", "something went wrong\n", returncode=code, signals=BUILTIN["gemini"].failures
    )
    assert output.failure == kind


def test_gemini_42_is_bad_input_not_a_rate_limit() -> None:
    output = outputs.parse("gemini", "", "", returncode=42, signals=BUILTIN["gemini"].failures)
    assert output.failure == outputs.USAGE and not output.rate_limited


def test_gemini_error_json_on_stderr_with_429() -> None:
    error = '{"type": "Error", "message": "Quota exceeded", "code": 429}'
    stderr = f'Loaded cached credentials.\n{{\n  "error": {error}\n}}\n'
    output = outputs.parse("gemini", "", stderr, returncode=1, signals=BUILTIN["gemini"].failures)
    assert output.rate_limited and output.error == "Quota exceeded"


def test_qwen_wall_time_limit_exit_55() -> None:
    output = outputs.parse("qwen", "", "", returncode=55, signals=BUILTIN["qwen"].failures)
    assert output.failure == outputs.LIMIT


def test_cursor_result_and_final_result_detection() -> None:
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "Done.",
        "session_id": "c1",
        "duration_ms": 1200,
    }
    assert not outputs.has_final_result("cursor", "")
    assert not outputs.has_final_result("cursor", json.dumps(result)[:40])  # cut mid-object
    assert outputs.has_final_result("cursor", json.dumps(result) + "\n")
    finished = BUILTIN["cursor"].is_finished
    assert finished is not None and finished(json.dumps(result) + "\n")
    output = outputs.parse(
        "cursor", json.dumps(result) + "\n", "", returncode=None
    )  # stopped after the result
    assert output and output.final_text == "Done." and output.session_id == "c1"


def test_cursor_failure_without_json_is_classified_from_stderr() -> None:
    output = outputs.parse(
        "cursor", "", "Error: Workspace Trust Required\n", returncode=1, signals=BUILTIN["cursor"].failures
    )
    assert output.failure == outputs.CONFIG and output.evidence == ("Error: Workspace Trust Required",)


def test_text_output_is_the_answer_and_an_unknown_failure_is_other() -> None:
    assert outputs.parse("text", "hello\n", "").final_text == "hello\n"
    failed = outputs.parse("text", "partial\n", "boom\n", returncode=3)
    assert failed.failure == outputs.OTHER and failed.evidence == ("boom",)


def test_a_stopped_run_without_an_error_is_not_classified() -> None:
    output = outputs.parse("text", "", "", returncode=None)
    assert output.failure is None and output.final_text is None
