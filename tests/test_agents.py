"""The agent table: the exact command line of every agent and role, and the rules around it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kittydoit import outputs
from kittydoit.agents import ALIASES, ARGUMENT_LIMIT, BUILTIN, PromptTooLong, custom_agent

W = "/repo/.worktrees/001-x-WP01"
P = "/repo/.kittify/logs/001-x/WP01-implement.prompt.md"

EXPECTED = {
    ("claude-code", "implementation"): [
        "claude",
        "-p",
        "--output-format",
        "json",
        "--permission-mode",
        "bypassPermissions",
    ],
    ("claude-code", "review"): [
        "claude",
        "-p",
        "--output-format",
        "json",
        "--permission-mode",
        "dontAsk",
        "--allowedTools",
        "Read,Grep,Glob,Bash",
    ],
    ("codex", "implementation"): ["codex", "exec", "--json", "-s", "workspace-write", "-C", W, "-"],
    ("codex", "review"): ["codex", "exec", "--json", "-s", "read-only", "-C", W, "-"],
    ("copilot", "implementation"): [
        "copilot",
        "--allow-all-tools",
        "--output-format",
        "json",
        "--no-ask-user",
        "-C",
        W,
    ],
    ("copilot", "review"): [
        "copilot",
        "--allow-all-tools",
        "--deny-tool",
        "write",
        "--output-format",
        "json",
        "--no-ask-user",
        "-C",
        W,
    ],
    ("gemini", "implementation"): [
        "gemini",
        "--output-format",
        "json",
        "--approval-mode",
        "yolo",
        "--skip-trust",
    ],
    ("gemini", "review"): ["gemini", "--output-format", "json", "--approval-mode", "plan", "--skip-trust"],
    ("qwen", "implementation"): ["qwen", "--output-format", "json", "--approval-mode", "yolo"],
    ("qwen", "review"): ["qwen", "--output-format", "json", "--approval-mode", "plan"],
    ("opencode", "implementation"): ["opencode", "run", "--format", "json", "--auto", "--dir", W],
    ("opencode", "review"): ["opencode", "run", "--format", "json", "--auto", "--agent", "plan", "--dir", W],
    ("kilocode", "implementation"): ["kilo", "run", "--format", "json", "--auto", "--dir", W],
    ("kilocode", "review"): ["kilo", "run", "--format", "json", "--auto", "--agent", "plan", "--dir", W],
    ("augment", "implementation"): [
        "auggie",
        "--print",
        "--output-format",
        "json",
        "-w",
        W,
        "--instruction-file",
        P,
    ],
    ("augment", "review"): [
        "auggie",
        "--print",
        "--ask",
        "--output-format",
        "json",
        "-w",
        W,
        "--instruction-file",
        P,
    ],
    ("cursor", "implementation"): [
        "cursor-agent",
        "-p",
        "--output-format",
        "json",
        "--force",
        "--trust",
        "--workspace",
        W,
        "PROMPT",
    ],
    ("cursor", "review"): [
        "cursor-agent",
        "-p",
        "--output-format",
        "json",
        "--mode",
        "ask",
        "--trust",
        "--workspace",
        W,
        "PROMPT",
    ],
}


@pytest.mark.parametrize(("agent", "role"), sorted(EXPECTED))
def test_command_line_of_each_agent_and_role(agent: str, role: str) -> None:
    argv = BUILTIN[agent].argv(role, prompt="PROMPT", prompt_file=Path(P), workdir=Path(W), model=None)
    assert argv == EXPECTED[(agent, role)]


def test_the_table_holds_the_nine_agents_of_the_spec_kitty_design() -> None:
    assert list(BUILTIN) == [
        "claude-code",
        "codex",
        "copilot",
        "gemini",
        "qwen",
        "opencode",
        "kilocode",
        "augment",
        "cursor",
    ]
    assert ALIASES["claude"] == "claude-code" and ALIASES["auggie"] == "augment"


def test_stale_flags_of_the_earlier_orchestrator_are_gone() -> None:
    every = {part for spec in BUILTIN.values() for args in spec.args.values() for part in args}
    assert "--full-auto" not in every  # codex rejects it now
    assert BUILTIN["copilot"].binary == "copilot"  # not `gh copilot`
    assert "--skip-trust" in BUILTIN["gemini"].args["implementation"]


def test_prompt_goes_on_stdin_unless_the_cli_needs_a_file_or_an_argument() -> None:
    assert {a for a, s in BUILTIN.items() if s.prompt_via == "stdin"} == {
        "claude-code",
        "codex",
        "copilot",
        "gemini",
        "qwen",
        "opencode",
        "kilocode",
    }
    assert BUILTIN["augment"].stdin_path(Path(P)) is None  # prompt in --instruction-file, stdin closed
    assert BUILTIN["codex"].stdin_path(Path(P)) == Path(P)


def test_a_model_adds_the_model_option() -> None:
    argv = BUILTIN["codex"].argv(
        "implementation", prompt="x", prompt_file=Path(P), workdir=Path(W), model="o9"
    )
    assert argv[-2:] == ["-m", "o9"]
    argv = BUILTIN["claude-code"].argv(
        "review", prompt="x", prompt_file=Path(P), workdir=Path(W), model="opus"
    )
    assert argv[-2:] == ["--model", "opus"]


def test_claude_gets_is_sandbox_only_as_root() -> None:
    spec = BUILTIN["claude-code"]
    assert spec.environment({"A": "1"}, is_root=True) == {"A": "1", "IS_SANDBOX": "1"}
    assert spec.environment({"A": "1"}, is_root=False) == {"A": "1"}
    assert "IS_SANDBOX" not in BUILTIN["codex"].environment({}, is_root=True)


def test_an_argument_prompt_over_the_linux_limit_is_refused_clearly() -> None:
    with pytest.raises(PromptTooLong, match="cursor takes the prompt as one argument"):
        BUILTIN["cursor"].argv(
            "implementation",
            prompt="x" * (ARGUMENT_LIMIT + 1),
            prompt_file=Path(P),
            workdir=Path(W),
            model=None,
        )
    long = "x" * (ARGUMENT_LIMIT + 1)  # stdin agents do not care
    assert long not in BUILTIN["claude-code"].argv(
        "implementation", prompt=long, prompt_file=Path(P), workdir=Path(W), model=None
    )


def test_only_cursor_is_stopped_after_its_final_result() -> None:
    assert [a for a, s in BUILTIN.items() if s.is_finished is not None] == ["cursor"]


def test_custom_agent_fills_placeholders_and_may_use_a_known_format() -> None:
    spec = custom_agent(
        "mine",
        ["my-agent", "--dir", "{workdir}", "--in", "{prompt_file}", "-m", "{model}"],
        prompt_via="file",
        output="claude-code",
    )
    argv = spec.argv("review", prompt="x", prompt_file=Path(P), workdir=Path(W), model="big")
    assert argv == ["my-agent", "--dir", W, "--in", P, "-m", "big"]
    assert spec.output == "claude" and spec.failures == BUILTIN["claude-code"].failures
    plain = custom_agent("plain", ["tool"], prompt_via="argument")
    assert plain.output == "text" and plain.argv(
        "implementation", prompt="do it", prompt_file=Path(P), workdir=Path(W), model=None
    ) == ["tool", "do it"]
    assert outputs.parse(plain.output, "answer", "").final_text == "answer"
