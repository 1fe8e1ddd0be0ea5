"""How plain doit's command line reaches kittydoit's tasks."""

from __future__ import annotations

import pytest

from kittydoit.dodo import options_then_run, requested_workers, runs_tasks


@pytest.mark.parametrize(
    ("argv", "tasks"),
    [
        ("-n 4 run implement review", ["implement", "review"]),
        ("-n 4 run", []),
        ("--verbosity 2 -n 4 run feature=002-x WP03", ["WP03"]),
        ("-f dodo.py -n 2 run WP01", ["WP01"]),
        ("run -n 4", None),  # the command first: doit reads it right
        ("-f dodo.py run -n 2", None),
        ("-n 4", None),
        ("-n 4 WP03", None),
        ("list", None),
        ("-x run", None),  # doit rejects the option itself
        ("", None),
    ],
)
def test_options_then_run_is_found_with_doits_own_parser(argv: str, tasks: list[str] | None) -> None:
    assert options_then_run(argv.split()) == tasks


@pytest.mark.parametrize(
    ("argv", "runs"),
    [
        ("", True),
        ("-n 4", True),
        ("run WP03", True),
        ("-n 4 run", True),
        ("feature=002-x", True),
        ("WP03", True),
        ("strace WP03", True),
        ("list", False),
        ("list --all", False),
        ("-f dodo.py list", False),
        ("feature=002-x list", False),
        ("info WP03", False),
        ("forget WP03", False),
        ("help run", False),
    ],
)
def test_runs_tasks_tells_the_commands_that_need_agents(argv: str, runs: bool) -> None:
    assert runs_tasks(argv.split()) is runs


@pytest.mark.parametrize(
    ("args", "workers"),
    [
        (["run"], 1),
        ([], 1),
        (["-n", "4", "run", "implement", "review"], 4),
        (["run", "-n", "4"], 4),
        (["run", "--process=3", "implement"], 3),
        (["-f", "dodo.py", "-n", "5"], 5),
        (["feature=001-x", "-n", "2"], 2),
        (["-n", "0", "run"], 1),  # doit runs the tasks in its own process: one at a time
        (["run", "-n", "many"], 1),  # doit rejects it and says so
    ],
)
def test_the_workers_asked_for_are_read_as_doit_reads_them(args: list[str], workers: int) -> None:
    assert requested_workers(args) == workers
