"""Build what doit loads: ``DOIT_CONFIG`` and the task creator, for a repository's dodo.py or the kittydoit CLI."""

from __future__ import annotations

import logging
import multiprocessing
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from doit import get_var
from doit.cmd_base import DodoTaskLoader, DoitCmdBase
from doit.cmd_run import Run
from doit.cmdparse import CmdOption, CmdParse, CmdParseError
from doit.doit_cmd import DoitMain

from kittydoit.context import Context, load_context
from kittydoit.dispatch import use_definition_order
from kittydoit.reporter import Reporter
from kittydoit.tasks import PHASES, task_dicts
from kittydoit.workflow import check_templates


def doit_namespace(
    dodo_file: str | Path | None = None,
    *,
    feature: str | None = None,
    cache: bool = True,
    for_run: bool | None = None,
) -> dict[str, Any]:
    """Return ``DOIT_CONFIG`` and ``task_kittydoit`` for the repository holding *dodo_file* (or the cwd).

    The feature is *feature*, else the doit variable ``feature=...``, else the only one in kitty-specs/. Without
    *cache* the WP files are parsed afresh and the parse cache is not written. *for_run* says whether the
    command runs tasks, which needs usable agent settings (see :func:`kittydoit.context.load_context`); None
    reads it off the command line, as plain ``doit`` will (:func:`runs_tasks`).
    """
    log_to_stderr()
    start = Path(dodo_file).resolve().parent if dodo_file else Path.cwd()
    if for_run is None:
        for_run = runs_tasks(sys.argv[1:])
    ctx = load_context(start, feature or get_var("feature"), cache=cache, for_run=for_run)
    return context_namespace(ctx, options_then_run(sys.argv[1:]) if dodo_file is not None else None)


def context_namespace(ctx: Context, after_run: list[str] | None = None) -> dict[str, Any]:
    """Return ``DOIT_CONFIG`` and ``task_kittydoit`` for a loaded context (``kittydoit ci job`` shapes its own)."""
    log_to_stderr()
    check_templates(ctx)
    _pin_fork()
    use_definition_order()  # ready WPs start longest remaining chain first, not first come first served

    def task_kittydoit() -> Iterator[dict[str, Any]]:
        """Work packages of the feature."""
        yield from task_dicts(ctx)
        if after_run is not None:
            yield run_as_task(after_run)

    return {"DOIT_CONFIG": doit_config(ctx), "task_kittydoit": task_kittydoit}


def doit_config(ctx: Context) -> dict[str, Any]:
    """Return kittydoit's defaults for doit's options; command-line options still override them."""
    return {
        "backend": "kittydoit",
        "dep_file": ctx.paths.rel(ctx.paths.db),
        "default_tasks": list(PHASES),  # the groups standing for every WP's phase
        "continue": True,  # independent WPs go on when one fails
        "reporter": Reporter(ctx, workers=requested_workers(sys.argv[1:])),
        # Even one worker runs tasks in a child process: when the orchestrator is killed, that worker
        # stops its agent (see workflow._tie_to_orchestrator). `-n 0` runs tasks in the main process.
        "num_process": 1,
        "par_type": "process",
    }


def runs_tasks(args: Sequence[str]) -> bool:
    """Tell whether doit's command line *args* runs tasks (``run``, the default, or ``strace``).

    Commands that only read or forget (``list``, ``info``, ``forget``, ...) need no agents, so they work without
    usable agent settings. Read as doit reads it: loader options, then variables, then the command, if any.
    """
    rest = _options_and_words(args)
    commands = {cmd.get_name(): cmd for cmd in DoitMain.DOIT_CMDS}
    if rest and rest[0] in commands:
        return bool(commands[rest[0]].execute_tasks)
    return True  # no command name first: doit runs `run` (another plugin's command is taken to run tasks too)


def requested_workers(args: Sequence[str]) -> int:
    """Return how many workers doit's command line *args* asks for (``-n``/``--process``; 1, kittydoit's default,
    when it asks for none or for ``-n 0``). Read as doit reads options, before and after the command name; a
    command line doit rejects gives 1 (doit reports it)."""
    rest = _options_and_words(args)
    parser = _run_parser()
    workers = 1
    while rest:
        if not rest[0].startswith("-"):
            rest = rest[1:]  # the command's name, or a task's
            continue
        try:
            found, rest = parser.parse_only(rest)
        except (CmdParseError, KeyError, ValueError):
            return 1
        workers = int(found.get("num_process", workers))
    return max(workers, 1)


def options_then_run(args: Sequence[str]) -> list[str] | None:
    """Return the task names of ``doit [options] run [tasks]``; None for any other command line.

    doit takes a command only as its first argument, so in ``doit -n 4 run implement review`` it reads ``run``
    as the name of a task, and stops: there is none. This reads *args* with doit's own option parser, as doit
    does, to find that case.
    """
    rest = _options_and_words(args)
    if not rest or not rest[0].startswith("-"):
        return None  # a command first (`doit run -n 4`), or a task: doit reads it right
    try:
        _, positional = _run_parser().parse(rest)
    except CmdParseError:
        return None  # doit reports it
    if not positional or positional[0] != "run":
        return None
    return list(positional[1:])


def run_as_task(tasks: Sequence[str]) -> dict[str, Any]:
    """Return a task ``run`` that makes ``doit [options] run [tasks]`` do what ``doit run [options] [tasks]`` does.

    Alone (``doit -n 4 run``) it stands for the default tasks; beside named tasks it does nothing, so only they
    run. It is defined only for such a command line, so ``doit list`` never shows it.
    """
    return {
        "basename": "run",
        "doc": "`doit [options] run`: the command `run`, read by doit as a task name",
        "actions": None,
        "task_dep": [] if tasks else list(PHASES),
    }


def _options_and_words(args: Sequence[str]) -> list[str]:
    """Return doit's command line *args* without the loader's options and without variables (``feature=...``)."""
    return [arg for arg in _without_loader_options(args) if arg.startswith("-") or "=" not in arg]


def _run_parser() -> CmdParse:
    """Return a parser of the options ``doit run`` takes (its own and every command's)."""
    return CmdParse(
        [CmdOption(opt) for opt in (*DoitCmdBase.base_options, *DodoTaskLoader.cmd_options, *Run.cmd_options)]
    )


def _without_loader_options(args: Sequence[str]) -> list[str]:
    """Return *args* without the dodo loader's options (``-f dodo.py``), which doit reads before the command."""
    loader = CmdParse([CmdOption(opt) for opt in DodoTaskLoader.cmd_options])
    try:
        _, rest = loader.parse_only(list(args))
    except CmdParseError:
        rest = list(args)
    return list(rest)


def log_to_stderr() -> None:
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
