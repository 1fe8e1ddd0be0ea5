"""Install the pinned agent CLIs from npm and run them for real, offline, against the stand-in model server.

Used by the real-CLI tests (``tests/test_real_clis.py``) and by ``python -m tests.agent_clis.record``, which
refreshes the recorded outputs under ``tests/recorded/``. The CLIs go to ``$KITTYDOIT_CLI_CACHE`` (default
``~/.cache/kittydoit-clis``), one npm prefix per package and version, so they are installed once per machine.

Each CLI is pointed at the stand-in server by the override its vendor documents (environment variables, a
config option, or a settings file under a throwaway ``HOME``); nothing reaches the network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from kittydoit.agents import BUILTIN, AgentSpec

CACHE = Path(os.environ.get("KITTYDOIT_CLI_CACHE") or Path.home() / ".cache" / "kittydoit-clis")
INSTALL_TIMEOUT = 900
STANDIN_KEY = "standin-key-0123456789"  # copilot masks its key in output: a one-letter key masks every "x"

# The agents that run on npm packages (cursor is installed by its vendor's script, so it is not tested here).
NPM_AGENTS = tuple(agent_id for agent_id, spec in BUILTIN.items() if spec.package)
# Drivable to a real result through the stand-in server; auggie has no base-URL override.
STANDIN_AGENTS = ("claude-code", "codex", "copilot", "gemini", "qwen", "opencode", "kilocode")
# Fail fast with their own auth message when there are no credentials (codex hangs; opencode and kilo fall
# back to a free hosted model).
AUTH_CHECK_AGENTS = ("claude-code", "copilot", "gemini", "qwen", "augment")


class Unavailable(Exception):
    """npm or the registry cannot be reached, or a package did not install: the tier cannot run."""


def prefix(spec: AgentSpec) -> Path:
    return CACHE / spec.package.replace("/", "_").replace("@", "_")


def binary(spec: AgentSpec) -> Path:
    return prefix(spec) / "node_modules" / ".bin" / spec.binary


def install(spec: AgentSpec) -> Path:
    """Install *spec*'s pinned npm package into the cache (once) and return its binary."""
    path = binary(spec)
    if path.exists():
        return path
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable("npm is not installed")
    target = prefix(spec)
    target.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(target), spec.package],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"npm install {spec.package} took longer than {INSTALL_TIMEOUT} s") from None
    if result.returncode != 0 or not path.exists():
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise Unavailable(f"npm install {spec.package} failed: {last}")
    return path


def registry_reachable(timeout: float = 20) -> str | None:
    """Return None when the npm registry answers, else the reason it does not."""
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed"
    try:
        result = subprocess.run(
            [npm, "ping"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"npm ping took longer than {timeout:.0f} s"
    if result.returncode != 0:
        return "npm cannot reach the registry: " + ((result.stderr.strip().splitlines() or ["no output"])[-1])
    return None


@dataclass
class Run:
    """One real run of a CLI: what we started and what it printed."""

    agent: str
    argv: list[str]
    returncode: int | None  # None when it was stopped at the timeout
    stdout: str
    stderr: str
    seconds: float
    files: list[str] = field(default_factory=list)  # what the workdir holds afterwards

    def record(self) -> dict[str, object]:
        return {
            "agent": self.agent,
            "argv": self.argv,
            "returncode": self.returncode,
            "stdout": self.stdout,
            "stderr": self.stderr,
        }


def standin_setup(agent_id: str, url: str, home: Path) -> tuple[dict[str, str], list[str]]:
    """Return the environment and extra arguments that point *agent_id* at the stand-in server at *url*."""
    provider = {
        "provider": {
            "standin": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Standin",
                "options": {"baseURL": f"{url}/v1", "apiKey": STANDIN_KEY},
                "models": {"standin": {"name": "standin"}},
            }
        },
        "model": "standin/standin",
    }
    if agent_id == "claude-code":
        return {
            "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_API_KEY": STANDIN_KEY,
            "CLAUDE_CODE_MAX_RETRIES": "0",
        }, []
    if agent_id == "codex":
        mock = f'{{name="standin",base_url="{url}/v1",env_key="STANDIN_KEY",wire_api="responses"}}'
        return {"STANDIN_KEY": STANDIN_KEY}, [
            "-c",
            "model_provider=standin",
            "-c",
            f"model_providers.standin={mock}",
        ]
    if agent_id == "copilot":
        return {
            "COPILOT_PROVIDER_BASE_URL": f"{url}/v1",
            "COPILOT_PROVIDER_API_KEY": STANDIN_KEY,
            "COPILOT_MODEL": "standin",
        }, []
    if agent_id == "gemini":
        settings = home / ".gemini" / "settings.json"
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}}))
        return {"GEMINI_API_KEY": STANDIN_KEY, "GOOGLE_GEMINI_BASE_URL": url}, []
    if agent_id == "qwen":
        return {}, [
            "--auth-type",
            "openai",
            "--openai-api-key",
            STANDIN_KEY,
            "--openai-base-url",
            f"{url}/v1",
        ]
    if agent_id == "opencode":
        return {"OPENCODE_CONFIG_CONTENT": json.dumps(provider)}, []
    if agent_id == "kilocode":
        return {"KILO_CONFIG_CONTENT": json.dumps(provider)}, []
    raise ValueError(f"{agent_id} cannot be driven by the stand-in server")


def git_init(workdir: Path) -> None:
    """Make *workdir* a git repository with one commit, as a WP's worktree is."""
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    (workdir / "README.md").write_text("a work package's worktree\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "start"]):
        subprocess.run(["git", *args], cwd=workdir, env=env, check=True, capture_output=True)


def clean_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return a minimal environment: no credentials, a throwaway HOME, node on PATH."""
    node_dir = str(Path(shutil.which("node") or "/usr/bin/node").parent)
    env = {
        "PATH": f"{node_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
        "CI": "1",
    }
    return {**env, **(extra or {})}


def run_cli(
    spec: AgentSpec,
    role: str,
    *,
    workdir: Path,
    home: Path,
    prompt: str,
    env: dict[str, str],
    extra_args: list[str] = (),  # type: ignore[assignment]
    timeout: float = 120,
) -> Run:
    """Run the installed CLI of *spec* the way kittydoit would for *role* (plus *extra_args*)."""
    prompt_file = home / "prompt.md"
    prompt_file.write_text(prompt)
    argv = spec.argv(role, prompt=prompt, prompt_file=prompt_file, workdir=workdir, model=None)
    argv = [str(binary(spec)), *argv[1:], *extra_args]
    stdin_path = spec.stdin_path(prompt_file)
    started = time.monotonic()
    with stdin_path.open("rb") if stdin_path else open(os.devnull, "rb") as stdin:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=spec.environment(env),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            out, err = proc.communicate()
            code = None
    files = sorted(p.name for p in workdir.iterdir() if p.name not in (".git", "README.md"))
    return Run(
        spec.id,
        argv,
        code,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        time.monotonic() - started,
        files,
    )
