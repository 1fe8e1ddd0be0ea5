"""A minimal stand-in for an agent CLI, for benchmarks: sleep the WP's drawn time, change one file, commit it.

    python -S bench/fake_agent.py ROLE          (ROLE: implement, review, or auto)

It runs in a WP's worktree: ``.worktrees/<feature>-WPxx`` for 0.x features, whose folder name gives the WP id;
in a 3.x mission's lane worktree (``.worktrees/<mission>-lane-a``) the WP id is the first ``WPnn`` of the prompt
(kittydoit's prompts name the WP first; spec-kitty-orchestrator's prompt is the WP file, which opens with
``work_package_id``). ``$KITTYDOIT_BENCH_DURATIONS`` names a JSON file ``{"WP01": [implement_s,
review_s], ...}``; a WP missing there takes no time. With ``auto`` (how spec-kitty's orchestrators call it, as
``claude`` or ``codex``) the role is guessed: spec-kitty 0.16.2's review prompt starts "Review the
implementation"; spec-kitty-orchestrator 0.1.2 sends the same prompt to both roles but lets a reviewing
``claude`` use only ``--allowedTools Read,Glob,Grep,Bash``. ``$KITTYDOIT_BENCH_TIMELINE`` names a file to
which a line ``role wp start end`` (Unix times) is appended per call, so a benchmark can see when agents
actually ran.

An implementer writes ``<WP>.txt`` and commits it (spec-kitty requires the agent to commit; kittydoit then
finds nothing left to commit). A reviewer approves in a form both orchestrators read: a ``VERDICT:
APPROVED`` line for kittydoit, the words "APPROVED - review complete" for spec-kitty. Asked for JSON
(``--output-format json`` or ``--json``), the answer is wrapped as ``{"type": "result", "result": ...}``.

Only the standard library is imported and ``-S`` skips site-packages, so a start costs as little as Python
allows; ``python -m bench`` measures that cost and reports it apart from the orchestrator's. The start in the
timeline is stamped before the agent imports anything (its imports are its own work, as a real CLI's are), and
it ends with ``os._exit`` right after stamping its end: an interpreter's teardown (5-7 ms here) is the agent's
own time too, and would otherwise count as the orchestrator's hand-off.
"""

import time

STARTED = time.time()  # the agent's first line: what the timeline calls its start

import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402


def main(argv: list[str]) -> int:
    started = STARTED
    role = argv[1] if len(argv) > 1 else "auto"
    prompt = sys.stdin.read()
    if role not in ("implement", "review"):
        role = "review" if _asked_to_review(argv, prompt) else "implement"
    match = re.search(r"WP\d+$", os.getcwd()) or re.search(r"WP\d+", prompt)
    wp = match.group(0) if match else "WP??"
    durations = {}
    path = os.environ.get("KITTYDOIT_BENCH_DURATIONS")
    if path:
        with open(path) as handle:
            durations = json.load(handle)
    seconds = durations.get(wp, [0.0, 0.0])[0 if role == "implement" else 1]
    if seconds > 0:
        time.sleep(seconds)
    if role == "implement":
        name = wp + ".txt"
        with open(name, "w") as handle:
            handle.write(f"{wp} implemented at {time.time():f}\n")
        git = ["git", "-c", "gc.auto=0", "-c", "commit.gpgsign=false"]
        subprocess.run([*git, "add", "--", name], check=True)
        subprocess.run([*git, "commit", "-q", "--no-verify", "-m", wp + ": bench change"], check=True)
        text = f"{wp}: implemented\n"
    else:
        text = "VERDICT: APPROVED\nAPPROVED - review complete\n"
    if "--json" in argv or "json" in argv:
        text = json.dumps({"type": "result", "result": text}) + "\n"
    sys.stdout.write(text)
    sys.stdout.flush()
    timeline = os.environ.get("KITTYDOIT_BENCH_TIMELINE")
    if timeline:
        line = f"{role} {wp} {started:.6f} {time.time():.6f}\n"
        fd = os.open(timeline, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    return 0


def _asked_to_review(argv: list[str], prompt: str) -> bool:
    """Tell a review call from an implementation: spec-kitty 0.16.2 by its prompt, spec-kitty-orchestrator by
    the tools it allows ``claude`` (a reviewer may not write)."""
    if prompt.lstrip().startswith("Review the implementation"):
        return True
    if "--allowedTools" in argv[:-1]:
        return "Write" not in argv[argv.index("--allowedTools") + 1].split(",")
    return False


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no interpreter teardown after the end stamp (see the module's docstring)
