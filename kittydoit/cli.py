"""The ``kittydoit`` command: every doit command without a dodo.py, plus kittydoit's own commands.

``kittydoit -n 4 run``, ``kittydoit list``, ``kittydoit forget WP03`` behave as doit's commands do with the dodo.py
that ``kittydoit init`` writes; ``--feature NNN-slug`` chooses the feature. Options may come before the command
name (``kittydoit -n 4 run``), which plain doit does not allow.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doit.cmd_base import Command, DoitCmdBase, NamespaceTaskLoader
from doit.cmdparse import CmdOption, CmdParse, CmdParseError
from doit.doit_cmd import DoitMain

from kittydoit import __version__
from kittydoit.errors import (
    EXIT_BAD_INPUT,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_WP_FAILED,
    FeatureError,
    UserError,
)

# Each command imports what it needs when it runs: `kittydoit --version` or `status` loads no feature machinery,
# `list` no planner, and no command but `plan` and `graph` the planner.
if TYPE_CHECKING:
    from kittydoit.config import Config
    from kittydoit.reporter import Reporter

OVERVIEW = f"""kittydoit {__version__}: run AI coding agents over a spec-kitty feature, with doit as the engine.

  kittydoit -n 4 run             implement and review every work package, four at a time (no set-up needed:
                                 without .kittify/agents.yaml it uses the agent CLIs found on PATH)
  kittydoit init                 optional: write an editable .kittify/agents.yaml and dodo.py (for plain doit)
  kittydoit agents [--check]     the agent CLIs: installed?, version, the command line of each role
  kittydoit plan [-n 4]          what `run` would do: order, agents, graph, what is up to date
  kittydoit list                 the work packages, with their titles
  kittydoit forget WP03          make WP03 (and then what depends on it) run again
  kittydoit status [--json]      where a run stands (from any terminal, during or after it)
  kittydoit abort                stop a running orchestration from another terminal
  kittydoit graph [--format dot] the WP dependency graph as Mermaid (or DOT), coloured by lane
  kittydoit example [DIR]        create a repository with the example feature and a local example agent
  kittydoit ci github|gitlab     the feature as a CI workflow: a job per WP across machines (see `help ci`)

Global option: --feature NNN-slug  (when kitty-specs/ holds several features)
`kittydoit help COMMAND` or `kittydoit COMMAND --help` explains a command.
"""

opt_feature = {
    "section": "kittydoit",
    "name": "feature",
    "short": "",
    "long": "feature",
    "type": str,
    "default": None,
    "help": "feature to run: NNN-slug, NNN, its folder, or a 3.x mission's slug, mission_id or mid8 "
            "[default: the only one in kitty-specs/]",
}


class KittyLoader(NamespaceTaskLoader):  # type: ignore[misc]  # doit is untyped
    """Load the tasks of a feature straight from the package: no dodo.py needed."""

    cmd_options = (opt_feature,)

    def __init__(self) -> None:
        super().__init__()
        self.reporter: Reporter | None = None
        self.read_only = False  # set by commands that must not write anything, not even the parse cache
        self.for_run = True  # whether the command runs tasks (it needs usable agent settings); set by the main

    def setup(self, opt_values: dict[str, Any]) -> None:
        from kittydoit.dodo import doit_namespace  # noqa: PLC0415

        # Reading a feature and building its tasks makes objects that all live on: the cyclic garbage collector
        # would walk them over and over (up to a third of `list` of 1,000 WPs) and find nothing. It is back on,
        # with those objects set aside, once the tasks are built (load_tasks).
        gc.disable()
        try:
            namespace = doit_namespace(
                None, feature=opt_values.get("feature"), cache=not self.read_only, for_run=self.for_run
            )
        except BaseException:
            gc.enable()
            raise
        self.reporter = namespace["DOIT_CONFIG"]["reporter"]
        os.chdir(self.reporter.ctx.paths.root)
        self.namespace = namespace

    def load_tasks(self, cmd: Any, pos_args: list[str]) -> Any:
        try:
            return super().load_tasks(cmd, pos_args)
        finally:
            gc.freeze()  # what the feature and its tasks hold lives on: later collections (and forks) leave it be
            gc.enable()


class Init(Command):  # type: ignore[misc]
    name = "init"
    doc_purpose = "write dodo.py and an editable .kittify/agents.yaml into this spec-kitty repository"
    doc_usage = "[--force]"
    doc_description = (
        "Run it at the top of a spec-kitty repository (the folder holding kitty-specs/). It writes dodo.py, so "
        "plain `doit` works too, and a commented .kittify/agents.yaml for the agent CLIs found on PATH (and those "
        "listed under agents.available in .kittify/config.yaml), the implementer and reviewer lists starting with "
        "agents of different vendors. Files that exist are kept unless --force is given. Nothing is written when "
        "no agent is found; the error then says how to install each one.\n\n"
        "It is optional: a run without .kittify/agents.yaml uses the same settings without writing them.\n\n"
        "Example:\n  cd my-repo && kittydoit init && kittydoit agents --check && doit -n 4"
    )
    cmd_options = (
        {
            "name": "force",
            "short": "",
            "long": "force",
            "type": bool,
            "default": False,
            "help": "overwrite dodo.py and .kittify/agents.yaml when they exist",
        },
    )

    def execute(self, params: dict[str, Any], args: list[str]) -> int:
        from kittydoit import scaffold  # noqa: PLC0415

        for line in scaffold.init(Path.cwd(), force=params["force"]):
            print(line)
        return EXIT_OK


class Agents(Command):  # type: ignore[misc]
    name = "agents"
    doc_purpose = "list the agent CLIs: installed or not, version, roles and the command line each role runs"
    doc_usage = "[--json] [--check]"
    doc_description = (
        "Lists the nine agents kittydoit knows (claude-code, codex, copilot, gemini, qwen, opencode, kilocode, "
        "augment, cursor) and the custom agents of .kittify/agents.yaml, with the exact command line each would "
        "run per role (<prompt-file>, <worktree> stand for each WP's). Without .kittify/agents.yaml (or with a "
        "broken one, said in one line) every agent shows as not configured, and the agents a run would use are "
        "named.\n\n"
        "--check proves the command lines of the configured, enabled agents against the installed binaries "
        "without running a model: it appends an unknown flag and expects the CLI to reject only that one "
        "(opencode and kilocode, whose parsers do not name unknown flags, are checked against their --help). "
        "A flag the installed version no longer accepts fails the check, naming the agent, its version and the "
        "flag; the exit status is then 1. Custom agents cannot be checked this way.\n\n"
        "Example:\n  kittydoit agents --check && kittydoit -n 4 run"
    )
    cmd_options = (
        {"name": "json", "short": "", "long": "json", "type": bool, "default": False,
         "help": "print the list as JSON"},
        {"name": "check", "short": "", "long": "check", "type": bool, "default": False,
         "help": "prove the configured agents' command lines against the installed CLIs (exit 1 on drift)"},
    )

    def execute(self, params: dict[str, Any], args: list[str]) -> int:
        from kittydoit import detect  # noqa: PLC0415

        rows = detect.survey(_repo_config(), run_checks=params["check"])
        if params["json"]:
            print(json.dumps(rows, indent=2))
        else:
            for row in rows:
                print(_agent_lines(row))
        failed = [c["message"] for row in rows for c in row["checks"] if not c["ok"]]
        if params["check"]:
            checked = sum(1 for row in rows if row["checks"])
            if not checked:
                sys.stderr.write("kittydoit agents --check: no configured agent is installed; nothing to check\n")
                return EXIT_WP_FAILED
            for message in failed:
                sys.stderr.write(f"DRIFT: {message}\n")
        return EXIT_WP_FAILED if failed else EXIT_OK


def _repo_config() -> Config | None:
    """Return the agent settings in the agents.yaml of the repository around the working directory.

    None outside a repository and without a usable file (every agent is then listed as not configured): a
    broken file is reported in one line, the defaults a run would use instead of a missing one are named.
    """
    from kittydoit import settings  # noqa: PLC0415
    from kittydoit.feature import find_root  # noqa: PLC0415

    try:
        root = find_root(Path.cwd())
    except FeatureError:
        return None
    found = settings.resolve(root)
    if found.source == "file" and found.problem is None:
        return found.config
    if found.source == "file" and found.problem is not None:
        sys.stderr.write(f"kittydoit: {settings.one_line(found.problem)} (a run refuses to start until it is fixed)\n")
    elif found.note:
        sys.stderr.write(f"kittydoit: {found.note}\n")
    return None


def _agent_lines(row: dict[str, Any]) -> str:
    state = f"installed {row['version'] or '(version unknown)'}" if row["installed"] else "not installed"
    if row["installed"] and row["checked_version"] and row["version"] != row["checked_version"]:
        state += f" (kittydoit's flags were checked with {row['checked_version']})"
    setting = "custom, " if row["custom"] else ""
    setting += ("enabled" if row["enabled"] else "disabled") if row["configured"] else "not configured"
    lines = [f"{row['id']} ({row['name']}): {state}; {setting}; roles: {', '.join(row['roles'])}"]
    if not row["installed"] and row["install"]:
        lines.append(f"  install: {row['install']}")
    for role, argv in row["commands"].items():
        shown = shlex.join(argv) + (" < <prompt-file>" if row["prompt"] == "stdin" else "")
        lines.append(f"  {role + ':':15} {shown}")
    lines += [f"  check {c['role']}: {'ok' if c['ok'] else 'FAILED'}: {c['message']}" for c in row["checks"]]
    return "\n".join(lines)


class Example(Command):  # type: ignore[misc]
    name = "example"
    doc_purpose = "create a git repository holding the example feature, set up to run with a local example agent"
    doc_usage = "[DIR]"
    doc_description = (
        "DIR must not exist or be empty; without it a new temporary folder is used. The path is printed on "
        "stdout, so this runs the whole example:\n\n  cd \"$(kittydoit example)\" && kittydoit -n 2 run\n\n"
        "The example feature has four work packages in a diamond (WP01; WP02 and WP03 after it; WP04 after both). "
        "Its agents (example-coder, example-reviewer) are a small local program, kittydoit.example_agent, that "
        "writes the files each work package specifies and reviews them by running the checks it names."
    )

    def execute(self, params: dict[str, Any], args: list[str]) -> int:
        if len(args) > 1:
            raise UserError(None, "example takes at most one argument, the folder to create")
        from kittydoit import scaffold  # noqa: PLC0415

        target = scaffold.example(Path(args[0]) if args else None)
        print(target)
        return EXIT_OK


opt_feature_cmd = {
    **opt_feature,
    "section": "",
    "help": "the feature: NNN-slug, NNN, its folder, or a 3.x mission's slug, mission_id or mid8 "
            "[default: the one running, else the last one run]",
}


class StatusCmd(Command):  # type: ignore[misc]
    name = "status"
    doc_purpose = "show where a run stands: done/total, active WPs with agent, phase and time, failed and blocked"
    doc_usage = "[--feature NNN-slug] [--json]"
    doc_description = (
        "Works from any terminal, while a run is going or after it. Without --feature it shows the feature whose "
        "run is going, else the last one run. A run whose orchestrator was killed (kill -9) shows as aborted, "
        "saying the orchestrator is gone.\n\nExamples:\n  kittydoit status\n  kittydoit status --json | jq .counts"
    )
    cmd_options = (
        opt_feature_cmd,
        {"name": "json", "short": "", "long": "json", "type": bool, "default": False,
         "help": "print the state as JSON for scripts"},
    )  # fmt: skip

    def execute(self, params: dict[str, Any], args: list[str]) -> int:
        from kittydoit import status  # noqa: PLC0415

        current = status.read_status(Path.cwd(), params["feature"])
        _emit(json.dumps(current.as_json(), indent=2) if params["json"] else status.render(current))
        return EXIT_OK


class Abort(Command):  # type: ignore[misc]
    name = "abort"
    doc_purpose = "stop a running orchestration from another terminal; no process of the run survives"
    doc_usage = "[--feature NNN-slug] [--remove-worktrees] [--timeout SECONDS]"
    doc_description = (
        "Sends the orchestrator SIGTERM, as Ctrl-C would: it stops every agent (everything the agent started), "
        "records the run as aborted, and exits. If it has not stopped after --timeout seconds it is killed, and "
        "its agents die with it. Worktrees are kept (their work is not lost); `kittydoit run` resumes.\n\n"
        "Example:\n  kittydoit abort --feature 001-demo"
    )
    cmd_options = (
        opt_feature_cmd,
        {"name": "remove_worktrees", "short": "", "long": "remove-worktrees", "type": bool, "default": False,
         "help": "also remove the feature's worktrees (their branches are kept)"},
        {"name": "timeout", "short": "", "long": "timeout", "type": float, "default": 60.0,
         "help": "seconds to wait for the run to stop before killing it [default: %(default)s]"},
    )  # fmt: skip

    def execute(self, params: dict[str, Any], args: list[str]) -> int:
        from kittydoit import session, status  # noqa: PLC0415
        from kittydoit.context import Paths  # noqa: PLC0415
        from kittydoit.feature import find_root  # noqa: PLC0415
        from kittydoit.git import Git  # noqa: PLC0415

        root = find_root(Path.cwd())
        paths = Paths(root=root, feature=status.choose_feature(root, params["feature"]))
        git = Git(root, paths.git_lock)
        lines = session.abort(paths, git, remove_worktrees=params["remove_worktrees"], timeout=params["timeout"])
        _emit("\n".join(lines))
        return EXIT_OK


class PlanCmd(DoitCmdBase):  # type: ignore[misc]
    name = "plan"
    doc_purpose = "show what `run` would do, starting nothing: order, agents, dependency graph, what is up to date"
    doc_usage = "[TASK ...] [-n N] [--json]"
    doc_description = (
        "Takes the same tasks as `run` (default: every WP). doit itself decides what is up to date, on a "
        "read-only copy of the feature's database, and hands out the tasks in the order a run would; with -n N "
        "the plan shows which WPs start at once. It names the agents a run would use (without "
        ".kittify/agents.yaml: those `kittydoit init` would write, for the agents on PATH) and, when a run would "
        "not start, why (broken agent settings, no agent installed, a WP that would run depending on a WP that "
        "does not exist). Nothing is started and no file is written.\n\n"
        "Examples:\n  kittydoit plan\n  kittydoit plan -n 4 WP03\n  kittydoit plan --json | jq .order"
    )
    cmd_options = (
        {"name": "num_process", "short": "n", "long": "process", "type": int, "default": 1,
         "help": "plan for this many parallel workers, as `run -n N` [default: kittydoit's, 1]"},
        {"name": "as_json", "short": "", "long": "json", "type": bool, "default": False,
         "help": "print the plan as JSON for scripts"},
    )  # fmt: skip

    def get_backends(self) -> dict[str, Any]:
        """Read every database through a read-only in-memory copy: a plan writes nothing."""
        from kittydoit import plan  # noqa: PLC0415

        return dict.fromkeys(super().get_backends(), plan.SnapshotDB)

    def execute(self, params: dict[str, Any], args: list[str]) -> Any:
        self.loader.read_only = True  # nor does the feature's parse cache get written
        return super().execute(params, args)

    def _execute(self, num_process: int, as_json: bool) -> int:
        from kittydoit import plan  # noqa: PLC0415

        ctx = self.loader.reporter.ctx
        found = plan.make_plan(
            ctx, tasks=self.task_list, selected=self.sel_tasks, dep_manager=self.dep_manager, num_process=num_process
        )
        _emit(json.dumps(found.as_json(), indent=2) if as_json else plan.render(found, ctx.feature))
        return EXIT_OK


class GraphCmd(Command):  # type: ignore[misc]
    name = "graph"
    doc_purpose = "print the graph of work packages as Mermaid or Graphviz DOT, coloured by lane"
    doc_usage = "[--feature NNN-slug] [--format mermaid|dot|text]"
    doc_description = (
        "Edges go from a dependency to the WPs that need it; labels hold id and title; the colour is the lane "
        "(planned grey, doing yellow, for_review blue, done green; a 3.x mission's nine lanes each have a colour: "
        "claimed and in_progress yellow, in_review blue, approved green, blocked red, canceled dark grey). "
        "Mermaid renders in GitHub markdown "
        "(```mermaid), DOT with Graphviz.\n\nExamples:\n  kittydoit graph > wps.mmd\n"
        "  kittydoit graph --format dot | dot -Tsvg > wps.svg"
    )
    cmd_options = (
        {**opt_feature, "section": ""},
        {"name": "format", "short": "", "long": "format", "type": str, "default": "mermaid",
         "choices": [("mermaid", "Mermaid flowchart"), ("dot", "Graphviz DOT"), ("text", "indented tree")],
         "help": "output format [default: %(default)s]"},
    )  # fmt: skip

    def execute(self, params: dict[str, Any], args: list[str]) -> int:
        from kittydoit import plan  # noqa: PLC0415
        from kittydoit.dodo import log_to_stderr  # noqa: PLC0415
        from kittydoit.feature import find_root, load_feature, select_feature  # noqa: PLC0415

        log_to_stderr()  # a dependency on a WP that does not exist is a warning here
        root = find_root(Path.cwd())
        # no parse cache: writes nothing
        feature = load_feature(root, select_feature(root, params["feature"]), strict=False)
        shown = {"mermaid": plan.mermaid, "dot": plan.dot}.get(params["format"])
        _emit(shown(feature) if shown else "\n".join(plan.graph_text(feature)))
        return EXIT_OK


class CiCmd(Command):  # type: ignore[misc]
    name = "ci"
    doc_purpose = "run the feature on a CI engine: one job per WP across machines, state carried by git"
    doc_usage = "github|gitlab [--check] [--output FILE] [--install CMD] [--secret NAME] | job WPxx | integrate"
    doc_description = (
        "kittydoit ci github writes .github/workflows/kittydoit-<feature>.yml: a job per WP with needs: from its "
        "dependencies and a final integrate job; commit it and dispatch it from GitHub. kittydoit ci gitlab writes "
        ".gitlab/kittydoit-<feature>.yml, a GitLab CI pipeline to include from .gitlab-ci.yml. With --check "
        "nothing is written: the exit status is 1 when the committed file no longer matches the WPs and "
        ".kittify/agents.yaml (for your normal CI).\n\n"
        "kittydoit ci job WPxx is what each job runs: nothing when the branch <feature>-WPxx on origin is sealed "
        "for the WP's current spec, settings and dependencies; otherwise WPxx on this machine, after which it "
        "pushes only that branch, with a lease (sealed when done, unfinished when it failed, so the next attempt "
        "resumes from it). kittydoit ci "
        "integrate is what the last job runs: it merges every sealed WP branch into <feature>-integration, moves "
        "the lanes to done there, pushes it and writes one summary (the merged JSON report in .kittify/reports/, "
        "and $GITHUB_STEP_SUMMARY on GitHub); it refuses (exit 1) while a WP is not sealed.\n\n"
        "Examples:\n  kittydoit ci github && git add .github && git commit -m 'kittydoit workflow'\n"
        "  kittydoit ci github --check\n  kittydoit ci gitlab --install 'pip install kittydoit==0.1.0'\n"
        "  kittydoit ci job WP03\n  kittydoit ci integrate"
    )
    cmd_options = (
        {**opt_feature, "section": ""},
        {"name": "check", "short": "", "long": "check", "type": bool, "default": False,
         "help": "write nothing; exit 1 when the file no longer matches the WPs"},
        {"name": "output", "short": "", "long": "output", "type": str, "default": "",
         "help": "where to write the file [default: the engine's place in the repository]"},
        {"name": "install", "short": "", "long": "install", "type": str, "default": "",
         "help": "the shell command the jobs install kittydoit with [default: pip install 'kittydoit==VERSION']"},
        {"name": "secret", "short": "", "long": "secret", "type": list, "default": [],
         "help": "another secret for the step that runs agents (custom agents); may be repeated"},
    )  # fmt: skip

    def execute(self, params: dict[str, Any], args: list[str]) -> int:
        from kittydoit import ci  # noqa: PLC0415  # loaded only for this command
        from kittydoit.context import load_context  # noqa: PLC0415
        from kittydoit.git import GitError  # noqa: PLC0415

        usage = "usage: kittydoit ci github|gitlab [--check] | kittydoit ci job WPxx | kittydoit ci integrate"
        params, args = _options_anywhere(self.cmd_options, params, args)
        if not args:
            raise UserError(None, usage)
        what, rest = args[0], args[1:]
        wanted = {"job": 1, "integrate": 0, **dict.fromkeys(ci.ENGINES, 0)}
        if what not in wanted or len(rest) != wanted[what]:
            raise UserError(None, usage)
        ctx = load_context(Path.cwd(), params["feature"] or None)
        if ctx.feature.format == "3.x":
            raise UserError(
                ctx.feature.path,
                "is a spec-kitty 3.x mission; `kittydoit ci` runs 0.x features only, for now (a 3.x mission's lanes "
                "and lane worktrees are spec-kitty's, which the jobs' git protocol does not carry yet). Run it on one "
                "machine: `kittydoit -n 4 run`",
            )
        os.chdir(ctx.paths.root)
        try:
            if what == "job":
                return int(ci.run_job(ctx, rest[0].upper(), say=_emit))
            if what == "integrate":
                return int(ci.integrate(ctx, say=_emit, environ=os.environ))
            output = Path(params["output"]).resolve() if params["output"] else None
            return ci.generate(ctx, what, say=_emit, warn=_warn, check=params["check"], output=output,
                               install=params["install"] or None, secrets=params["secret"])  # fmt: skip
        except GitError as error:
            sys.stderr.write(f"ERROR: {error}\n")
            return EXIT_ERROR


class KittyDoitMain(DoitMain):  # type: ignore[misc]
    BIN_NAME = "kittydoit"
    DOIT_CMDS = (*DoitMain.DOIT_CMDS, Init, Agents, Example, StatusCmd, Abort, PlanCmd, GraphCmd, CiCmd)

    def run(self, all_args: Sequence[str]) -> int:
        args = list(all_args)
        if not args:
            return _code(super().run(args))  # doit's default command: run
        if args[0] in ("--help", "-h"):
            return self._help(args, OVERVIEW + "\n")
        commands = self.get_cmds()
        args = _command_first(args, set(commands))
        if args[0] in commands and any(a in ("--help", "-h") for a in args[1:]):
            return self._help(["help", args[0]])
        if args[0] == "help":
            return self._help(args)
        command = commands.get_plugin(args[0]) if args[0] in commands else commands.get_plugin("run")
        self.task_loader.for_run = bool(getattr(command, "execute_tasks", True))
        code = _code(super().run(args))
        reporter = self.task_loader.reporter
        if code in (EXIT_WP_FAILED, EXIT_ERROR) and reporter is not None and reporter.ran:
            return int(reporter.exit_code())  # doit says 2 for a WP blocked by a failed one: that is a failed WP
        return code


    def _help(self, args: list[str], before: str = "") -> int:
        """Run doit's help for *args*, its text written at once (a reader that goes away is not a traceback)."""
        text = io.StringIO(before)
        text.seek(len(before))
        with contextlib.redirect_stdout(text):
            code = _code(super().run(args))
        _emit(text.getvalue(), end="")
        return code


def _options_anywhere(
    options: Sequence[dict[str, Any]], params: dict[str, Any], args: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """Read the options that follow a positional argument too (``ci github --check``); doit stops at the first."""
    parser = CmdParse([CmdOption(opt) for opt in options])
    merged, positional = dict(params), []
    while args:
        try:
            found, args = parser.parse(args)
        except CmdParseError as error:
            raise UserError(None, str(error)) from None
        for opt in options:
            value = found[opt["name"]]
            if isinstance(value, list):
                merged[opt["name"]] = [*merged[opt["name"]], *value] if value != merged[opt["name"]] else value
            elif value != opt["default"]:
                merged[opt["name"]] = value
        if args:
            positional.append(args.pop(0))
    return merged, positional


def _warn(text: str) -> None:
    sys.stderr.write(text + "\n")


def _emit(text: str, end: str = "\n") -> None:
    """Print *text*; a reader that went away (``kittydoit status | head``) is not an error."""
    try:
        print(text, end=end, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again


def _code(result: object) -> int:
    """Return doit's result as an exit code (some doit commands return None for success)."""
    return int(result) if isinstance(result, int) else EXIT_OK


def _command_first(args: list[str], commands: set[str]) -> list[str]:
    """Move the command name to the front, so options may come before it (``-n 4 run``)."""
    for index, arg in enumerate(args):
        if arg in commands:
            return [arg, *args[:index], *args[index + 1 :]] if index else args
        if arg == "--":
            break
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the kittydoit command line; return its exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        return KittyDoitMain(KittyLoader(), config_filenames=()).run(args)
    except UserError as error:  # raised by kittydoit's own commands, outside doit's error handling
        sys.stderr.write(f"ERROR: {error}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("kittydoit: interrupted; finished work is kept, `kittydoit run` resumes\n")
        # An interrupt that got past the reporter's reaping would leave doit's workers for multiprocessing's exit
        # join, which waits forever on one stuck in its job queue: kill them now (their agents die with them).
        from kittydoit import workers  # noqa: PLC0415

        workers.reap(0.0, lambda: True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`kittydoit --help | head`): nothing is wrong
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        return EXIT_OK
