"""spec-kitty-cli 0.16.2's ``spec-kitty orchestrate``, the orchestrator kittydoit replaces, run here.

The recipe (``shared/reference/peer-benchmark.md``): install spec-kitty-cli 0.16.2 into a venv of its own
(kept in the benchmark's cache folder), put fake ``claude`` and ``codex`` binaries first on PATH (the same
fake agent kittydoit runs, see ``bench/fake_agent.py``), ``spec-kitty init`` a project (and stop the dashboard
server that init starts), create the feature, write the WP files and tasks.md, pre-lock the VCS in
meta.json, commit, ``finalize-tasks``, and write ``.kittify/agents.yaml`` with the concurrency limit. Each
run works on a fresh copy of that prepared project.

Where spec-kitty cannot be installed (no network, no such version), :func:`install` returns None and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

from bench.dags import Dag
from bench.feature import FAKE_AGENT, write_feature
from bench.measure import BenchError

VERSION = "0.16.2"
FEATURE = "001-bench"


def install(cache: Path) -> tuple[Path | None, str]:
    """Return the bin folder of a venv holding spec-kitty-cli 0.16.2 (installing it once), or None and why."""
    binary, how = pip_venv(cache / f"spec-kitty-{VERSION}", "spec-kitty-cli", VERSION, "spec-kitty")
    return (binary.parent if binary else None), how


def pip_venv(env_dir: Path, package: str, version: str, script: str) -> tuple[Path | None, str]:
    """Return *script* of a venv in *env_dir* holding *package*==*version* (installed once), or None and why."""
    binary = env_dir / "bin" / script
    if binary.exists():
        return binary, f"{package} {version} from {env_dir}"
    try:
        venv.create(env_dir, with_pip=True, clear=True)
        result = subprocess.run(
            [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", f"{package}=={version}"],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        shutil.rmtree(env_dir, ignore_errors=True)
        return None, f"could not create a venv for {package} {version}: {error}"
    if result.returncode != 0 or not binary.exists():
        shutil.rmtree(env_dir, ignore_errors=True)
        lines = [ln for ln in (result.stderr or result.stdout).splitlines() if "is ignored" not in ln]
        return None, f"pip could not install {package}=={version}: {' '.join(lines[-2:]) or result.returncode}"
    return binary, f"{package} {version} installed into {env_dir}"


def fake_agent_bin(folder: Path) -> Path:
    """Write ``claude`` and ``codex`` executables that run the benchmark's fake agent; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("claude", "codex"):
        path = folder / name
        path.write_text(
            f"#!{sys.executable} -S\nimport runpy\nrunpy.run_path({str(FAKE_AGENT)!r}, run_name='__main__')\n"
        )
        path.chmod(0o755)
    return folder


def environment(spec_bin: Path, agents_bin: Path, gitconfig: Path) -> dict[str, str]:
    """Return the environment spec-kitty runs in: fake agents and spec-kitty first on PATH, a git identity."""
    if not gitconfig.exists():
        gitconfig.write_text(
            "[user]\n\temail = bench@example.com\n\tname = Bench\n[init]\n\tdefaultBranch = main\n"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{agents_bin}{os.pathsep}{spec_bin}{os.pathsep}{env.get('PATH', '')}",
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        SPEC_KITTY_NON_INTERACTIVE="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def prepare(template: Path, dag: Dag, workers: int, env: dict[str, str]) -> Path:
    """Make a spec-kitty project at *template* holding *dag* as feature 001-bench, ready to orchestrate."""
    template.parent.mkdir(parents=True, exist_ok=True)
    _run(["spec-kitty", "init", template.name, "--ai", "claude,codex", "--script", "sh", "--non-interactive",
          "--ignore-agent-tools"], template.parent, env)  # fmt: skip
    _stop_dashboard(template)
    _run(["spec-kitty", "agent", "feature", "create-feature", "bench", "--mission", "software-dev", "--json"],
         template, env)  # fmt: skip
    folder = template / "kitty-specs" / FEATURE
    write_feature(folder, dag)
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta.update(vcs="git", vcs_locked_at="2026-01-01T00:00:00+00:00")  # else every move to for_review fails
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    _run(["git", "add", "-A", "kitty-specs"], template, env)
    _run(["git", "commit", "-q", "-m", "tasks"], template, env)
    _run(["spec-kitty", "agent", "feature", "finalize-tasks", "--json"], template, env)
    (template / ".kittify" / "agents.yaml").write_text(agents_yaml(workers))
    _run(["git", "add", "-A"], template, env)
    _run(["git", "commit", "-q", "--allow-empty", "-m", "orchestrator settings"], template, env)
    return template


def agents_yaml(workers: int) -> str:
    """Return spec-kitty's orchestrator settings: at most *workers* agents at once, claude implements."""
    row = (
        f"{{enabled: true, roles: [implementation, review], max_concurrent: {workers}, timeout_seconds: 600}}"
    )
    return (
        'version: "1.0"\ndefaults:\n  implementation: [claude-code, codex]\n  review: [codex, claude-code]\n'
        f"agents:\n  claude-code: {row}\n  codex: {row}\nfallback_strategy: next_in_list\nmax_retries: 3\n"
        f"single_agent_mode: {{enabled: false, agent: null}}\nglobal_concurrency: {workers}\n"
        "global_timeout: 3600\n"
    )


def command() -> list[str]:
    return ["spec-kitty", "orchestrate", "--feature", FEATURE]


def unfinished(project: Path, dag: Dag) -> dict[str, str]:
    """Return the WPs a run did not complete, with their status (spec-kitty exits 0 either way)."""
    state = project / ".kittify" / "orchestration-state.json"
    data = json.loads(state.read_text()) if state.exists() else {}
    statuses = {wp: info.get("status") for wp, info in data.get("work_packages", {}).items()}
    return {wp: str(statuses.get(wp)) for wp in dag.deps if statuses.get(wp) != "completed"}


def _stop_dashboard(project: Path) -> None:
    """Stop the dashboard ``spec-kitty init`` started (its pid is the 4th line of .kittify/.dashboard)."""
    info = project / ".kittify" / ".dashboard"
    lines = info.read_text().splitlines() if info.exists() else []
    if len(lines) < 4 or not lines[3].strip().isdigit():
        return
    pid = int(lines[3])
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return  # already gone
    if b"python" in cmdline or b"spec" in cmdline:  # ours, not a reused pid
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed in {cwd}:\n{(result.stderr or result.stdout)[-2000:]}")
    return result.stdout
