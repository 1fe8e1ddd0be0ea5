"""The agent CLIs kittydoit drives: a table of rows, one per agent, plus custom commands from config.

A row says how to run an agent headless for each role (implementation may edit files; review only reads, where
the CLI can enforce that), how the prompt goes in (on stdin, as an argument, or as a file), how a model is
chosen, how its output is read (:mod:`kittydoit.outputs`) and how its failures look (:class:`FailureSignals`).
Adding an agent is adding a row. Placeholders in argument templates: ``{prompt}`` (the prompt text, for agents
that take it as an argument), ``{prompt_file}``, ``{workdir}``, ``{model}`` and ``{role}``.

The flags are those the releases pinned in :data:`BUILTIN` accept (checked by ``kittydoit agents --check`` and
by the tests against the real CLIs). Every agent starts with stdin either a fully written prompt file or closed:
codex and opencode wait forever on an open pipe.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from kittydoit import outputs
from kittydoit.outputs import AgentOutput, FailureSignals

ROLES = ("implementation", "review")
PROMPT_MODES = ("stdin", "argument", "file")

# Linux caps one argument at 128 KiB (MAX_ARG_STRLEN); an argument-mode prompt past it cannot be started.
ARGUMENT_LIMIT = 128 * 1024 - 1

_EMPTY: Mapping[str, str] = MappingProxyType({})


class PromptTooLong(ValueError):
    """The prompt does not fit in one command-line argument, and the agent takes it no other way."""


@dataclass(frozen=True)
class AgentSpec:
    """How to run one agent CLI headless, read its output, and recognise its failures."""

    id: str
    binary: str
    args: Mapping[str, tuple[str, ...]]  # per role, after the binary
    prompt_via: str = "stdin"
    model_args: tuple[str, ...] = ()
    output: str = "text"
    env: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    root_env: Mapping[str, str] = field(default_factory=lambda: _EMPTY)  # added when running as root
    failures: FailureSignals = field(default_factory=FailureSignals)
    stop_after_result: bool = False  # the CLI may hang after its final result: stop it then, keep the result
    install: str = ""  # how to install it, for messages
    package: str = ""  # npm package@version the rows were checked against
    vendor: str = ""
    name: str = ""  # for people: "Claude Code"
    version_args: tuple[str, ...] = ("--version",)
    help_args: tuple[str, ...] = ("--help",)  # where `--check` finds the flags when the sentinel check cannot
    sentinel_check: bool = True  # an unknown flag is named in its parser's error (see kittydoit.detect)

    def argv(
        self, role: str, *, prompt: str, prompt_file: Path, workdir: Path, model: str | None
    ) -> list[str]:
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
        if any(len(part.encode()) > ARGUMENT_LIMIT for part in argv):
            raise PromptTooLong(
                f"{self.id} takes the prompt as one argument, and this prompt is longer than Linux allows "
                f"({ARGUMENT_LIMIT // 1024} KiB); choose an agent that reads stdin or a file for this WP"
            )
        return argv

    def stdin_path(self, prompt_file: Path) -> Path | None:
        """Return the file to open on the agent's stdin (the prompt, or nothing: stdin is closed)."""
        return prompt_file if self.prompt_via == "stdin" else None

    def environment(self, base: Mapping[str, str], *, is_root: bool | None = None) -> dict[str, str]:
        """Return the environment to run the agent in: *base*, the row's variables, and root's when root."""
        if is_root is None:
            is_root = os.geteuid() == 0
        return {**base, **self.env, **(self.root_env if is_root else {})}

    def parse_output(self, stdout: str, stderr: str, returncode: int | None) -> AgentOutput:
        """Read a finished run's output into the common record, classifying its failure if any."""
        return outputs.parse(self.output, stdout, stderr, returncode=returncode, signals=self.failures)

    @property
    def is_finished(self) -> Callable[[str], bool] | None:
        """Return the test for "stdout holds the final result" when the CLI may hang after it, else None."""
        if not self.stop_after_result:
            return None
        return lambda stdout: outputs.has_final_result(self.output, stdout)

    def shown(self, role: str, model: str | None = None) -> list[str]:
        """Return the command line for *role* as it would run, with placeholders for the per-WP parts."""
        argv = self.argv(
            role,
            prompt="<prompt>",
            prompt_file=Path("<prompt-file>"),
            workdir=Path("<worktree>"),
            model=model,
        )
        return argv


def custom_agent(
    agent_id: str,
    command: list[str],
    *,
    prompt_via: str = "stdin",
    output: str = "text",
    env: Mapping[str, str] | None = None,
) -> AgentSpec:
    """Return the row of an agent a user describes in config as an argv template.

    *output* is ``text`` or the name of a known agent's format (``claude-code``, ``codex``, ...); a known
    format also brings that agent's failure signals and, for cursor, the stop after the final result.
    """
    known = BUILTIN.get(output)
    return AgentSpec(
        id=agent_id,
        binary=command[0],
        args={role: tuple(command[1:]) for role in ROLES},
        prompt_via=prompt_via,
        output=known.output if known else output,
        env=MappingProxyType(dict(env or {})),
        failures=known.failures if known else FailureSignals(),
        stop_after_result=known.stop_after_result if known else False,
        vendor=f"custom:{agent_id}",
        name=agent_id,
        sentinel_check=False,
    )


def _row(agent_id: str, **fields: object) -> AgentSpec:
    args = fields.pop("args")
    return AgentSpec(id=agent_id, args=MappingProxyType(args), **fields)  # type: ignore[arg-type]


_RATE = outputs.RATE_LIMIT
_AUTH = outputs.AUTH

# The named agent CLIs, one row each, in spec-kitty's order. The comment above each row says why its flags are
# what they are; the facts are those of the pinned `package`.
BUILTIN: Mapping[str, AgentSpec] = MappingProxyType(
    {
        # Claude Code: -p prints one JSON result object. bypassPermissions auto-approves tools; as root Claude
        # refuses it unless IS_SANDBOX=1. The reviewer runs in dontAsk mode with read and shell tools pre-allowed,
        # so edits are denied (it can still run the WP's checks). Prompt on stdin.
        "claude-code": _row(
            "claude-code",
            name="Claude Code",
            binary="claude",
            args={
                "implementation": ("-p", "--output-format", "json", "--permission-mode", "bypassPermissions"),
                "review": (
                    "-p",
                    "--output-format",
                    "json",
                    "--permission-mode",
                    "dontAsk",
                    "--allowedTools",
                    "Read,Grep,Glob,Bash",
                ),
            },
            model_args=("--model", "{model}"),
            output="claude",
            root_env=MappingProxyType({"IS_SANDBOX": "1"}),
            failures=FailureSignals(
                patterns=(
                    (outputs.USAGE, r"error: unknown option|error: option .* argument missing"),
                    (_AUTH, r"Not logged in|Invalid API key|/login|OAuth token has expired"),
                    (_RATE, r"rate.?limit|\b429\b|usage limit reached"),
                ),
            ),
            package="@anthropic-ai/claude-code@2.1.331",
            install="npm install -g @anthropic-ai/claude-code@2.1.331",
            vendor="anthropic",
        ),
        # Codex: `exec` is the headless command and `-` reads the prompt from stdin. `--full-auto` is a parse
        # error in this release; `-s workspace-write` lets it edit the worktree, `-s read-only` keeps the reviewer
        # from writing. `--json` streams JSONL events. `-C` sets the working root.
        "codex": _row(
            "codex",
            name="Codex",
            binary="codex",
            args={
                "implementation": ("exec", "--json", "-s", "workspace-write", "-C", "{workdir}", "-"),
                "review": ("exec", "--json", "-s", "read-only", "-C", "{workdir}", "-"),
            },
            model_args=("-m", "{model}"),
            output="codex",
            failures=FailureSignals(
                exit_codes=MappingProxyType({2: outputs.USAGE}),
                patterns=(
                    (outputs.USAGE, r"unexpected argument|error: invalid value"),
                    (outputs.CONFIG, r"Not inside a trusted directory"),
                    (_RATE, r"\b429\b|rate.?limit|usage limit"),
                    (_AUTH, r"401|unauthorized|not logged in|OPENAI_API_KEY|login"),
                ),
            ),
            package="@openai/codex@0.169.0",
            install="npm install -g @openai/codex@0.169.0",
            vendor="openai",
        ),
        # Copilot: the standalone `copilot` CLI (the `gh copilot` extension is gone). It reads a piped prompt;
        # --allow-all-tools is required headless, --no-ask-user stops it asking, JSONL events on stdout. The
        # reviewer is denied the `write` tool.
        "copilot": _row(
            "copilot",
            name="GitHub Copilot CLI",
            binary="copilot",
            args={
                "implementation": (
                    "--allow-all-tools",
                    "--output-format",
                    "json",
                    "--no-ask-user",
                    "-C",
                    "{workdir}",
                ),
                "review": (
                    "--allow-all-tools",
                    "--deny-tool",
                    "write",
                    "--output-format",
                    "json",
                    "--no-ask-user",
                    "-C",
                    "{workdir}",
                ),
            },
            model_args=("--model", "{model}"),
            output="copilot",
            failures=FailureSignals(
                patterns=(
                    (outputs.USAGE, r"unexpected argument|Invalid command format"),
                    (_AUTH, r"No authentication information found|not authenticated|copilot login"),
                    (_RATE, r"\b429\b|rate.?limit"),
                ),
            ),
            package="@github/copilot@1.0.102",
            install="npm install -g @github/copilot@1.0.102",
            vendor="github",
        ),
        # Gemini: reads the prompt from stdin when it is not a terminal, so no -p argument is needed. yolo is
        # silently downgraded in an untrusted folder (every fresh worktree is one) unless --skip-trust is given.
        # The reviewer runs in plan mode, which denies writes. Errors come as JSON on stderr; exit codes classify.
        "gemini": _row(
            "gemini",
            name="Gemini CLI",
            binary="gemini",
            args={
                "implementation": ("--output-format", "json", "--approval-mode", "yolo", "--skip-trust"),
                "review": ("--output-format", "json", "--approval-mode", "plan", "--skip-trust"),
            },
            model_args=("-m", "{model}"),
            output="gemini",
            failures=FailureSignals(
                exit_codes=MappingProxyType(
                    {
                        41: _AUTH,
                        42: outputs.USAGE,
                        44: outputs.CONFIG,
                        52: outputs.CONFIG,
                        53: outputs.LIMIT,
                        54: outputs.TOOL,
                        55: outputs.CONFIG,
                    }
                ),
                patterns=(
                    (outputs.USAGE, r"Unknown arguments"),
                    (_RATE, r"\b429\b|RESOURCE_EXHAUSTED|rate.?limit|quota"),
                    (_AUTH, r"GEMINI_API_KEY|auth method|login required"),
                ),
            ),
            package="@google/gemini-cli@0.61.0",
            install="npm install -g @google/gemini-cli@0.61.0",
            vendor="google",
        ),
        # Qwen Code: a Gemini CLI fork; the prompt comes on stdin (-p is deprecated). The result is a JSON array of
        # events ending in a result object. Plan mode keeps the reviewer from changing files or running commands.
        "qwen": _row(
            "qwen",
            name="Qwen Code",
            binary="qwen",
            args={
                "implementation": ("--output-format", "json", "--approval-mode", "yolo"),
                "review": ("--output-format", "json", "--approval-mode", "plan"),
            },
            model_args=("-m", "{model}"),
            output="qwen",
            failures=FailureSignals(
                exit_codes=MappingProxyType({55: outputs.LIMIT}),
                patterns=(
                    (outputs.USAGE, r"Unknown arguments"),
                    (_RATE, r"\b429\b|rate.?limit exceeded|quota exceeded"),
                    (_AUTH, r"No auth type|auth type|API key|\b401\b"),
                ),
            ),
            package="@qwen-code/qwen-code@0.24.4",
            install="npm install -g @qwen-code/qwen-code@0.24.4",
            vendor="alibaba",
        ),
        # OpenCode: `run` reads a piped prompt; --auto approves what is not explicitly denied; --dir sets the
        # worktree. The reviewer uses the built-in read-only `plan` agent. JSONL events, no final result object.
        # Its parser ignores unknown flags, so `--check` compares the flags with `run --help` instead.
        "opencode": _row(
            "opencode",
            name="OpenCode",
            binary="opencode",
            args={
                "implementation": ("run", "--format", "json", "--auto", "--dir", "{workdir}"),
                "review": ("run", "--format", "json", "--auto", "--agent", "plan", "--dir", "{workdir}"),
            },
            model_args=("-m", "{model}"),
            output="opencode",
            failures=FailureSignals(
                patterns=(
                    (outputs.USAGE, r"^(opencode|kilo) run \[message\.\.\]"),
                    (_RATE, r"\b429\b|rate.?limit|Too Many Requests"),
                    (_AUTH, r"\b401\b|unauthori[sz]ed|API key"),
                ),
            ),
            package="opencode-ai@1.18.33",
            install="npm install -g opencode-ai@1.18.33",
            vendor="sst",
            help_args=("run", "--help"),
            sentinel_check=False,
        ),
        # Kilo Code: its current CLI is an OpenCode fork with the same `run` flags and event schema (7.8.1 does not
        # install; 7.7.7 does). Same read-only `plan` agent for the reviewer.
        "kilocode": _row(
            "kilocode",
            name="Kilo Code",
            binary="kilo",
            args={
                "implementation": ("run", "--format", "json", "--auto", "--dir", "{workdir}"),
                "review": ("run", "--format", "json", "--auto", "--agent", "plan", "--dir", "{workdir}"),
            },
            model_args=("-m", "{model}"),
            output="opencode",
            failures=FailureSignals(
                patterns=(
                    (outputs.USAGE, r"^(opencode|kilo) run \[message\.\.\]"),
                    (_RATE, r"\b429\b|rate.?limit|Too Many Requests"),
                    (_AUTH, r"\b401\b|unauthori[sz]ed|API key"),
                ),
            ),
            package="@kilocode/cli@7.7.7",
            install="npm install -g @kilocode/cli@7.7.7",
            vendor="kilo",
            help_args=("run", "--help"),
            sentinel_check=False,
        ),
        # Auggie: --print runs headless; the prompt goes in as a file (--instruction-file), so its length is no
        # problem. --ask limits the reviewer to retrieval and non-editing tools. One JSON result object.
        "augment": _row(
            "augment",
            name="Auggie (Augment Code)",
            binary="auggie",
            args={
                "implementation": (
                    "--print",
                    "--output-format",
                    "json",
                    "-w",
                    "{workdir}",
                    "--instruction-file",
                    "{prompt_file}",
                ),
                "review": (
                    "--print",
                    "--ask",
                    "--output-format",
                    "json",
                    "-w",
                    "{workdir}",
                    "--instruction-file",
                    "{prompt_file}",
                ),
            },
            prompt_via="file",
            model_args=("-m", "{model}"),
            output="auggie",
            failures=FailureSignals(
                patterns=(
                    (outputs.USAGE, r"error: unknown option"),
                    (_AUTH, r"No auth provided|auggie login|Authentication failed"),
                    (_RATE, r"\b429\b|rate.?limit"),
                ),
            ),
            package="@augmentcode/auggie@0.36.0",
            install="npm install -g @augmentcode/auggie@0.36.0",
            vendor="augment",
        ),
        # Cursor: not on npm. -p with the prompt as an argument; --force approves commands, --trust skips the
        # workspace-trust prompt that otherwise ends a headless run; --workspace sets the worktree. The reviewer
        # runs in read-only `ask` mode. It can hang after printing its result, so it is stopped once the result
        # is out and always runs under a timeout. Failures print no JSON, only stderr and an exit code.
        "cursor": _row(
            "cursor",
            name="Cursor CLI",
            binary="cursor-agent",
            args={
                "implementation": (
                    "-p",
                    "--output-format",
                    "json",
                    "--force",
                    "--trust",
                    "--workspace",
                    "{workdir}",
                ),
                "review": (
                    "-p",
                    "--output-format",
                    "json",
                    "--mode",
                    "ask",
                    "--trust",
                    "--workspace",
                    "{workdir}",
                ),
            },
            prompt_via="argument",
            model_args=("--model", "{model}"),
            output="cursor",
            stop_after_result=True,
            failures=FailureSignals(
                patterns=(
                    (outputs.USAGE, r"unknown option"),
                    (_AUTH, r"not (logged in|authenticated)|cursor-agent login|CURSOR_API_KEY"),
                    (_RATE, r"\b429\b|rate.?limit"),
                    (outputs.CONFIG, r"Workspace Trust Required"),
                ),
            ),
            install="curl https://cursor.com/install -fsS | bash   (Cursor's installer; not on npm)",
            vendor="cursor",
        ),
    }
)

# Names spec-kitty and its users also use for the same agents.
ALIASES: Mapping[str, str] = MappingProxyType(
    {"claude": "claude-code", "auggie": "augment", "kilo": "kilocode"}
)


def _fill(part: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        part = part.replace("{" + name + "}", value)
    return part
