"""Write the files a repository needs to run with kittydoit, and the bundled example repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from kittydoit import detect
from kittydoit.agents import BUILTIN
from kittydoit.config import CONFIG_PATH, canonical_id
from kittydoit.errors import ConfigError, UserError
from kittydoit.feature import SPECS_DIR
from kittydoit.resources import shipped
from kittydoit.state import write_atomic

EXAMPLE_AGENTS = """\
# Agents of the kittydoit example: a small local program (kittydoit.example_agent) in two roles, so the example
# needs no account or API key. It writes the files each work package specifies and reviews the result by
# running the checks the work package names. `kittydoit init` writes a file like this for real agent CLIs.
version: "1.0"
agents:
  example-coder:
    command: [{python}, -m, kittydoit.example_agent, implement]
    prompt: stdin
    roles: [implementation]
    timeout_seconds: 120
  example-reviewer:
    command: [{python}, -m, kittydoit.example_agent, review]
    prompt: stdin
    roles: [review]
    timeout_seconds: 120
defaults:
  implementation: [example-coder]
  review: [example-reviewer]
review_cycles: 2
"""

_GITIGNORE = "__pycache__/\n"


def dodo_text() -> str:
    """Return the dodo.py kittydoit writes (the same file as the top-level dodo.py of kittydoit's source)."""
    return shipped("dodo_entry.py").read_text(encoding="utf-8")


def init(root: Path, *, force: bool = False, env: Mapping[str, str] | None = None) -> list[str]:
    """Write dodo.py and .kittify/agents.yaml into *root*; return a line per file written or kept.

    Everything is checked before anything is written: with no agent CLI on PATH (and none named in
    ``.kittify/config.yaml``) nothing is written and the error says how to install each agent.
    """
    if not (root / SPECS_DIR).is_dir():
        raise UserError(
            root, f"has no {SPECS_DIR}/ folder; run `kittydoit init` at the top of a spec-kitty repository"
        )
    dodo = root / "dodo.py"
    agents = root / CONFIG_PATH
    writes: list[tuple[Path, str]] = []
    lines: list[str] = []
    if dodo.exists() and not force and dodo.read_text(encoding="utf-8") != dodo_text():
        lines.append(f"kept {dodo} (it differs from kittydoit's; --force replaces it)")
    else:
        writes.append((dodo, dodo_text()))
    if agents.exists() and not force:
        lines.append(f"kept {agents} (--force replaces it)")
    else:
        writes.append((agents, default_agents_yaml(root, env)))
    for path, text in writes:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)
        lines.append(f"wrote {path}")
    return lines


def install_help() -> str:
    """Return how to install each agent CLI, one line each."""
    return "\n".join(f"  {spec.id:12} {spec.install}" for spec in BUILTIN.values())


def default_agents_yaml(root: Path, env: Mapping[str, str] | None = None, *, versions: bool = True) -> str:
    """Return a commented agents.yaml for the agents on PATH and those ``.kittify/config.yaml`` lists.

    Without *versions* the agents' versions are not asked for (they only go into comments): a run that uses
    these defaults without a file (see :mod:`kittydoit.settings`) needs no agent process started to decide.
    """
    available, preferred = _spec_kitty_hints(root)
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415  # only when agents are looked for

    with ThreadPoolExecutor(max_workers=4) as pool:
        found = dict(
            zip(
                BUILTIN,
                pool.map(lambda spec: detect.find(spec, env=env, version=versions), BUILTIN.values()),
                strict=True,
            )
        )
    chosen = [agent_id for agent_id in BUILTIN if found[agent_id] or agent_id in available]
    if not chosen:
        raise UserError(
            None,
            "no agent CLI found on PATH (and none listed under agents.available in .kittify/config.yaml). "
            f"Install one, then run `kittydoit init` again:\n{install_help()}",
        )
    implementation = _order(chosen, preferred.get("implementer"))
    review = _order(chosen, preferred.get("reviewer"), avoid_vendor=BUILTIN[implementation[0]].vendor)
    lines = [
        "# Agents for kittydoit (and spec-kitty), written by `kittydoit init`. Every key is explained in",
        '# kittydoit\'s README, section "Agents". `kittydoit agents --check` proves these command lines against',
        "# the installed CLIs.",
        'version: "1.0"',
        "defaults:",
        "  # Preference per role: the first agent that is enabled, installed and has a free slot runs. The reviewer",
        "  # is never the implementer (outside single-agent mode), so each list starts with another vendor.",
        f"  implementation: [{', '.join(implementation)}]",
        f"  review: [{', '.join(review)}]",
        "agents:",
    ]
    for agent_id in chosen:
        info = found[agent_id]
        where = (
            f"{info.path} ({info.version or 'version unknown'})" if info else "listed in .kittify/config.yaml"
        )
        lines.append(f"  # {BUILTIN[agent_id].name}: {where}")
        if not info:
            lines.append(f"  # not on PATH yet; install: {BUILTIN[agent_id].install}")
        lines.append(
            f"  {agent_id}: {{enabled: true, roles: [implementation, review], "
            "max_concurrent: 2, timeout_seconds: 3600}"
        )
    missing = [spec for agent_id, spec in BUILTIN.items() if agent_id not in chosen]
    if missing:
        lines.append("  # Not found, so not configured (add a line like those above once installed):")
        lines += [f"  #   {spec.id}: {spec.install}" for spec in missing]
    single = chosen[0] if len(chosen) == 1 else None
    lines += [
        "fallback_strategy: next_in_list   # next_in_list | same_agent | fail",
        "max_retries: 3                    # transient failures retried per agent run",
        "single_agent_mode:                # one agent implements and reviews its own work",
        f"  enabled: {'true' if single else 'false'}",
        f"  agent: {single or 'null'}",
        "  review_delay_seconds: 60        # pause between its implementation and its review",
        "global_concurrency: 5             # agents running at once, all together (doit -n above it waits)",
        "global_timeout: 3600              # seconds an agent may run; timeout_seconds per agent overrides it",
        "review_cycles: 3                  # reviews per WP and run before asking for a human",
        "commit_lane_changes: false",
    ]
    return "\n".join(lines) + "\n"


def _order(chosen: list[str], preferred: str | None, avoid_vendor: str | None = None) -> list[str]:
    """Return *chosen* with *preferred* first, else the first agent of another vendor than *avoid_vendor*."""
    first = preferred if preferred in chosen else None
    if first is None and avoid_vendor is not None:
        first = next((a for a in chosen if BUILTIN[a].vendor != avoid_vendor), None)
    first = first or chosen[0]
    return [first, *(a for a in chosen if a != first)]


def _spec_kitty_hints(root: Path) -> tuple[set[str], dict[str, str]]:
    """Return the agents ``.kittify/config.yaml`` lists as available, and its preferred implementer/reviewer."""
    path = root / ".kittify" / "config.yaml"
    if not path.is_file():
        return set(), {}
    from ruamel.yaml import YAML  # noqa: PLC0415  # only when there is a config.yaml to read
    from ruamel.yaml.error import YAMLError  # noqa: PLC0415

    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YAMLError) as error:
        raise ConfigError(path, f"cannot be read ({str(error).splitlines()[0]})") from None
    section = data.get("agents") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        return set(), {}
    available = section.get("available")
    selection = section.get("selection")
    if not isinstance(selection, dict):
        selection = {}
    known = {canonical_id(str(a)) for a in available} & set(BUILTIN) if isinstance(available, list) else set()
    preferred: dict[str, str] = {}
    for role in ("implementer", "reviewer"):
        name = selection.get(f"preferred_{role}")
        if name and canonical_id(str(name)) in BUILTIN:
            preferred[role] = canonical_id(str(name))
    return known, preferred


def example(target: Path | None) -> Path:
    """Create a git repository with the example feature in *target* (a new temporary folder when None)."""
    if target is None:
        target = Path(tempfile.mkdtemp(prefix="kittydoit-example-"))
    target = target.resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(target, "exists and is not empty; choose a new folder")
    source = shipped("example")
    target.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(source / SPECS_DIR, target / SPECS_DIR)
        (target / ".kittify").mkdir()
        (target / CONFIG_PATH).write_text(
            EXAMPLE_AGENTS.format(python=_yaml_string(sys.executable)), encoding="utf-8"
        )
        (target / "dodo.py").write_text(dodo_text(), encoding="utf-8")
        (target / ".gitignore").write_text(_GITIGNORE, encoding="utf-8")
        _git(target, "init", "-q", "-b", "main")
        _git(target, "add", "-A")
        _git(target, "commit", "-q", "-m", "Example feature for kittydoit")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def _yaml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _git(cwd: Path, *args: str) -> None:
    identity = ["-c", "user.name=kittydoit example", "-c", "user.email=example@kittydoit.invalid"]
    result = subprocess.run(
        ["git", *identity, "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise UserError(cwd, f"git {' '.join(args)} failed: {result.stderr.strip()}")
