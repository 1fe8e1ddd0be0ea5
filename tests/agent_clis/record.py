"""Refresh the recorded outputs of the real CLIs: ``python -m tests.agent_clis.record [AGENT ...]``.

Each CLI is run offline (stand-in model server, throwaway HOME) in these cases, and what it printed is written
to ``tests/recorded/<agent>/<case>.json`` for the parser tests:

- ``implement``: an implementation prompt; the server has it write a file, then answer
- ``review``: a review prompt; the answer ends ``VERDICT: APPROVED``
- ``rate-limit``: the server answers HTTP 429 to everything (only CLIs that give up on their own)
- ``auth``: no credentials at all
- ``unknown-flag``: our command line plus ``--zz-sentinel``
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from kittydoit.agents import BUILTIN
from tests.agent_clis import harness
from tests.standin_server import StandinServer

RECORDED = Path(__file__).resolve().parent.parent / "recorded"
IMPLEMENT_PROMPT = (
    "You are implementing WP01.\n\nWork only inside {workdir}: a git worktree.\n\nWrite the file.\n"
)
REVIEW_PROMPT = (
    "You are reviewing work package WP01.\n\nEnd with VERDICT: APPROVED or VERDICT: CHANGES_REQUESTED.\n"
)
# CLIs that give up on HTTP 429 by themselves; the others retry silently until kittydoit's timeout.
RATE_LIMIT_AGENTS = ("claude-code", "codex", "copilot")


def record(agent_id: str, case: str, server: StandinServer) -> harness.Run | None:
    spec = BUILTIN[agent_id]
    with tempfile.TemporaryDirectory() as tmp:
        workdir, home = Path(tmp) / "work", Path(tmp) / "home"
        workdir.mkdir()
        home.mkdir()
        harness.git_init(workdir)  # kittydoit runs agents in git worktrees; codex refuses to run elsewhere
        prompt = (REVIEW_PROMPT if case == "review" else IMPLEMENT_PROMPT).format(workdir=workdir)
        role = "review" if case == "review" else "implementation"
        if case == "auth":
            if agent_id not in harness.AUTH_CHECK_AGENTS:
                return None
            env, extra = harness.clean_env(home), []
        elif case == "unknown-flag":
            env, extra = harness.clean_env(home), ["--zz-sentinel"]
        else:
            if agent_id not in harness.STANDIN_AGENTS or (
                case == "rate-limit" and agent_id not in RATE_LIMIT_AGENTS
            ):
                return None
            server.mode = "429" if case == "rate-limit" else "ok"
            variables, extra = harness.standin_setup(agent_id, server.url, home)
            env = harness.clean_env(home, variables)
        return harness.run_cli(
            spec, role, workdir=workdir, home=home, prompt=prompt, env=env, extra_args=extra, timeout=180
        )


def main(agents: list[str]) -> None:
    cases = ("implement", "review", "rate-limit", "auth", "unknown-flag")
    with StandinServer() as server:
        for agent_id in agents or harness.NPM_AGENTS:
            harness.install(BUILTIN[agent_id])
            for case in cases:
                run = record(agent_id, case, server)
                if run is None:
                    continue
                path = RECORDED / agent_id / f"{case}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(run.record(), indent=1) + "\n")
                print(
                    f"{agent_id} {case}: exit {run.returncode} in {run.seconds:.1f} s -> {path}", flush=True
                )


if __name__ == "__main__":
    main(sys.argv[1:])
