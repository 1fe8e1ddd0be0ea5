"""Which agent settings a repository works with: its ``.kittify/agents.yaml``, else the defaults of ``kittydoit init``.

A spec-kitty repository that never saw kittydoit works as it is (spec-kitty's design: "sensible defaults work").
Without ``.kittify/agents.yaml`` the settings are those ``kittydoit init`` would write for the agents found on
PATH and those ``.kittify/config.yaml`` lists (:func:`kittydoit.scaffold.default_agents_yaml` is the one source of
them), read from that text as the file would be, and nothing is written.

What a command makes of the outcome is its own business: one that only reads (``list``, ``plan``, ``graph``,
``agents``) works whatever it is and may say what is wrong in one line; a run starts only when
:attr:`Settings.problem` is None, and says so when it uses the defaults (:attr:`Settings.note`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kittydoit import detect
from kittydoit.config import CONFIG_PATH, Config, load_config, parse_config, read_yaml
from kittydoit.errors import ConfigError, UserError
from kittydoit.scaffold import default_agents_yaml, install_help

NO_AGENTS = Config(agents={})  # what a command that only reads works with when there are no usable settings


@dataclass(frozen=True)
class Settings:
    """The agent settings a command works with, where they came from, and what stops a run."""

    config: Config
    source: str  # "file" (.kittify/agents.yaml) or "defaults" (what `kittydoit init` would write)
    note: str | None = None  # what a run says at its start when it uses the defaults
    problem: UserError | None = None  # why a run cannot start: the file is broken, or no agent is installed


def resolve(root: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Return the settings of the repository at *root*, never raising for a mistake in them (see the module)."""
    if (root / CONFIG_PATH).is_file():
        try:
            return Settings(load_config(root), "file")
        except ConfigError as error:
            return Settings(NO_AGENTS, "file", problem=error)
    try:
        text = default_agents_yaml(root, env, versions=False)
    except ConfigError as error:  # .kittify/config.yaml cannot be read
        return Settings(NO_AGENTS, "defaults", problem=error)
    except UserError:  # no agent on PATH, none listed
        return Settings(NO_AGENTS, "defaults", problem=_none_installed([]))
    config = parse_config(read_yaml(text))
    on_path = [a.id for a in config.agents.values() if detect.find(a.spec, env=env, version=False)]
    listed = [agent_id for agent_id in config.agents if agent_id not in on_path]
    if not on_path:
        return Settings(NO_AGENTS, "defaults", problem=_none_installed(listed))
    note = f"no {CONFIG_PATH}: using {_and(on_path)} as found on PATH"
    if listed:
        note += f" ({_and(listed)} listed in .kittify/config.yaml, not installed)"
    if config.single_agent:
        note += f", {config.single_agent} reviewing its own work"
    return Settings(config, "defaults", note=note + "; `kittydoit init` writes this as a file you can edit")


def one_line(error: UserError) -> str:
    """Return *error* as one line: a list of problems joined with semicolons."""
    first, *rest = str(error).splitlines()
    return " ".join([first, "; ".join(line.strip().removeprefix("- ") for line in rest)]).strip()


def _none_installed(listed: list[str]) -> ConfigError:
    also = f" ({_and(listed)} listed in .kittify/config.yaml, not installed)" if listed else ""
    return ConfigError(
        None,
        f"no {CONFIG_PATH}, and no agent CLI found on PATH to run with{also}. Install one, then run again "
        f"(`kittydoit init` writes an agents.yaml you can edit):\n{install_help()}",
    )


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
