"""A scripted stand-in for an agent CLI, for kittydoit's tests.

    python tests/fake_agent.py ROLE [--plan PLAN.json] [--state DIR]

ROLE is ``implement`` or ``review``. The prompt comes on stdin (or as the last argument); the WP id is the
first ``WPnn`` in it, and the agent works in its current directory. Every call appends a JSON line to
``DIR/calls.jsonl`` (wp, role, pid, start and end times) so tests can see what ran, when, and in parallel.

Without a plan an implementer writes ``<WP>.txt`` and a reviewer approves. A plan maps a WP id to a role to a
list of steps, used in order, one per call (the last step repeats)::

    {"WP02": {"review": [{"verdict": "CHANGES_REQUESTED", "say": "add tests"}, {"verdict": "APPROVED"}]}}

``--name NAME`` tells several configured fake agents apart: a plan key ``"implement@NAME"`` applies to that
agent only (counted separately), before the plain ``"implement"``.

Step keys (all optional):
  ``write``     {path: text} files to write (default for implement: {"<WP>.txt": "<call number>"})
  ``verdict``   APPROVED | CHANGES_REQUESTED | none  (review; default APPROVED)
  ``say``       text to print (for a reviewer, printed after the VERDICT line as feedback)
  ``stdout``    exact text to print instead of everything else (for recorded agent outputs)
  ``stderr``    text to print on stderr
  ``sleep``     seconds to sleep before exiting
  ``wait``      a path: after printing, wait until that file exists (a gate the test opens)
  ``exit``      exit code (default 0)
  ``child``     start a grandchild that sleeps this many seconds (its pid goes to DIR/children.txt)
  ``escape``    the same, but the grandchild leaves the agent's process group and session (``setsid``)
  ``ignore_term`` ignore SIGTERM (only SIGKILL stops it)
  ``hang``      never exit (sleep forever, ignoring nothing)
  ``noop``      change nothing in the worktree
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["implement", "review"])
    parser.add_argument("--plan", type=Path)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--name", default="fake")
    parser.add_argument("prompt", nargs="?")
    args = parser.parse_args()
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    match = re.search(r"WP\d+", prompt)
    wp = match.group(0) if match else "WP??"
    args.state.mkdir(parents=True, exist_ok=True)
    plan = json.loads(args.plan.read_text()) if args.plan else {}
    own = f"{args.role}@{args.name}"
    key = own if own in plan.get(wp, {}) else args.role
    steps = plan.get(wp, {}).get(key, [{}])
    count = _count(args.state, f"{wp}-{key}")
    step = steps[min(count - 1, len(steps) - 1)]
    entry = {"wp": wp, "role": args.role, "agent": args.name, "call": count, "pid": os.getpid(), "cwd": os.getcwd()}
    _record(args.state, {**entry, "start": time.time()})
    code = _act(args.role, wp, count, step, args.state, prompt=prompt)
    _record(args.state, {**entry, "end": time.time()})
    return code


def _act(role: str, wp: str, count: int, step: dict, state: Path, *, prompt: str) -> int:  # noqa: PLR0912
    if step.get("ignore_term"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for key in ("child", "escape"):
        if key in step:
            sleeper = [sys.executable, "-c", f"import time; time.sleep({float(step[key])})"]
            child = subprocess.Popen(sleeper, start_new_session=key == "escape")
            with (state / "children.txt").open("a") as handle:
                handle.write(f"{child.pid}\n")
    if "stdout" in step:
        sys.stdout.write(step["stdout"])
    elif role == "implement":
        if not step.get("noop"):
            for name, text in step.get("write", {f"{wp}.txt": f"{wp} call {count}\n"}).items():
                path = Path(name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        print(f"{wp}: implemented (call {count})")
        if "say" in step:
            print(step["say"])
    else:
        verdict = step.get("verdict", "APPROVED")
        print(f"Reviewed {wp}; the prompt was {len(prompt)} characters.")
        if verdict != "none":
            print(f"VERDICT: {verdict}")
        print(step.get("say", "Looks fine."))
    if "stderr" in step:
        sys.stderr.write(step["stderr"])
    sys.stdout.flush()
    if step.get("hang"):
        while True:
            time.sleep(3600)
    while "wait" in step and not Path(step["wait"]).exists():
        time.sleep(0.05)
    time.sleep(float(step.get("sleep", 0)))
    return int(step.get("exit", 0))


def _count(state: Path, key: str) -> int:
    path = state / f"count-{key}"
    count = int(path.read_text()) + 1 if path.exists() else 1
    # replaced whole: a call killed mid-write (the crash tests kill whole runs) must not leave an empty count
    fresh = path.with_name(f"{path.name}.{os.getpid()}")
    fresh.write_text(str(count))
    fresh.replace(path)
    return count


def _record(state: Path, entry: dict) -> None:
    with (state / "calls.jsonl").open("a") as handle:
        handle.write(json.dumps(entry) + "\n")


if __name__ == "__main__":
    sys.exit(main())
