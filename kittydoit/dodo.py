"""Build what doit loads: ``DOIT_CONFIG`` and the task creator, for a repository's dodo.py or the kittydoit CLI."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from doit import get_var

from kittydoit.context import Context, load_context
from kittydoit.dispatch import use_definition_order
from kittydoit.reporter import Reporter
from kittydoit.tasks import task_dicts
from kittydoit.workflow import check_templates


def doit_namespace(
    dodo_file: str | Path | None = None, *, feature: str | None = None, cache: bool = True
) -> dict[str, Any]:
    """Return ``DOIT_CONFIG`` and ``task_kittydoit`` for the repository holding *dodo_file* (or the cwd).

    The feature is *feature*, else the doit variable ``feature=...``, else the only one in kitty-specs/. Without
    *cache* the WP files are parsed afresh and the parse cache is not written.
    """
    _log_to_stderr()
    start = Path(dodo_file).resolve().parent if dodo_file else Path.cwd()
    ctx = load_context(start, feature or get_var("feature"), cache=cache)
    check_templates(ctx)
    _pin_fork()
    use_definition_order()  # ready WPs start longest remaining chain first, not first come first served

    def task_kittydoit() -> Iterator[dict[str, Any]]:
        """Work packages of the feature."""
        return task_dicts(ctx)

    return {"DOIT_CONFIG": doit_config(ctx), "task_kittydoit": task_kittydoit}


def doit_config(ctx: Context) -> dict[str, Any]:
    """Return kittydoit's defaults for doit's options; command-line options still override them."""
    return {
        "backend": "kittydoit",
        "dep_file": ctx.paths.rel(ctx.paths.db),
        "default_tasks": ["implement", "review"],
        "continue": True,  # independent WPs go on when one fails
        "reporter": Reporter(ctx),
        # Even one worker runs tasks in a child process: when the orchestrator is killed, that worker
        # stops its agent (see workflow._tie_to_orchestrator). `-n 0` runs tasks in the main process.
        "num_process": 1,
        "par_type": "process",
    }


def _log_to_stderr() -> None:
    """Show kittydoit's warnings (a corrupt state file set aside, leftovers stopped) as ``kittydoit: ...`` lines."""
    logger = logging.getLogger("kittydoit")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("kittydoit: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def _pin_fork() -> None:
    """Use fork for doit's workers: tasks hold the loaded feature, which workers inherit instead of reloading."""
    if multiprocessing.get_start_method(allow_none=True) is None:
        multiprocessing.set_start_method("fork")
