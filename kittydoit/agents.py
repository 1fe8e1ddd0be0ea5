"""The agent CLIs kittydoit drives: a table of rows, one per agent, plus custom commands from config.

A row says how to run an agent headless for each role (implementation may edit files; review reads), how the
prompt goes in (on stdin, as an argument, or as a file), how a model is chosen, and how its output is read
(:mod:`kittydoit.outputs`). Adding an agent is adding a row. Placeholders in argument templates:
``{prompt}`` (the prompt text, for agents that take it as an argument), ``{prompt_file}``, ``{workdir}``,
``{model}`` and ``{role}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

ROLES = ("implementation", "review")
PROMPT_MODES = ("stdin", "argument", "file")

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class AgentSpec:
    """How to run one agent CLI headless."""

    id: str
    binary: str
    args: Mapping[str, tuple[str, ...]]  # per role, after the binary
    prompt_via: str = "stdin"
    model_args: tuple[str, ...] = ()
    output: str = "text"
    env: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    install: str = ""
    vendor: str = ""

    def argv(self, role: str, *, prompt: str, prompt_file: Path, workdir: Path, model: str | None) -> list[str]:
        """Return the command line for *role*; the prompt is in it only for argument-mode agents."""
        values = {
            "prompt": prompt,
            "prompt_file": str(prompt_file),
            "workdir": str(workdir),
            "model": model or "",
            "role": role,
        }
        template = list(self.args.get(role, ()))
        if model and self.model_args:
            template += self.model_args
        argv = [self.binary, *(_fill(part, values) for part in template)]
        if self.prompt_via == "argument" and not any("{prompt}" in part for part in template):
            argv.append(prompt)
        return argv

    def stdin_path(self, prompt_file: Path) -> Path | None:
        """Return the file to open on the agent's stdin (the prompt, or nothing: stdin is closed)."""
        return prompt_file if self.prompt_via == "stdin" else None


def custom_agent(
    agent_id: str,
    command: list[str],
    *,
    prompt_via: str = "stdin",
    output: str = "text",
    env: Mapping[str, str] | None = None,
) -> AgentSpec:
    """Return the row of an agent a user describes in config as an argv template."""
    return AgentSpec(
        id=agent_id,
        binary=command[0],
        args={role: tuple(command[1:]) for role in ROLES},
        prompt_via=prompt_via,
        output=output,
        env=MappingProxyType(dict(env or {})),
        vendor=f"custom:{agent_id}",
    )


# The named agent CLIs. Each is a row; see docs in README.md ("Agents") for the flags and why.
BUILTIN: Mapping[str, AgentSpec] = MappingProxyType({})

# Names spec-kitty and its users also use for the same agents.
ALIASES: Mapping[str, str] = MappingProxyType({"claude": "claude-code", "auggie": "augment"})


def _fill(part: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        part = part.replace("{" + name + "}", value)
    return part
