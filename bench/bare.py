"""A bare orchestrator: the least any tool must do to run a feature's agents, for the measured makespan floor.

    python -S bench/bare.py DAG_JSON WORKERS WORKTREES AGENT_JSON

It runs the same fake agents over the same feature as kittydoit does in the quality suite, in the same order
(longest remaining chain of tasks first, ties by WP id, as :func:`kittydoit.tasks.task_order`), *WORKERS* at a
time, and does nothing else a real run needs: per WP one ``git worktree add`` right before its implement (one at
a time, under a lock, as git's own locks would make them), the implementer started in it with a one-line prompt
on standard input, one ``git status`` after it (any orchestrator has to look at what an implementer left), then
the reviewer. No doit, no lanes, no records, no prompts rendered, no logs: a worker is a thread that waits on a
condition and starts its agent with ``subprocess`` the moment a task is free. It imports only the standard library
and runs with ``-S``.

So its makespan over the bound is what this machine and these agents allow an orchestrator: the agents' own starts,
imports and commits, two cores shared by everything that runs at once, and a schedule that cannot know the
durations. ``python -m bench`` runs it beside kittydoit on every quality case (see ``bench.suites.quality``).
Where kittydoit makes a dependant's worktree while its last dependency is in review, this makes it on the critical
path (about 5 ms a WP here), so on a long chain kittydoit can come out ahead of it by that much.

*DAG_JSON* names a file ``{"deps": {"WP01": [], "WP02": ["WP01"], ...}}``; *WORKTREES* is the folder path prefix
of the worktrees (``<prefix>-WP01``; the fake agent takes its WP from that name); *AGENT_JSON* is the agent's argv
as a JSON list, its role appended. Exits 1 naming the WP when an agent or git fails.
"""

import heapq
import json
import subprocess
import sys
import threading
from collections.abc import Callable


def main(argv: list[str]) -> int:
    deps, after, workers, prefix, agent = read_arguments(argv)
    key = _priority(deps, after)
    ready = [(key(wp, "implement"), wp, "implement") for wp, before in deps.items() if not before]
    heapq.heapify(ready)
    waiting = {wp: len(before) for wp, before in deps.items()}
    left = 2 * len(deps)  # agent calls not yet done
    failed: list[str] = []
    turn = threading.Condition()
    git_lock = threading.Lock()

    def work() -> None:
        nonlocal left
        while True:
            with turn:
                while not ready and left > 0 and not failed:
                    turn.wait()
                if left <= 0 or failed:
                    return
                _, wp, phase = heapq.heappop(ready)
            folder = f"{prefix}-{wp}"
            try:
                if phase == "implement":
                    with git_lock:
                        _git("worktree", "add", "-q", "-b", f"bare-{wp}", folder, "HEAD")
                agent_run = subprocess.run([*agent, phase], cwd=folder, input=f"{wp} {phase}\n".encode(),
                                           stdout=subprocess.DEVNULL, check=False)  # fmt: skip
                if agent_run.returncode != 0:
                    raise RuntimeError(f"the {phase} agent exited {agent_run.returncode}")
                if phase == "implement":
                    _git("status", "--porcelain", cwd=folder)
            except (OSError, RuntimeError, subprocess.CalledProcessError) as error:
                with turn:
                    failed.append(f"{wp} {phase}: {error}")
                    turn.notify_all()
                return
            with turn:
                left -= 1
                if phase == "implement":
                    heapq.heappush(ready, (key(wp, "review"), wp, "review"))
                else:
                    for dependant in after[wp]:
                        waiting[dependant] -= 1
                        if waiting[dependant] == 0:
                            heapq.heappush(ready, (key(dependant, "implement"), dependant, "implement"))
                turn.notify_all()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        print(f"bare: {failed[0]}", file=sys.stderr)
        return 1
    return 0


def read_arguments(argv: list[str]) -> tuple[dict[str, tuple[str, ...]], dict[str, list[str]], int, str, list[str]]:
    """Return the command line's graph (each WP's dependencies and its dependants), workers, prefix and agent argv."""
    with open(argv[1]) as handle:
        deps = {wp: tuple(before) for wp, before in json.load(handle)["deps"].items()}
    after: dict[str, list[str]] = {wp: [] for wp in deps}
    for wp, before in deps.items():
        for dep in before:
            after[dep].append(wp)
    return deps, after, int(argv[2]), argv[3], json.loads(argv[4])


def _priority(deps: dict[str, tuple[str, ...]], after: dict[str, list[str]]) -> Callable[[str, str], tuple[int, ...]]:
    """Return the sort key of a (WP, phase): longest remaining chain of tasks first, ties by WP id."""
    chain: dict[str, int] = {}
    for wp in reversed(_topological(deps)):
        chain[wp] = 1 + max((chain[d] for d in after[wp]), default=0)
    order = {wp: i for i, wp in enumerate(sorted(deps, key=lambda w: (-chain[w], w)))}

    def key(wp: str, phase: str) -> tuple[int, ...]:
        review = phase == "review"
        return (-(2 * chain[wp] - review), order[wp], review)

    return key


def _git(*args: str, cwd: str | None = None) -> None:
    subprocess.run(["git", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def _topological(deps: dict[str, tuple[str, ...]]) -> list[str]:
    seen: dict[str, None] = {}

    def visit(wp: str) -> None:
        if wp not in seen:
            for dep in deps[wp]:
                visit(dep)
            seen[wp] = None

    for wp in deps:
        visit(wp)
    return list(seen)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
