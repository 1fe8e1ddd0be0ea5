"""The settings a repository works with: its agents.yaml, else exactly what `kittydoit init` would write."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from test_init import fake_clis, spec_repo

from kittydoit import scaffold
from kittydoit.config import load_config
from kittydoit.settings import one_line, resolve

INIT_HINT = "; `kittydoit init` writes this as a file you can edit"


def files(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


def test_without_a_file_the_config_is_the_one_init_would_write_and_nothing_is_written(tmp_path: Path) -> None:
    env = fake_clis(tmp_path / "bin", claude="2.1.331", codex="codex-cli 0.169.0", gemini="0.61.0")
    root = spec_repo(tmp_path / "repo")
    before = files(root)
    found = resolve(root, env)
    assert files(root) == before and found.problem is None and found.source == "defaults"
    assert found.note == f"no .kittify/agents.yaml: using claude-code, codex and gemini as found on PATH{INIT_HINT}"
    written = spec_repo(tmp_path / "written")
    scaffold.init(written, env=env)
    assert dataclasses.replace(load_config(written), path=None) == found.config  # one source of the defaults
    assert [a.id for a in found.config.candidates("review")] == ["codex", "claude-code", "gemini"]


def test_one_agent_reviews_its_own_work_as_init_would_set_it(tmp_path: Path) -> None:
    found = resolve(spec_repo(tmp_path / "repo"), fake_clis(tmp_path / "bin", codex="codex-cli 0.169.0"))
    assert found.config.single_agent == "codex"
    own = "codex reviewing its own work"
    assert found.note == f"no .kittify/agents.yaml: using codex as found on PATH, {own}{INIT_HINT}"


def test_spec_kitty_config_preferences_count_and_listed_agents_not_installed_are_named(tmp_path: Path) -> None:
    root = spec_repo(tmp_path / "repo")
    (root / ".kittify").mkdir()
    (root / ".kittify" / "config.yaml").write_text(
        "agents:\n  available: [claude, codex]\n  selection: {preferred_implementer: codex}\n"
    )
    found = resolve(root, fake_clis(tmp_path / "bin", claude="2.1.331"))
    assert [a.id for a in found.config.candidates("implementation")] == ["codex", "claude-code"]
    assert found.note == (
        "no .kittify/agents.yaml: using claude-code as found on PATH (codex listed in .kittify/config.yaml, "
        f"not installed){INIT_HINT}"
    )
    alone = resolve(root, fake_clis(tmp_path / "empty"))
    assert alone.problem is not None and not alone.config.agents
    assert "no agent CLI found on PATH to run with (claude-code and codex listed in .kittify/config.yaml" in str(
        alone.problem
    )


def test_no_agent_installed_is_a_problem_that_says_how_to_install_each(tmp_path: Path) -> None:
    found = resolve(spec_repo(tmp_path / "repo"), fake_clis(tmp_path / "bin"))
    assert found.note is None and not found.config.agents and found.problem is not None
    message = str(found.problem)
    assert message.startswith("no .kittify/agents.yaml, and no agent CLI found on PATH to run with. Install one")
    assert "  claude-code  npm install -g @anthropic-ai/claude-code@2.1.331" in message.splitlines()
    assert "  cursor       curl https://cursor.com/install" in message


def test_a_file_is_used_as_it_is_and_a_broken_one_is_a_problem_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = spec_repo(tmp_path / "repo")
    monkeypatch.chdir(root)  # messages name files relative to the working directory
    (root / ".kittify").mkdir()
    (root / ".kittify" / "agents.yaml").write_text("agents: {gemini: true}\n")
    found = resolve(root, fake_clis(tmp_path / "bin", claude="2.1.331"))
    assert found.source == "file" and found.note is None and found.problem is None
    assert list(found.config.agents) == ["gemini"]  # not installed here: the run says so, as it always did
    (root / ".kittify" / "agents.yaml").write_text("agents: {codx: true}\nmax_retries: -1\n")
    broken = resolve(root)
    assert broken.source == "file" and broken.problem is not None and not broken.config.agents
    assert one_line(broken.problem).startswith(
        ".kittify/agents.yaml: 2 problems: agents.codx: unknown agent; did you mean 'codex'?"
    )
    assert "\n" not in one_line(broken.problem) and "; max_retries: must be >= 0, not -1" in one_line(broken.problem)
