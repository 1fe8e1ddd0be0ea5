"""Reading .kittify/agents.yaml: spec-kitty's own file, aliases, the scalar form, every problem at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, make_repo

from kittydoit.agents import BUILTIN
from kittydoit.config import load_config, parse_config
from kittydoit.errors import ConfigError

SPEC_KITTY_0_16 = """\
version: "1.0"
defaults:
  implementation: [claude-code, codex]
  review: [codex, claude-code]
agents:
  claude-code: {enabled: true, roles: [implementation, review], priority: 10, max_concurrent: 2, timeout_seconds: 600}
  codex: false
fallback_strategy: next_in_list
max_retries: 3
single_agent_mode: {enabled: false, agent: null}
global_concurrency: 5
global_timeout: 3600
"""


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / ".kittify").mkdir(exist_ok=True)
    (tmp_path / ".kittify" / "agents.yaml").write_text(text)
    return load_config(tmp_path)


def test_the_file_spec_kitty_0_16_writes_is_accepted(tmp_path: Path) -> None:
    config = load(tmp_path, SPEC_KITTY_0_16)
    claude, codex = config.agents["claude-code"], config.agents["codex"]
    assert (
        claude.spec is BUILTIN["claude-code"]
        and claude.max_concurrent == 2
        and config.timeout_for(claude) == 600
    )
    assert codex.enabled is False  # the scalar form
    assert [a.id for a in config.candidates("review")] == ["claude-code"]
    assert config.timeout_for(codex) == 3600 and config.limit_for(codex) == 5


def test_aliases_name_the_same_agents() -> None:
    config = parse_config(
        {"agents": {"claude": True, "auggie": {"roles": ["review"]}}, "defaults": {"review": ["auggie"]}}
    )
    assert set(config.agents) == {"claude-code", "augment"}
    assert config.defaults["review"] == ("augment",)


def test_defaults_order_wins_and_priority_breaks_ties_among_the_rest() -> None:
    config = parse_config(
        {
            "agents": {"cursor": True, "gemini": True, "codex": {"priority": 95}, "qwen": True},
            "defaults": {"implementation": ["cursor"]},
        }
    )
    # cursor as listed; then gemini 40 and qwen 50 (spec-kitty's defaults), then codex at its own 95
    assert [a.id for a in config.candidates("implementation")] == ["cursor", "gemini", "qwen", "codex"]


def test_every_problem_is_reported_at_once_naming_key_and_allowed_values() -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(
            {
                "agentz": {},
                "agents": {
                    "claud-code": True,
                    "codex": {
                        "max_concurent": 2,
                        "max_concurrent": 0,
                        "timeout_seconds": 0,
                        "roles": ["build"],
                        "enabled": "yes",
                    },
                    "mine": {"command": ["x"], "output": "yaml", "prompt": "pipe"},
                },
                "fallback_strategy": "random",
                "max_retries": -1,
                "global_concurrency": 0,
                "global_timeout": "soon",
                "single_agent_mode": {"enabled": True, "agent": "gemini"},
            }
        )
    text = str(error.value)
    expected = [
        "agentz: unknown key; did you mean 'agents'?",
        "agents.claud-code: unknown agent; did you mean 'claude-code'?",
        "agents.codex.max_concurent: unknown key; did you mean 'max_concurrent'?",
        "agents.codex.max_concurrent: must be >= 1, not 0",
        "agents.codex.timeout_seconds: must be >= 1, not 0",
        "agents.codex.roles: must be a list of implementation, review",
        "agents.codex.enabled: must be true or false",
        "agents.mine.output: 'yaml' is not one of text, claude-code, codex",
        "agents.mine.prompt: 'pipe' is not one of stdin, argument, file",
        "fallback_strategy: 'random' is not one of next_in_list, same_agent, fail",
        "max_retries: must be >= 0, not -1",
        "global_concurrency: must be >= 1, not 0",
        "global_timeout: must be a whole number >= 1, not 'soon'",
        "single_agent_mode.agent: 'gemini' is not configured under agents",
    ]
    for line in expected:
        assert line in text
    assert text.startswith(f"{len(text.splitlines()) - 1} problems:")


def test_single_agent_mode_naming_a_disabled_agent_and_no_agent_enabled() -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"agents": {"codex": False}, "single_agent_mode": {"enabled": True, "agent": "codex"}})
    assert "single_agent_mode.agent: 'codex' is disabled" in str(error.value)
    assert "agents: no agent is enabled" in str(error.value)
    with pytest.raises(ConfigError, match="no agent is configured"):
        parse_config({"max_retries": 1})


def test_single_agent_mode_uses_one_agent_for_both_roles() -> None:
    config = parse_config(
        {
            "agents": {"claude-code": True, "codex": True},
            "single_agent_mode": {"enabled": True, "agent": "claude", "review_delay_seconds": 0},
        }
    )
    assert [a.id for a in config.candidates("review")] == ["claude-code"] and config.review_delay_seconds == 0


def test_a_config_mistake_stops_a_run_with_exit_3_and_is_one_warning_line_for_readers(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    (repo.root / ".kittify" / "agents.yaml").write_text(
        "agents:\n  codex: {max_concurrent: -1}\nmax_retries: x\n"
    )
    git(repo.root, "commit", "-qam", "broken settings")
    result = repo.kittydoit("run")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "agents.codex.max_concurrent: must be >= 1, not -1" in result.stderr
    assert "max_retries: must be a whole number >= 0, not 'x'" in result.stderr
    assert git(repo.root, "status", "--porcelain", "--ignored") == "" and repo.calls() == []

    listed = repo.kittydoit("list")  # reading the feature needs no agents: one line says what is wrong
    assert listed.returncode == 0 and listed.stdout.startswith("WP01        Title of WP01")
    assert listed.stderr.splitlines() == [
        "kittydoit: .kittify/agents.yaml: 2 problems: agents.codex.max_concurrent: must be >= 1, not -1; "
        "max_retries: must be a whole number >= 0, not 'x' (a run refuses to start until it is fixed)"
    ]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid YAML \\(line 3"):
        load(tmp_path, "agents:\n  codex: [\n")


def test_python_m_kittydoit_agents_lists_custom_agents(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    result = subprocess.run(
        [sys.executable, "-m", "kittydoit", "agents"],
        cwd=repo.root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "fake-coder (fake-coder): installed" in result.stdout and "custom, enabled" in result.stdout
    assert (
        "cursor (Cursor CLI): not installed" in result.stdout
        or "cursor (Cursor CLI): installed" in result.stdout
    )
