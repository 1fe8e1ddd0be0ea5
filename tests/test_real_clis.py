"""The real agent CLIs, installed from npm at the pinned versions, against our command lines. Offline.

This tier installs each CLI once into ``~/.cache/kittydoit-clis`` (``$KITTYDOIT_CLI_CACHE``; about 1.9 GB, most
of it claude's, codex's and opencode's native binaries) and then proves, per agent:

- parser: ``kittydoit.detect.check`` accepts our command line of each role (sentinel or --help check), and a
  stale flag is caught with a message naming agent, version and flag;
- auth: without credentials the CLI fails with its own login message, read as an auth failure;
- full run: pointed at the stand-in model server (``tests/standin_server.py``), the implementer writes a file
  and the read-only reviewer approves, each parsed into the same AgentOutput; with HTTP 429 the CLIs that give
  up by themselves report a rate limit;
- end to end: ``kittydoit run`` of a feature with the real claude as implementer and the real gemini as reviewer.

When npm or its registry cannot be reached and the CLIs are not cached, every test here is skipped with the
reason. ``KITTYDOIT_SKIP_REAL_CLIS=1`` skips the tier on purpose. Every process runs under a timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest
from conftest import FEATURE, make_repo

from kittydoit import detect
from kittydoit.agents import BUILTIN
from tests.agent_clis import harness
from tests.standin_server import FINAL_IMPLEMENT, WRITTEN_FILE, StandinServer

pytestmark = pytest.mark.real_cli

IMPLEMENT = "You are implementing WP01.\n\nWork only inside {workdir}: a git worktree.\n\nWrite the file.\n"
REVIEW = "You are reviewing work package WP01.\n\nWork only inside {workdir}: read it.\n\nEnd with a VERDICT line.\n"


@pytest.fixture(scope="session")
def cli_path() -> str:
    """Install the pinned CLIs (once per machine) and return a PATH holding their binaries."""
    if os.environ.get("KITTYDOIT_SKIP_REAL_CLIS"):
        pytest.skip("real-CLI tier skipped: KITTYDOIT_SKIP_REAL_CLIS is set")
    specs = [BUILTIN[a] for a in harness.NPM_AGENTS]
    if not all(harness.binary(s).exists() for s in specs):
        reason = harness.registry_reachable()
        if reason:
            pytest.skip(f"real-CLI tier skipped: {reason}")
        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(harness.install, specs))
        except harness.Unavailable as error:
            pytest.skip(f"real-CLI tier skipped: {error}")
    return os.pathsep.join(str(harness.binary(s).parent) for s in specs)


@pytest.fixture(scope="module")
def server() -> Iterator[StandinServer]:
    with StandinServer() as running:
        yield running


@pytest.fixture
def place(tmp_path: Path) -> tuple[Path, Path]:
    """A git worktree-like folder to work in and an empty HOME."""
    workdir, home = tmp_path / "work", tmp_path / "home"
    workdir.mkdir()
    home.mkdir()
    harness.git_init(workdir)
    return workdir, home


@pytest.mark.parametrize("agent", harness.NPM_AGENTS)
def test_parser_accepts_our_command_lines(cli_path: str, agent: str) -> None:
    env = {**os.environ, "PATH": cli_path + os.pathsep + os.environ["PATH"], "HOME": str(Path.home())}
    spec = BUILTIN[agent]
    installed = detect.find(spec, env=env)
    assert installed and installed.version == spec.package.rsplit("@", 1)[1]
    checks = detect.check(spec, installed, env=env)
    assert [c.role for c in checks] == ["implementation", "review"]
    assert all(checks), [c.message for c in checks]


@pytest.mark.parametrize(
    ("agent", "stale", "message"),
    [
        (
            "codex",
            ("exec", "--json", "--full-auto", "-C", "{workdir}", "-"),
            "codex 0.169.0 rejects --full-auto",
        ),
        (
            "claude-code",
            ("-p", "--dangerously-skip-permission"),
            "claude-code 2.1.331 rejects --dangerously-skip-permission",
        ),
        ("opencode", ("run", "--format", "json", "--yes"), "opencode 1.18.33 does not list --yes"),
    ],
)
def test_a_stale_flag_is_caught_naming_agent_version_and_flag(
    cli_path: str, agent: str, stale: tuple[str, ...], message: str
) -> None:
    env = {**os.environ, "PATH": cli_path + os.pathsep + os.environ["PATH"]}
    spec = replace(BUILTIN[agent], args=MappingProxyType({"implementation": stale, "review": stale}))
    checks = detect.check(spec, detect.find(spec, env=env), env=env)
    assert not any(checks)
    assert message in checks[0].message


@pytest.mark.parametrize("agent", harness.AUTH_CHECK_AGENTS)
def test_without_credentials_the_cli_fails_as_an_auth_failure(
    cli_path: str, agent: str, place: tuple[Path, Path]
) -> None:
    del cli_path
    workdir, home = place
    run = harness.run_cli(
        BUILTIN[agent],
        "implementation",
        workdir=workdir,
        home=home,
        prompt=IMPLEMENT.format(workdir=workdir),
        env=harness.clean_env(home),
        timeout=60,
    )
    output = BUILTIN[agent].parse_output(run.stdout, run.stderr, run.returncode)
    assert run.returncode not in (0, None), run.stderr
    assert output.auth_failed, (output, run.stderr[-500:])


@pytest.mark.parametrize("agent", harness.STANDIN_AGENTS)
def test_full_run_implements_then_reviews_read_only(
    cli_path: str, agent: str, server: StandinServer, place: tuple[Path, Path]
) -> None:
    del cli_path
    workdir, home = place
    server.mode = "ok"
    spec = BUILTIN[agent]
    variables, extra = harness.standin_setup(agent, server.url, home)
    env = harness.clean_env(home, variables)
    run = harness.run_cli(
        spec,
        "implementation",
        workdir=workdir,
        home=home,
        prompt=IMPLEMENT.format(workdir=workdir),
        env=env,
        extra_args=extra,
        timeout=150,
    )
    output = spec.parse_output(run.stdout, run.stderr, run.returncode)
    assert run.returncode == 0, run.stderr[-2000:]
    assert output and output.final_text == FINAL_IMPLEMENT and output.session_id
    assert run.files == [WRITTEN_FILE]
    (workdir / WRITTEN_FILE).unlink()
    run = harness.run_cli(
        spec,
        "review",
        workdir=workdir,
        home=home,
        prompt=REVIEW.format(workdir=workdir),
        env=env,
        extra_args=extra,
        timeout=150,
    )
    output = spec.parse_output(run.stdout, run.stderr, run.returncode)
    assert run.returncode == 0, run.stderr[-2000:]
    assert output and output.final_text and "VERDICT: APPROVED" in output.final_text
    # the reviewer changed nothing git sees (kilo leaves an empty, self-ignoring .kilo/ folder)
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=workdir, capture_output=True, text=True, check=True
    )
    assert status.stdout == "" and WRITTEN_FILE not in run.files


@pytest.mark.parametrize("agent", ["claude-code", "codex", "copilot"])
def test_http_429_is_read_as_a_rate_limit(
    cli_path: str, agent: str, server: StandinServer, place: tuple[Path, Path]
) -> None:
    del cli_path
    workdir, home = place
    server.mode = "429"
    try:
        variables, extra = harness.standin_setup(agent, server.url, home)
        run = harness.run_cli(
            BUILTIN[agent],
            "implementation",
            workdir=workdir,
            home=home,
            prompt=IMPLEMENT.format(workdir=workdir),
            env=harness.clean_env(home, variables),
            extra_args=extra,
            timeout=120,
        )
    finally:
        server.mode = "ok"
    output = BUILTIN[agent].parse_output(run.stdout, run.stderr, run.returncode)
    assert run.returncode == 1 and output.rate_limited and output.status_code == 429, output


def test_kittydoit_run_with_real_claude_implementing_and_real_gemini_reviewing(
    cli_path: str, server: StandinServer, tmp_path: Path
) -> None:
    server.mode = "ok"
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": ["WP01"]})
    (repo.root / ".kittify" / "agents.yaml").write_text(
        "agents:\n  claude: {roles: [implementation]}\n  gemini: {roles: [review]}\n"
        "defaults: {implementation: [claude-code], review: [gemini]}\nreview_cycles: 1\nglobal_timeout: 300\n"
    )
    subprocess.run(["git", "commit", "-qam", "real agents"], cwd=repo.root, check=True)
    home = tmp_path / "home"
    home.mkdir()
    claude_env, _ = harness.standin_setup("claude-code", server.url, home)
    gemini_env, _ = harness.standin_setup("gemini", server.url, home)
    env = {
        **os.environ,
        **claude_env,
        **gemini_env,
        "HOME": str(home),
        "PATH": cli_path + os.pathsep + os.environ["PATH"],
    }
    result = subprocess.run(
        [sys.executable, "-m", "kittydoit", "run"],
        cwd=repo.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2/2 done" in result.stdout
    for wp in ("WP01", "WP02"):
        text = repo.wp_file(wp).read_text()
        assert repo.lane(wp) == "done" and 'reviewed_by: "gemini"' in text and 'agent: "claude-code"' in text
        marker = json.loads(
            (repo.root / ".kittify/kittydoit" / FEATURE / "markers" / f"{wp}-review.json").read_text()
        )
        assert (
            marker["agent"] == "gemini"
            and marker["implementer"] == "claude-code"
            and not marker["single_agent"]
        )
    worktree = repo.root / ".worktrees" / f"{FEATURE}-WP02"
    assert (worktree / WRITTEN_FILE).read_text() == "written through the stand-in model server for WP02\n"
    log = (repo.root / ".kittify/logs" / FEATURE / "WP02-review.log").read_text()
    assert "VERDICT: APPROVED" in log and "--approval-mode plan" in log
