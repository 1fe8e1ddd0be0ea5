"""`kittydoit init`: a commented agents.yaml for the agents on PATH, checked before anything is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kittydoit import scaffold
from kittydoit.config import load_config
from kittydoit.errors import UserError


def fake_clis(folder: Path, **versions: str) -> dict[str, str]:
    """Put scripts named like agent binaries on a PATH of their own; each prints its version."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, version in versions.items():
        script = folder / name.replace("_", "-")
        script.write_text(f"#!/bin/sh\necho '{version}'\n")
        script.chmod(0o755)
    return {"PATH": str(folder)}


def spec_repo(root: Path) -> Path:
    (root / "kitty-specs" / "001-x" / "tasks").mkdir(parents=True)
    return root


def test_init_writes_agents_for_the_clis_on_path_with_vendors_apart(tmp_path: Path) -> None:
    root = spec_repo(tmp_path / "repo")
    env = fake_clis(
        tmp_path / "bin", claude="2.1.331 (Claude Code)", codex="codex-cli 0.169.0", gemini="0.61.0"
    )
    lines = scaffold.init(root, env=env)
    assert lines == [f"wrote {root / 'dodo.py'}", f"wrote {root / '.kittify' / 'agents.yaml'}"]
    text = (root / ".kittify" / "agents.yaml").read_text()
    assert "implementation: [claude-code, codex, gemini]" in text
    assert "review: [codex, claude-code, gemini]" in text  # another vendor reviews first
    assert "(2.1.331)" in text and "#   cursor: curl https://cursor.com/install" in text
    config = load_config(root)
    assert set(config.agents) == {"claude-code", "codex", "gemini"} and config.single_agent is None


def test_one_agent_found_means_single_agent_mode(tmp_path: Path) -> None:
    root = spec_repo(tmp_path / "repo")
    scaffold.init(root, env=fake_clis(tmp_path / "bin", qwen="0.24.4"))
    config = load_config(root)
    assert config.single_agent == "qwen" and [a.id for a in config.candidates("review")] == ["qwen"]


def test_spec_kitty_config_adds_available_agents_and_preferences(tmp_path: Path) -> None:
    root = spec_repo(tmp_path / "repo")
    (root / ".kittify").mkdir()
    (root / ".kittify" / "config.yaml").write_text(
        "agents:\n  available: [claude, codex, auggie]\n"
        "  selection: {preferred_implementer: codex, preferred_reviewer: auggie}\n"
    )
    scaffold.init(root, env=fake_clis(tmp_path / "bin", claude="2.1.331"))
    text = (root / ".kittify" / "agents.yaml").read_text()
    assert "implementation: [codex, claude-code, augment]" in text
    assert "review: [augment, claude-code, codex]" in text
    assert "# not on PATH yet; install: npm install -g @openai/codex@0.169.0" in text


def test_no_agent_found_writes_nothing_and_says_how_to_install_each(tmp_path: Path) -> None:
    root = spec_repo(tmp_path / "repo")
    with pytest.raises(UserError) as error:
        scaffold.init(root, env=fake_clis(tmp_path / "bin"))
    message = str(error.value)
    assert "no agent CLI found on PATH" in message
    for line in (
        "npm install -g @anthropic-ai/claude-code@2.1.331",
        "npm install -g @openai/codex@0.169.0",
        "npm install -g @github/copilot@1.0.102",
        "npm install -g @google/gemini-cli@0.61.0",
        "npm install -g @qwen-code/qwen-code@0.24.4",
        "npm install -g opencode-ai@1.18.33",
        "npm install -g @kilocode/cli@7.7.7",
        "npm install -g @augmentcode/auggie@0.36.0",
        "curl https://cursor.com/install",
    ):
        assert line in message
    assert not (root / "dodo.py").exists() and not (root / ".kittify").exists()


def test_existing_files_are_kept_unless_forced(tmp_path: Path) -> None:
    root = spec_repo(tmp_path / "repo")
    (root / ".kittify").mkdir()
    (root / ".kittify" / "agents.yaml").write_text("agents: {codex: true}\n")
    env = fake_clis(tmp_path / "bin", claude="2.1.331")
    lines = scaffold.init(root, env=env)
    assert f"kept {root / '.kittify' / 'agents.yaml'} (--force replaces it)" in lines
    assert (root / ".kittify" / "agents.yaml").read_text() == "agents: {codex: true}\n"
    scaffold.init(root, force=True, env=env)
    assert "claude-code: {enabled: true" in (root / ".kittify" / "agents.yaml").read_text()


def test_the_command_reports_no_agent_as_one_error_and_exit_3(tmp_path: Path) -> None:
    root = spec_repo(tmp_path / "repo")
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    result = subprocess.run(
        [sys.executable, "-m", "kittydoit", "init"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert result.stderr.startswith("ERROR: no agent CLI found on PATH")
