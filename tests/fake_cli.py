"""A stand-in for an agent CLI found on PATH, for tests of repositories that have no .kittify/agents.yaml.

    <bin>/claude:  exec python tests/fake_cli.py claude "$@"
    <bin>/codex:   exec python tests/fake_cli.py codex "$@"

It speaks just enough of the real CLI for kittydoit (see kittydoit/agents.py and kittydoit/outputs.py):
``--version``; the prompt on stdin; the role from the flags kittydoit passes (claude reviews with
``--permission-mode dontAsk``, codex with ``-s read-only``); the answer in the CLI's own JSON (claude: one
``result`` object; codex: ``exec --json`` events). An implementer writes ``<WP>.txt`` in the worktree (claude's
working directory, codex's ``-C``); a reviewer approves. Every call appends a JSON line (agent, role, wp, time)
to ``$FAKE_CLI_STATE/calls.jsonl``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path


def main(agent: str, args: list[str]) -> int:
    if "--version" in args:
        print({"claude": "2.1.331 (Claude Code)", "codex": "codex-cli 0.169.0"}[agent])
        return 0
    prompt = sys.stdin.read()
    match = re.search(r"WP\d+", prompt)
    wp = match.group(0) if match else "WP??"
    review = "dontAsk" in args if agent == "claude" else "read-only" in args
    workdir = Path(args[args.index("-C") + 1]) if "-C" in args else Path.cwd()
    state = Path(os.environ["FAKE_CLI_STATE"])
    state.mkdir(parents=True, exist_ok=True)
    with (state / "calls.jsonl").open("a") as handle:
        handle.write(json.dumps({"agent": agent, "role": "review" if review else "implement", "wp": wp,
                                 "time": time.time()}) + "\n")  # fmt: skip
    if review:
        answer = f"Reviewed {wp}.\nVERDICT: APPROVED\nLooks fine."
    else:
        (workdir / f"{wp}.txt").write_text(f"{wp} implemented by {agent}\n")
        answer = f"Implemented {wp}: wrote {wp}.txt."
    if agent == "claude":
        print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": answer,
                          "session_id": "fake", "usage": {"input_tokens": 10, "output_tokens": 5}}))  # fmt: skip
    else:
        for event in (
            {"type": "thread.started", "thread_id": "fake"},
            {"type": "item.completed", "item": {"id": "item_0", "type": "agent_message", "text": answer}},
            {"type": "turn.completed", "usage": {"input_tokens": 10, "output_tokens": 5}},
        ):
            print(json.dumps(event))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
