"""Serve spec-kitty's own commands from one long-lived process (run by spec-kitty's interpreter, not kittydoit's).

Every ``spec-kitty`` command is a fresh Python process that spends one and a half to two seconds importing spec-kitty
and building its commands before it does its own work (0.05-0.2 s). kittydoit makes a handful of such calls per work
package, so it starts this file once per run with the interpreter spec-kitty is installed in, and sends it the same
command lines:

    <spec-kitty's python> speckitty_server.py ADDRESS

It imports spec-kitty once, listens on the abstract Unix socket ADDRESS and answers one request per connection, one
at a time (spec-kitty's commands change the working directory and are not meant to run side by side in one
process). The upkeep of the user's global files that spec-kitty does before every command is done for the first
(see :data:`_UPKEEP`). A request is one JSON line, the answer too:

- ``{"argv": ["orchestrator-api", "mission-state", "--mission", "m"], "cwd": "/repo"}`` runs that command line as
  the ``spec-kitty`` command would and answers ``{"code": 0, "stdout": "...", "stderr": "..."}``;
- ``{"call": "review_cycle", "cwd": "/repo", "args": {...}}`` and ``{"call": "check_policy", ...}`` run the
  spec-kitty functions named in :data:`CALLS` (for which spec-kitty has no command) and answer ``{"code": 0,
  "result": ...}`` or ``{"code": 1, "error": "..."}``.

It prints ``ready`` once it listens, and exits when its standard input closes: kittydoit holds the other end, so the
server never outlives the run that started it. Only the standard library and spec-kitty are imported here.
The same file also runs one call and exits (``... speckitty_server.py --call NAME``, the request's ``args`` as JSON on
stdin): kittydoit's fallback when the server cannot be used.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import io
import json
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _app() -> Any:
    """Return spec-kitty's command line as a click command, built once.

    Calling the Typer app itself rebuilds the whole click command tree on every call (0.7-1 s here, most of a
    call); the command built once answers the same command lines the same way in about 0.1 s.

    Building it imports some 1,500 modules, and the cyclic garbage collector would walk the growing heap over and
    over while they load, finding nothing to free: it is off until the command is built, and what the build made
    is then set aside (``gc.freeze``), so the collections during later calls skip it too. Measured on the 4-WP
    diamond mission at ``-n 2``: the first agent 0.28 s sooner, the whole run 0.5 s shorter (9.37 -> 8.86 s).
    """
    gc.disable()
    try:
        import specify_cli  # noqa: PLC0415  # spec-kitty's own interpreter has it; kittydoit's need not
        import typer.main  # noqa: PLC0415
        from specify_cli.cli.logging_bootstrap import install_cli_logging_bootstrap  # noqa: PLC0415

        install_cli_logging_bootstrap(json_mode=True)  # diagnostics must not mix with the JSON answers
        return typer.main.get_command(specify_cli._assemble_app())
    finally:
        gc.freeze()
        gc.enable()


# spec-kitty's root command brings the user's global files up to date before every command (``~/.kittify``, the
# agents' global skills and slash commands: ``main_callback`` calls these three, with no arguments). A fresh
# process per command must; this one serves every command of a run, so the first command (kittydoit's contract
# check) does the upkeep and later ones skip it: about 25 ms of every later call, 17 ms of it checking the agents'
# command files. A call with arguments (a doctor's scoped repair) still runs. A spec-kitty without one of them
# is left as it is.
_UPKEEP = (
    ("specify_cli.runtime.bootstrap", "ensure_runtime"),
    ("specify_cli.runtime.agent_skills", "ensure_global_agent_skills"),
    ("specify_cli.runtime.agent_commands", "ensure_global_agent_commands"),
)


def _upkeep_once() -> None:
    """Make each of spec-kitty's upkeep functions (:data:`_UPKEEP`) do nothing when called again without
    arguments, once it has run so (done once, when the server starts)."""
    for module_name, name in _UPKEEP:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        function = getattr(module, name, None)
        if callable(function):
            setattr(module, name, _once(function))


def _once(function: Callable[..., Any]) -> Callable[..., Any]:
    done = False

    @functools.wraps(function)
    def upkeep(*args: Any, **kwargs: Any) -> Any:
        nonlocal done
        if args or kwargs:
            return function(*args, **kwargs)
        if done:
            return None
        result = function()
        done = True
        return result

    return upkeep


def _run(app: Any, argv: list[str]) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    code: int = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            app.main(args=argv, prog_name="spec-kitty", standalone_mode=True)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except Exception as error:  # a crash inside spec-kitty: answered as such, the server goes on
            code = 1
            err.write(f"{type(error).__name__}: {error}\n")
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def review_cycle(args: dict[str, Any]) -> dict[str, Any]:
    """Write a rejected review's ``review-cycle-N.md`` the way spec-kitty's review commands do."""
    from specify_cli.review.cycle import create_rejected_review_cycle  # noqa: PLC0415

    cycle = create_rejected_review_cycle(
        main_repo_root=Path(args["root"]),
        mission_slug=args["mission"],
        wp_id=args["wp_id"],
        wp_slug=args["wp_slug"],
        body=args["body"],
        reviewer_agent=args["reviewer"],
    )
    return {"pointer": cycle.pointer, "path": str(cycle.artifact_path)}


def check_policy(args: dict[str, Any]) -> dict[str, Any]:
    """Check a ``--policy`` JSON as ``orchestrator-api`` will; answer the refusal, or None when accepted."""
    from specify_cli.orchestrator_api.envelope import parse_and_validate_policy  # noqa: PLC0415

    try:
        parse_and_validate_policy(json.dumps(args["policy"]))
    except ValueError as error:
        return {"refused": str(error)}
    return {"refused": None}


CALLS = {"review_cycle": review_cycle, "check_policy": check_policy}


def _answer(app: Any, request: dict[str, Any]) -> dict[str, Any]:
    os.chdir(request.get("cwd") or os.getcwd())
    if "argv" in request:
        return _run(app, [str(a) for a in request["argv"]])
    try:
        return {"code": 0, "result": CALLS[request["call"]](request.get("args") or {})}
    except Exception as error:  # reported to the caller, which names it
        return {"code": 1, "error": f"{type(error).__name__}: {error}"}


def _serve(address: str) -> None:
    app = _app()
    _upkeep_once()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("\0" + address)
    server.listen(64)
    # The run that started this holds stdin; when it ends, by any means, stdin closes and so does the server.
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        with conn, conn.makefile("rwb") as stream:
            line = stream.readline()
            if not line:
                continue
            try:
                answer = _answer(app, json.loads(line))
            except (ValueError, KeyError, OSError) as error:
                answer = {"code": 1, "error": f"bad request: {error}"}
            stream.write(json.dumps(answer).encode() + b"\n")
            stream.flush()


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--call":
        print(json.dumps(_answer(None, {"call": argv[1], "args": json.loads(sys.stdin.read())})))
        return 0
    if len(argv) != 1:
        sys.stderr.write("usage: speckitty_server.py ADDRESS | --call NAME\n")
        return 2
    _serve(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
