"""Read and check ``.kittify/agents.yaml``: which agents run, for which role, in which order, with which limits.

The file spec-kitty 0.16 writes is accepted as it is; kittydoit adds a few keys of its own (``review_cycles``,
``commit_lane_changes``, ``single_agent_mode.review_delay_seconds`` and custom agents' ``command``). Every
problem in the file is reported at once, each naming the key and what is allowed.

Preference per role is the order of that role's ``defaults`` list. Enabled agents with the role that the list
leaves out come after it, lower ``priority`` first, then by name. An agent without ``priority`` has spec-kitty's
default for it (claude-code 10, codex 20, ... cursor 90; custom agents 100). spec-kitty's code preferred the lower
number while its design said higher, so kittydoit uses ``priority`` only to break ties among agents the
``defaults`` list leaves out: list agents there to say what you prefer.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kittydoit import fastyaml
from kittydoit.agents import ALIASES, BUILTIN, PROMPT_MODES, ROLES, AgentSpec, custom_agent
from kittydoit.errors import ConfigError

CONFIG_PATH = Path(".kittify") / "agents.yaml"
FALLBACK_STRATEGIES = ("next_in_list", "same_agent", "fail")

_TOP_KEYS = (
    "version",
    "defaults",
    "agents",
    "fallback_strategy",
    "max_retries",
    "single_agent_mode",
    "global_concurrency",
    "global_timeout",
    "review_cycles",
    "commit_lane_changes",
    "retry_backoff_seconds",
    "rate_limit_cooldown_seconds",
)
_AGENT_KEYS = (
    "enabled",
    "roles",
    "priority",
    "max_concurrent",
    "timeout_seconds",
    "model",
    "command",
    "prompt",
    "output",
    "env",
)
# spec-kitty's default priorities (claude-code 10 ... cursor 90); custom agents get 100.
DEFAULT_PRIORITY = {agent_id: 10 * (index + 1) for index, agent_id in enumerate(BUILTIN)}
_SINGLE_KEYS = ("enabled", "agent", "review_delay_seconds")


@dataclass(frozen=True)
class AgentSettings:
    """One configured agent: its row and the limits set for it."""

    spec: AgentSpec
    enabled: bool = True
    roles: tuple[str, ...] = ROLES
    priority: int = 100
    max_concurrent: int | None = None  # None: up to global_concurrency at once
    timeout_seconds: int | None = None
    model: str | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    def fingerprint(self) -> dict[str, Any]:
        """Return what decides this agent's work (its command), not its limits."""
        return {
            "id": self.id,
            "binary": self.spec.binary,
            "args": {k: list(v) for k, v in self.spec.args.items()},
            "prompt": self.spec.prompt_via,
            "model": self.model,
            "env": dict(self.spec.env),
        }


@dataclass(frozen=True)
class Config:
    """The checked settings of one repository."""

    agents: Mapping[str, AgentSettings]
    defaults: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    fallback_strategy: str = "next_in_list"
    max_retries: int = 3
    single_agent: str | None = None
    review_delay_seconds: int = 60
    global_concurrency: int = 5
    global_timeout: int = 3600
    review_cycles: int = 3
    commit_lane_changes: bool = False
    retry_backoff_seconds: int = 5
    rate_limit_cooldown_seconds: int = 60
    path: Path | None = None

    def candidates(self, role: str) -> list[AgentSettings]:
        """Return the enabled agents for *role*, most preferred first."""
        if self.single_agent:
            return [self.agents[self.single_agent]]
        able = {a.id: a for a in self.agents.values() if a.enabled and role in a.roles}
        listed = [able[name] for name in self.defaults.get(role, ()) if name in able]
        rest = sorted((a for a in able.values() if a not in listed), key=lambda a: (a.priority, a.id))
        return listed + rest

    def timeout_for(self, agent: AgentSettings) -> int:
        return agent.timeout_seconds or self.global_timeout

    def limit_for(self, agent: AgentSettings) -> int:
        """Return how many runs of *agent* may go at once, across every process (see kittydoit.slots)."""
        return agent.max_concurrent or self.global_concurrency

    def fingerprint(self, role: str) -> str:
        """Return a hash of the settings that decide how *role* is done; a change makes WPs stale."""
        data = {
            "agents": [a.fingerprint() for a in self.candidates(role)],
            "review_cycles": self.review_cycles if role == "review" else None,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def load_config(root: Path) -> Config:
    """Read and check ``.kittify/agents.yaml`` under *root*."""
    path = root / CONFIG_PATH
    if not path.is_file():
        raise ConfigError(
            path, "not found; run `kittydoit init` to write one for the agents installed here"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(path, f"cannot be read ({error})") from None
    return parse_config(read_yaml(text, path), path)


def read_yaml(text: str, path: Path | None = None) -> Any:
    """Return the YAML *text* as plain data; a YAML error is a ConfigError naming *path* and the line.

    Read by libyaml (:mod:`kittydoit.fastyaml`) when that surely gives what ruamel.yaml's safe reader gives, which
    spares a run importing ruamel.yaml (about 25 ms) when it edits no WP file the slow way; else by ruamel.yaml.
    """
    data = fastyaml.load(text)
    if data:  # an empty document is ruamel's to read (None, not a mapping)
        return data
    from ruamel.yaml import YAML  # noqa: PLC0415  # see above
    from ruamel.yaml.error import YAMLError  # noqa: PLC0415

    try:
        return YAML(typ="safe").load(text)
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(path, f"is not valid YAML ({where}{getattr(error, 'problem', error)})") from None


def parse_config(data: object, path: Path | None = None) -> Config:
    """Check the parsed YAML *data* and build a Config, reporting every problem at once."""
    problems: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, "must be a mapping (agents:, defaults:, ...)")
    _unknown_keys(data, _TOP_KEYS, "", problems)

    agents = _agents(data.get("agents"), problems)
    defaults = _defaults(data.get("defaults"), agents, problems)
    strategy = data.get("fallback_strategy", "next_in_list")
    if strategy not in FALLBACK_STRATEGIES:
        problems.append(f"fallback_strategy: {strategy!r} is not one of {', '.join(FALLBACK_STRATEGIES)}")
    max_retries = _int(data, "max_retries", 3, 0, problems)
    concurrency = _int(data, "global_concurrency", 5, 1, problems)
    timeout = _int(data, "global_timeout", 3600, 1, problems)
    cycles = _int(data, "review_cycles", 3, 1, problems)
    backoff = _int(data, "retry_backoff_seconds", 5, 0, problems)
    cooldown = _int(data, "rate_limit_cooldown_seconds", 60, 0, problems)
    commit = data.get("commit_lane_changes", False)
    if not isinstance(commit, bool):
        problems.append("commit_lane_changes: must be true or false")

    single, delay = _single_agent(data.get("single_agent_mode"), agents, problems)
    if agents and not any(a.enabled for a in agents.values()):
        problems.append("agents: no agent is enabled; enable at least one")
    if not agents and not any(p.startswith("agents") for p in problems):
        problems.append("agents: no agent is configured; run `kittydoit init` or add one under agents:")
    if problems:
        raise ConfigError(path, "; ".join(problems) if len(problems) == 1 else _bullets(problems))
    return Config(
        agents=agents,
        defaults=defaults,
        fallback_strategy=str(strategy),
        max_retries=max_retries,
        single_agent=single,
        review_delay_seconds=delay,
        global_concurrency=concurrency,
        global_timeout=timeout,
        review_cycles=cycles,
        commit_lane_changes=bool(commit),
        retry_backoff_seconds=backoff,
        rate_limit_cooldown_seconds=cooldown,
        path=path,
    )


def canonical_id(name: str) -> str:
    """Return the agent id spec-kitty uses for *name* (``claude`` -> ``claude-code``)."""
    return ALIASES.get(name, name)


def _bullets(problems: list[str]) -> str:
    return f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


def _unknown_keys(data: Mapping[str, Any], allowed: tuple[str, ...], prefix: str, problems: list[str]) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; allowed: {', '.join(allowed)}"
            problems.append(f"{prefix}{key}: unknown key{hint}")


def _int(  # noqa: PLR0917 -- a compact checker called a dozen times with the same shape
    data: Mapping[str, Any], key: str, default: int, minimum: int, problems: list[str], prefix: str = ""
) -> int:
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"{prefix}{key}: must be a whole number >= {minimum}, not {value!r}")
        return default
    if value < minimum:
        problems.append(f"{prefix}{key}: must be >= {minimum}, not {value}")
        return default
    return value


def _agents(raw: object, problems: list[str]) -> dict[str, AgentSettings]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("agents: must be a mapping of agent id to its settings")
        return {}
    agents: dict[str, AgentSettings] = {}
    for name, value in raw.items():
        agent_id = canonical_id(str(name))
        settings = _agent(agent_id, value, problems)
        if settings is not None:
            agents[agent_id] = settings
    return agents


def _agent(agent_id: str, value: object, problems: list[str]) -> AgentSettings | None:
    prefix = f"agents.{agent_id}."
    if isinstance(value, bool):
        value = {"enabled": value}
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems.append(f"agents.{agent_id}: must be true, false or a mapping of settings")
        return None
    _unknown_keys(value, _AGENT_KEYS, prefix, problems)
    spec = _spec(agent_id, value, problems)
    if spec is None:
        return None
    roles = value.get("roles", list(ROLES))
    if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
        problems.append(f"{prefix}roles: must be a list of {', '.join(ROLES)}, not {roles!r}")
        roles = list(ROLES)
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"{prefix}enabled: must be true or false")
        enabled = True
    model = value.get("model")
    if model is not None and not isinstance(model, str):
        problems.append(f"{prefix}model: must be a model name string")
        model = None
    timeout = value.get("timeout_seconds")
    return AgentSettings(
        spec=spec,
        enabled=enabled,
        roles=tuple(roles),
        priority=_int(value, "priority", DEFAULT_PRIORITY.get(agent_id, 100), 0, problems, prefix),
        max_concurrent=None if value.get("max_concurrent") is None
        else _int(value, "max_concurrent", 1, 1, problems, prefix),
        timeout_seconds=None if timeout is None else _int(value, "timeout_seconds", 0, 1, problems, prefix),
        model=model,
    )


def _spec(agent_id: str, value: Mapping[str, Any], problems: list[str]) -> AgentSpec | None:
    prefix = f"agents.{agent_id}."
    command = value.get("command")
    if command is None:
        if agent_id in BUILTIN:
            return BUILTIN[agent_id]
        known = ", ".join([*BUILTIN, *ALIASES]) or "none built in"
        close = difflib.get_close_matches(agent_id, [*BUILTIN, *ALIASES], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        problems.append(
            f"agents.{agent_id}: unknown agent; {hint}known agents: {known}; "
            "or describe a custom agent with command: [argv...]"
        )
        return None
    if isinstance(command, str):
        command = command.split()
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        problems.append(f"{prefix}command: must be a non-empty list of arguments, e.g. [my-agent, --yes]")
        return None
    prompt_via = value.get("prompt", "stdin")
    if prompt_via not in PROMPT_MODES:
        problems.append(f"{prefix}prompt: {prompt_via!r} is not one of {', '.join(PROMPT_MODES)}")
        prompt_via = "stdin"
    output = value.get("output", "text")
    formats = ("text", *BUILTIN)
    if not isinstance(output, str) or canonical_id(output) not in formats:
        problems.append(f"{prefix}output: {output!r} is not one of {', '.join(formats)} (a known agent's format)")
        output = "text"
    env = value.get("env") or {}
    if not isinstance(env, dict):
        problems.append(f"{prefix}env: must be a mapping of variable names to values")
        env = {}
    return custom_agent(
        agent_id,
        command,
        prompt_via=prompt_via,
        output=canonical_id(output),
        env={str(k): str(v) for k, v in env.items()},
    )


def _defaults(raw: object, agents: Mapping[str, AgentSettings], problems: list[str]) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("defaults: must map each role (implementation, review) to a list of agent ids")
        return {}
    result: dict[str, tuple[str, ...]] = {}
    for role, names in raw.items():
        if role not in ROLES:
            problems.append(f"defaults.{role}: unknown role; roles are {', '.join(ROLES)}")
            continue
        if not isinstance(names, list):
            problems.append(f"defaults.{role}: must be a list of agent ids")
            continue
        ids = tuple(canonical_id(str(n)) for n in names)
        for name in ids:
            if name not in agents:
                problems.append(f"defaults.{role}: agent '{name}' is not configured under agents")
        result[role] = ids
    return result


def _single_agent(raw: object, agents: Mapping[str, AgentSettings], problems: list[str]) -> tuple[str | None, int]:
    if raw is None or raw is False:
        return None, 60
    if not isinstance(raw, dict):
        problems.append("single_agent_mode: must be a mapping {enabled: ..., agent: ...}")
        return None, 60
    _unknown_keys(raw, _SINGLE_KEYS, "single_agent_mode.", problems)
    delay = _int(raw, "review_delay_seconds", 60, 0, problems, "single_agent_mode.")
    if not raw.get("enabled"):
        return None, delay
    name = raw.get("agent")
    if not name:
        problems.append("single_agent_mode.agent: name the agent to use when single-agent mode is enabled")
        return None, delay
    name = canonical_id(str(name))
    if name not in agents:
        problems.append(f"single_agent_mode.agent: '{name}' is not configured under agents")
        return None, delay
    if not agents[name].enabled:
        problems.append(f"single_agent_mode.agent: '{name}' is disabled; enable it or choose another")
        return None, delay
    return name, delay
