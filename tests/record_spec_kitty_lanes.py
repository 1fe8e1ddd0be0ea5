"""Record what spec-kitty itself says about each corpus v3 mission, for tests/test_eventlog.py.

Usage: ``python tests/record_spec_kitty_lanes.py SPEC_KITTY_BINARY``  (e.g. a spec-kitty-cli 3.2.7 install)

Copies ``tests/corpus/v3/kitty-specs/`` into a scratch git repository (one commit, a git identity, a private
HOME), runs ``spec-kitty agent tasks status --mission M --json`` for every mission there and writes, per
mission, ``tests/recorded/spec-kitty-<version>/<mission>.json`` holding the per-WP lanes and the lane counts
(the whole output is large and mostly prose; only what the tests compare is kept).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
CORPUS = HERE / "corpus" / "v3" / "kitty-specs"


def main(binary: str) -> None:
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
    out = HERE / "recorded" / f"spec-kitty-{version}"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        repo = Path(scratch) / "repo"
        home = Path(scratch) / "home"
        home.mkdir()
        shutil.copytree(CORPUS, repo / "kitty-specs")
        env = dict(
            os.environ,
            HOME=str(home),
            SPEC_KITTY_HOME=str(home / ".spec-kitty"),
            SPEC_KITTY_ENABLE_SAAS_SYNC="0",
            SPEC_KITTY_NO_UPGRADE_CHECK="1",
            GIT_AUTHOR_NAME="Recorder",
            GIT_AUTHOR_EMAIL="recorder@example.com",
            GIT_COMMITTER_NAME="Recorder",
            GIT_COMMITTER_EMAIL="recorder@example.com",
        )
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "corpus v3"]):
            subprocess.run(["git", *args], cwd=repo, env=env, check=True)
        for mission in sorted(p.name for p in CORPUS.iterdir() if p.is_dir()):
            result = subprocess.run(
                [binary, "agent", "tasks", "status", "--mission", mission, "--json"],
                cwd=repo,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                sys.exit(f"{mission}: spec-kitty exited {result.returncode}:\n{result.stderr}{result.stdout}")
            status = json.loads(result.stdout)
            recorded = {
                "spec_kitty": version,
                "command": f"spec-kitty agent tasks status --mission {mission} --json",
                "lanes": {wp["id"]: wp["lane"] for wp in status["work_packages"]},
                "by_lane": status.get("by_lane"),
            }
            (out / f"{mission}.json").write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
            print(f"{mission}: {recorded['by_lane']}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "spec-kitty")
