"""What a CI engine is given for a feature: one job per WP with its dependencies, then one integrate job.

:func:`build` reads it off a loaded feature and its agent settings: job names with the WP titles, the job
timeout from kittydoit's own worst case, the npm packages of the agent CLIs the WPs may use, one secret per agent
vendor, and per-vendor caps. The engines (:mod:`kittydoit.ci.github`, :mod:`kittydoit.ci.gitlab`) turn it into
their file; :func:`to_yaml` writes YAML readably (block style, every string that could be misread quoted).
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kittydoit import __version__
from kittydoit.config import Config
from kittydoit.context import Context
from kittydoit.feature import topological_order

# The secret each vendor's CLI reads its API key or token from; passed only to the step that runs agents.
SECRETS = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    "github": "COPILOT_GITHUB_TOKEN",
    "google": "GEMINI_API_KEY",
    "alibaba": "DASHSCOPE_API_KEY",
    "sst": "OPENCODE_API_KEY",
    "kilo": "KILO_API_KEY",
    "augment": "AUGMENT_SESSION_AUTH",
    "cursor": "CURSOR_API_KEY",
}
SETUP_MINUTES = 15  # checkout, installs, merges and the push, on top of the agents' worst case
PYTHON = "3.12"
ROLES = ("implementation", "review")


@dataclass(frozen=True)
class Job:
    """One WP's job."""

    wp: str
    title: str
    needs: tuple[str, ...]
    vendor: str | None  # its first implementer's vendor, for per-vendor caps (None: a custom agent)


@dataclass(frozen=True)
class Pipeline:
    """A feature's jobs and what every job needs, for any engine."""

    feature: str
    name: str
    jobs: tuple[Job, ...]
    worst_case_minutes: int  # kittydoit's own worst case for one WP (every try of every agent times out)
    job_minutes: int  # the job timeout: the worst case and the setup
    install: str  # the shell command that installs kittydoit
    npm_packages: tuple[str, ...]
    secrets: tuple[str, ...]
    caps: Mapping[str, int]  # vendor -> agents of that vendor at once, across jobs
    notes: tuple[str, ...]  # why the worst case is what it is, for the file's header

    @property
    def integrate_needs(self) -> tuple[str, ...]:
        return tuple(job.wp for job in self.jobs)

    def slot_groups(self, prefix: str = "kittydoit") -> dict[str, str]:
        """Return, per WP whose implementer's vendor is capped at K, one of K groups, assigned in turn."""
        taken = dict.fromkeys(self.caps, 0)
        groups = {}
        for job in self.jobs:
            if job.vendor is not None and job.vendor in self.caps:
                groups[job.wp] = f"{prefix}-{job.vendor}-{taken[job.vendor] % self.caps[job.vendor] + 1}"
                taken[job.vendor] += 1
        return groups

    @property
    def artifact(self) -> str:
        return f"kittydoit-{self.feature}"

    def job_command(self, wp: str) -> str:
        return f"kittydoit ci job {wp} --feature {shlex.quote(self.feature)}"

    def integrate_command(self) -> str:
        return f"kittydoit ci integrate --feature {shlex.quote(self.feature)}"

    def kept_paths(self) -> tuple[str, ...]:
        """Return what each WP job keeps as artifacts: its logs and its report."""
        return (f".kittify/logs/{self.feature}/", ".kittify/reports/ci/")


def build(ctx: Context, *, install: str | None = None, secrets: Sequence[str] = ()) -> Pipeline:
    """Return the pipeline of the feature in *ctx*."""
    feature, config = ctx.feature, ctx.config
    vendors = {role: [a.spec.vendor for a in config.candidates(role)] for role in ROLES}
    first = vendors["implementation"][0] if vendors["implementation"] else None
    vendor = first if first in SECRETS else None
    jobs = tuple(
        Job(wp_id, _inert(feature.wps[wp_id].title), feature.wps[wp_id].dependencies, vendor)
        for wp_id in topological_order(feature.wps)
    )
    used = [a for role in ROLES for a in config.candidates(role)]
    packages = sorted({a.spec.package for a in used if a.spec.package})
    named = sorted({SECRETS[a.spec.vendor] for a in used if a.spec.vendor in SECRETS} | set(secrets))
    seconds, notes = worst_case(config)
    worst = math.ceil(seconds / 60)
    return Pipeline(
        feature=feature.slug,
        name=feature.friendly_name,
        jobs=jobs,
        worst_case_minutes=worst,
        job_minutes=worst + SETUP_MINUTES,
        install=install or f"pip install 'kittydoit=={__version__}'",
        npm_packages=tuple(packages),
        secrets=tuple(named),
        caps=_caps(config),
        notes=notes,
    )


def _inert(title: str) -> str:
    """Return a WP title on one line that GitHub does not read as an expression (job names may hold ``${{ }}``)."""
    return " ".join(title.replace("${{", "$ {{").split())


def worst_case(config: Config) -> tuple[float, tuple[str, ...]]:
    """Return the longest one WP can take inside kittydoit (every try of every agent times out), and how."""

    def phase(role: str) -> float:
        agents = config.candidates(role)
        if config.fallback_strategy != "next_in_list":
            agents = agents[:1]
        tries = 1 if config.fallback_strategy == "fail" else config.max_retries + 1
        backoff = sum(min(config.retry_backoff_seconds * 2**i, 300) for i in range(tries - 1))
        return float(sum(config.timeout_for(a) * tries + backoff for a in agents))

    implement, review = phase("implementation"), phase("review")
    cycles = config.review_cycles
    delay = config.review_delay_seconds if config.single_agent else 0
    total = implement + cycles * (review + delay) + (cycles - 1) * implement
    tries = 1 if config.fallback_strategy == "fail" else config.max_retries + 1
    notes = (
        f"Worst case of one WP: {math.ceil(total / 60)} min (implement {math.ceil(implement / 60)} min, "
        f"{cycles} review{'s' if cycles != 1 else ''} of {math.ceil(review / 60)} min, "
        f"{cycles - 1} re-implementation{'s' if cycles != 2 else ''};",
        f"each agent's timeout x {tries} tries, every agent of the role, backoffs included).",
    )
    return total, notes


def _caps(config: Config) -> dict[str, int]:
    """Return, per vendor whose agents set ``max_concurrent``, how many of them may run at once across jobs.

    ``global_concurrency`` is not carried across jobs: it limits the agents on one machine, and a feature goes
    to CI to run more of them at once than one machine can.
    """
    caps: dict[str, int] = {}
    for agent in config.agents.values():
        if agent.enabled and agent.spec.vendor in SECRETS and agent.max_concurrent:
            caps[agent.spec.vendor] = caps.get(agent.spec.vendor, 0) + agent.max_concurrent
    return caps


def custom_binaries(config: Config) -> list[str]:
    """Return custom agents whose command names an absolute path, which a CI machine is unlikely to have."""
    return [
        f"{a.id} ({a.spec.binary})"
        for a in config.agents.values()
        if a.enabled and a.spec.vendor.startswith("custom:") and Path(a.spec.binary).is_absolute()
    ]


# ---- YAML, written to be read -------------------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z_./@][A-Za-z0-9_./@ ()*,=+-]*")
_SPECIAL = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"})


class Comment(str):
    """A mapping key that is written as a ``# comment`` line (its value is ignored)."""


def scalar(value: object) -> str:
    """Return *value* as a YAML scalar; strings are quoted unless they cannot be misread."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if text.startswith("${{") and text.endswith("}}") and ": " not in text and " #" not in text:
        return text
    if _PLAIN.fullmatch(text) and text.lower() not in _SPECIAL and not text.endswith(" ") and ": " not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def to_yaml(value: Mapping[str, object], indent: int = 0) -> list[str]:
    """Return a mapping as block-style YAML lines."""
    pad = " " * indent
    lines: list[str] = []
    for key, item in value.items():
        if isinstance(key, Comment):
            lines.append(f"{pad}# {key}" if key else "")
            continue
        head = f"{pad}{key if key == 'on' else scalar(key)}:"  # GitHub's trigger key is written bare, as its docs do
        lines += _item(head, item, indent)
    return lines


def _item(head: str, item: object, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(item, Mapping):
        return [f"{head} {{}}"] if not item else [head, *to_yaml(item, indent + 2)]
    if isinstance(item, list | tuple):
        if not item:
            return [f"{head} []"]
        if all(isinstance(i, str) and "\n" not in i for i in item) and len(head) + sum(len(i) + 2 for i in item) < 100:
            return [f"{head} [{', '.join(scalar(i) for i in item)}]"]
        lines = [head]
        for entry in item:
            if isinstance(entry, Mapping):
                inner = to_yaml(entry, indent + 4)
                lines.append(f"{pad}  - {inner[0].lstrip()}")
                lines += inner[1:]
            elif isinstance(entry, str) and "\n" in entry:
                lines += _block(f"{pad}  -", entry, indent + 4)
            else:
                lines.append(f"{pad}  - {scalar(entry)}")
        return lines
    if isinstance(item, str) and "\n" in item:
        return _block(head, item, indent + 2)
    return [f"{head} {scalar(item)}"]


def _block(head: str, text: str, indent: int) -> list[str]:
    pad = " " * indent
    return [f"{head} |", *(f"{pad}{line}" if line else "" for line in text.rstrip("\n").split("\n"))]
