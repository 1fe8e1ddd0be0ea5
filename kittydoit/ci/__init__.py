"""A feature on a CI engine: one job per WP across machines, kittydoit inside each job, state carried by git.

The engines are variants of one noun, each a module with the same four names: ``NAME``, ``path(feature)`` (where
its file goes), ``render(pipeline, command)`` (the file's text) and ``warnings(pipeline)`` (limits the pipeline
does not fit). :data:`ENGINES` lists them; :func:`generate` writes or checks an engine's file. What each job runs
is in :mod:`kittydoit.ci.jobs`, the state it carries in :mod:`kittydoit.ci.seals`; the rest of kittydoit imports
only this module.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from kittydoit.ci import github, gitlab
from kittydoit.ci.jobs import integrate, run_job
from kittydoit.ci.pipeline import build, custom_binaries
from kittydoit.context import Context
from kittydoit.errors import EXIT_OK, EXIT_WP_FAILED, UserError
from kittydoit.state import write_atomic

ENGINES: dict[str, ModuleType] = {github.NAME: github, gitlab.NAME: gitlab}

__all__ = ["ENGINES", "generate", "integrate", "run_job"]


def generate(
    ctx: Context,
    engine_name: str,
    *,
    say: Callable[[str], None],
    warn: Callable[[str], None] | None = None,
    check: bool = False,
    output: Path | None = None,
    install: str | None = None,
    secrets: Sequence[str] = (),
) -> int:
    """Write the engine's file for the feature in *ctx* (or, with *check*, compare it); return the exit code.

    What the file cannot promise (a worst case beyond the engine's job limit, an agent a runner will not have)
    goes to *warn* (default *say*).
    """
    warn = warn or say
    engine = ENGINES.get(engine_name)
    if engine is None:
        raise UserError(None, f"unknown CI engine '{engine_name}'; choose one of: {', '.join(ENGINES)}")
    command = ["kittydoit", "ci", engine_name, "--feature", ctx.feature.slug]
    command += ["--install", install] if install else []
    for secret in secrets:
        command += ["--secret", secret]
    pipeline = build(ctx, install=install, secrets=secrets)
    text = engine.render(pipeline, shlex.join(command))
    target = output or ctx.paths.root / engine.path(ctx.feature.slug)
    shown = ctx.paths.rel(target.resolve()) if target.is_absolute() else str(target)
    for warning in engine.warnings(pipeline):
        warn(f"warning: {warning}")
    for agent in custom_binaries(ctx.config):
        warn(f"warning: custom agent {agent} is an absolute path, which a CI machine may not have")
    if check:
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current == text:
            say(f"{shown} matches the work packages of {ctx.feature.slug}")
            return EXIT_OK
        why = "does not exist" if current is None else "no longer matches the work packages or agents.yaml"
        say(f"{shown} {why}; run `{shlex.join(command)}` and commit it")
        return EXIT_WP_FAILED
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, text)
    say(f"wrote {shown}: {len(pipeline.jobs)} WP jobs and an integrate job; commit it, then dispatch it")
    return EXIT_OK
