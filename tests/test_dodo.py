"""How plain doit's command line reaches kittydoit's tasks."""

from __future__ import annotations

import pytest

from kittydoit.dodo import options_then_run


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
