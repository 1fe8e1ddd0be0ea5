"""Find the agent CLIs on this machine and prove our command lines against them, offline.

- :func:`find` tells whether an agent's binary is on PATH and which version it reports.
- :func:`check` proves the command line of each role against the installed binary without running a model:
  the *sentinel* check appends an unknown flag (``--kittydoit-sentinel``) and expects the CLI's parser to
  reject exactly that flag, which shows it accepted all the others; for CLIs whose parser does not name an
  unknown flag (opencode, kilo) the *help* check looks for each of our flags in the command's ``--help``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kittydoit.agents import BUILTIN, ROLES, AgentSpec
from kittydoit.config import Config
from kittydoit.process import stop_group

SENTINEL = "--kittydoit-sentinel"
CHECK_TIMEOUT = 30.0
_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?(?:[-.][0-9A-Za-z]+)*")
_REJECTION = re.compile(r"unknown|unexpected|unrecognized|invalid|not allowed|Invalid command format", re.I)
_FLAG = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")


@dataclass(frozen=True)
class Installed:
    """Whether an agent's CLI is on PATH, where, and the version it reports."""

    agent_id: str
    path: str | None
    version: str | None = None

    def __bool__(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class Check:
    """The outcome of proving one role's command line against the installed CLI."""

    agent_id: str
    role: str
    ok: bool
    method: str  # "sentinel", "help" or "none"
    message: str

    def __bool__(self) -> bool:
        return self.ok


def find(spec: AgentSpec, *, env: Mapping[str, str] | None = None, version: bool = True) -> Installed:
    """Return where *spec*'s binary is on PATH and, when *version*, the version it reports."""
    path = shutil.which(spec.binary, path=(env or os.environ).get("PATH"))
    if path is None:
        return Installed(spec.id, None)
    return Installed(spec.id, path, _version(spec, path, env) if version else None)


def check(spec: AgentSpec, installed: Installed, *, env: Mapping[str, str] | None = None) -> list[Check]:
    """Prove the command line of each of *spec*'s roles against the installed binary."""
    _require(installed)
    results = []
    for role in ROLES:
        if spec.sentinel_check:
            results.append(_sentinel_check(spec, role, installed, env))
        elif spec.help_args != ("--help",) or spec.package:
            results.append(_help_check(spec, role, installed, env))
        else:
            results.append(
                Check(
                    spec.id,
                    role,
                    True,
                    "none",
                    "custom agent: its command line cannot be checked without running it",
                )
            )
    return results


def _version(spec: AgentSpec, path: str, env: Mapping[str, str] | None) -> str | None:
    code, text = _run([path, *spec.version_args], env)
    match = _VERSION.search(text) if code == 0 else None
    return match.group(0) if match else None


def _argv(spec: AgentSpec, role: str, path: str, workdir: Path) -> list[str]:
    prompt_file = workdir / "prompt.md"
    prompt_file.write_text("kittydoit parser check: do nothing.\n")
    argv = spec.argv(
        role,
        prompt="kittydoit parser check: do nothing.",
        prompt_file=prompt_file,
        workdir=workdir,
        model=None,
    )
    return [path, *argv[1:]]


def _sentinel_check(spec: AgentSpec, role: str, installed: Installed, env: Mapping[str, str] | None) -> Check:
    path = _require(installed)
    with tempfile.TemporaryDirectory(prefix="kittydoit-check-") as tmp:
        argv = _argv(spec, role, path, Path(tmp))
        code, text = _run([*argv, SENTINEL], spec.environment(env or os.environ), cwd=Path(tmp))
    ours = {flag.lstrip("-"): flag for part in argv[1:] if part.startswith("-") for flag in _FLAG.findall(part)}
    rejected = [line for line in text.splitlines() if _REJECTION.search(line)]
    named = {word.lstrip("-") for line in rejected for word in re.findall(r"[\w-]+", line)}
    drifted = sorted(flag for flag in ours if flag in named and flag != SENTINEL.lstrip("-"))
    version = installed.version or "unknown version"
    if code == 0 or code is None:
        return Check(
            spec.id,
            role,
            False,
            "sentinel",
            f"{spec.id} {version} did not reject the unknown flag {SENTINEL}; its parser cannot be "
            "checked this way",
        )
    if drifted:
        line = next(line for line in rejected if any(flag in line for flag in drifted))
        return Check(
            spec.id,
            role,
            False,
            "sentinel",
            f"{spec.id} {version} rejects {ours[drifted[0]]} ({role}): {line.strip()}",
        )
    sentinel_named = any(SENTINEL.lstrip("-") in line or "kittydoitSentinel" in line for line in rejected)
    if not sentinel_named:
        last = (text.strip().splitlines() or ["no output"])[-1]
        return Check(
            spec.id,
            role,
            False,
            "sentinel",
            f"{spec.id} {version} rejected the {role} command line without naming a flag: {last}",
        )
    return Check(spec.id, role, True, "sentinel", f"{spec.id} {version} accepts every {role} flag")


def _help_check(spec: AgentSpec, role: str, installed: Installed, env: Mapping[str, str] | None) -> Check:
    path = _require(installed)
    code, text = _run([path, *spec.help_args], env)
    version = installed.version or "unknown version"
    if code is None:
        return Check(
            spec.id, role, False, "help", f"{spec.id} {version}: `{' '.join(spec.help_args)}` did not end"
        )
    listed = set(_FLAG.findall(text))
    with tempfile.TemporaryDirectory(prefix="kittydoit-check-") as tmp:
        argv = _argv(spec, role, path, Path(tmp))
    ours = [part for part in argv[1:] if _FLAG.fullmatch(part)]
    missing = [flag for flag in ours if flag not in listed]
    if missing:
        return Check(
            spec.id,
            role,
            False,
            "help",
            f"{spec.id} {version} does not list {missing[0]} ({role}) in `{spec.binary} "
            f"{' '.join(spec.help_args)}`",
        )
    return Check(spec.id, role, True, "help", f"{spec.id} {version} lists every {role} flag in its help")


def _run(argv: list[str], env: Mapping[str, str] | None, cwd: Path | None = None) -> tuple[int | None, str]:
    """Run a quick command with stdin closed and a timeout; return its exit code (None on timeout) and output."""
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as error:
        return 127, str(error)
    try:
        out, _ = proc.communicate(timeout=CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop_group(proc.pid, 2.0, reap=proc)
        proc.communicate()
        return None, ""
    return proc.returncode, out.decode("utf-8", "replace")


def survey(
    config: Config | None, *, env: Mapping[str, str] | None = None, run_checks: bool = False
) -> list[dict[str, Any]]:
    """Describe every built-in agent and every configured custom agent, as ``kittydoit agents`` shows them.

    With *run_checks*, the command lines of the configured, enabled and installed agents (all installed
    built-in agents when there is no config) are proved against their binaries (see :func:`check`).
    """
    configured = dict(config.agents) if config else {}
    specs = {**{a: s for a, s in BUILTIN.items()}, **{a: c.spec for a, c in configured.items()}}
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415  # only when agents are looked for

    with ThreadPoolExecutor(max_workers=4) as pool:
        found = dict(zip(specs, pool.map(lambda spec: find(spec, env=env), specs.values()), strict=True))
        to_check = [
            agent_id
            for agent_id in specs
            if run_checks
            and found[agent_id]
            and (config is None or (agent_id in configured and configured[agent_id].enabled))
        ]
        checks = dict(
            zip(to_check, pool.map(lambda a: check(specs[a], found[a], env=env), to_check), strict=True)
        )
    rows = []
    for agent_id, spec in specs.items():
        settings = configured.get(agent_id)
        model = settings.model if settings else None
        roles = settings.roles if settings else ROLES
        rows.append(
            {
                "id": agent_id,
                "name": spec.name or agent_id,
                "custom": agent_id not in BUILTIN
                or (settings is not None and settings.spec is not BUILTIN[agent_id]),
                "configured": settings is not None,
                "enabled": bool(settings and settings.enabled),
                "roles": list(roles),
                "installed": bool(found[agent_id]),
                "path": found[agent_id].path,
                "version": found[agent_id].version,
                "checked_version": spec.package.rsplit("@", 1)[-1] if spec.package else None,
                "install": spec.install,
                "prompt": spec.prompt_via,
                "output": spec.output,
                "commands": {role: spec.shown(role, model) for role in roles},
                "checks": [
                    {"role": c.role, "ok": c.ok, "method": c.method, "message": c.message}
                    for c in checks.get(agent_id, [])
                ],
            }
        )
    return rows


def _require(installed: Installed) -> str:
    """Return the binary's path; checking an agent that is not installed is a caller's mistake."""
    if installed.path is None:
        raise ValueError(f"{installed.agent_id} is not installed: nothing to check")
    return installed.path
