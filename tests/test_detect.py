"""`kittydoit agents [--check]` against stand-in binaries whose parsers accept a known set of flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import make_repo

from kittydoit import detect
from kittydoit.agents import BUILTIN

# A CLI that knows some flags, prints its version, and rejects the first flag it does not know, as clap does.
FAKE_CLI = """#!{python}
import sys
known = set({known!r})
if sys.argv[1:] == ["--version"]:
    print("{name}-cli {version}")
    sys.exit(0)
for arg in sys.argv[1:]:
    if arg.startswith("-") and arg != "-" and arg not in known:
        print(f"error: unexpected argument '{{arg}}' found", file=sys.stderr)
        sys.exit(2)
sys.exit(0)
"""
CODEX_FLAGS = ["--json", "-s", "-C", "-m"]


def fake_cli(folder: Path, name: str, version: str, known: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(FAKE_CLI.format(python=sys.executable, known=known, name=name, version=version))
    path.chmod(0o755)
    return path


def test_find_reports_path_and_version(tmp_path: Path) -> None:
    path = fake_cli(tmp_path / "bin", "codex", "0.169.0", CODEX_FLAGS)
    found = detect.find(BUILTIN["codex"], env={"PATH": str(tmp_path / "bin")})
    assert found and found.path == str(path) and found.version == "0.169.0"
    assert not detect.find(BUILTIN["gemini"], env={"PATH": str(tmp_path / "bin")})


def test_check_passes_when_only_the_sentinel_is_rejected(tmp_path: Path) -> None:
    fake_cli(tmp_path / "bin", "codex", "0.169.0", CODEX_FLAGS)
    env = {**os.environ, "PATH": str(tmp_path / "bin")}
    checks = detect.check(BUILTIN["codex"], detect.find(BUILTIN["codex"], env=env), env=env)
    assert all(checks) and [c.method for c in checks] == ["sentinel", "sentinel"]


def test_check_names_agent_version_and_drifted_flag(tmp_path: Path) -> None:
    fake_cli(tmp_path / "bin", "codex", "0.170.0", ["--json", "-C"])  # this "release" dropped -s
    env = {**os.environ, "PATH": str(tmp_path / "bin")}
    checks = detect.check(BUILTIN["codex"], detect.find(BUILTIN["codex"], env=env), env=env)
    assert not any(checks)
    assert checks[0].message == "codex 0.170.0 rejects -s (implementation): error: unexpected argument '-s' found"


def test_agents_check_command_exits_1_on_drift_and_lists_json(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    (repo.root / ".kittify" / "agents.yaml").write_text("agents:\n  codex: true\n")
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}

    def agents(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kittydoit", "agents", *args], cwd=repo.root, env=env,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip

    fake_cli(tmp_path / "bin", "codex", "0.169.0", CODEX_FLAGS)
    ok = agents("--check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "codex (Codex): installed 0.169.0; enabled; roles: implementation, review" in ok.stdout
    assert "  implementation: codex exec --json -s workspace-write -C '<worktree>' - < <prompt-file>" in ok.stdout
    assert "  check review: ok: codex 0.169.0 accepts every review flag" in ok.stdout
    fake_cli(tmp_path / "bin", "codex", "0.170.0", ["--json", "-C"])
    drift = agents("--check")
    assert drift.returncode == 1
    assert "DRIFT: codex 0.170.0 rejects -s (implementation)" in drift.stderr
    rows = {row["id"]: row for row in json.loads(agents("--json").stdout)}
    assert len(rows) == 9 and rows["codex"]["version"] == "0.170.0" and rows["codex"]["configured"]
    assert rows["codex"]["commands"]["review"][:5] == ["codex", "exec", "--json", "-s", "read-only"]
    assert not rows["gemini"]["configured"]


def test_agents_with_a_config_mistake_lists_the_agents_after_one_warning_line(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    (repo.root / ".kittify" / "agents.yaml").write_text("agents:\n  codx: true\n")
    result = subprocess.run([sys.executable, "-m", "kittydoit", "agents"], cwd=repo.root, capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr
    [warning] = result.stderr.splitlines()
    assert warning.startswith("kittydoit: .kittify/agents.yaml: agents.codx: unknown agent; did you mean 'codex'?")
    assert warning.endswith("(a run refuses to start until it is fixed)")
    assert "codex (Codex): " in result.stdout and "not configured" in result.stdout
