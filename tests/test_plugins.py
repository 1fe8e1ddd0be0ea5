"""The kittydoit command's stand-in for importlib.metadata (kittydoit.plugins): doit's lookups, and nothing lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import make_repo


def python(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=False)


def test_a_kittydoit_command_runs_without_importing_importlib_metadata(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": ["WP01"]})
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kittydoit", "run"],
        cwd=repo.root, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "import time:" in line}
    assert "doit.plugin" in imported and "importlib.metadata" not in imported
    # doit found kittydoit's database backend all the same (it refuses an unknown `backend` of DOIT_CONFIG)
    assert [repo.lane(wp) for wp in ("WP01", "WP02")] == ["done", "done"]


def test_whatever_else_is_asked_of_the_stand_in_gets_the_real_module() -> None:
    result = python(
        "import sys\n"
        "from kittydoit import plugins\n"
        "plugins.install()\n"
        "from importlib.metadata import entry_points\n"
        "print([p.name for p in entry_points(group='doit.BACKEND')])\n"
        "print(type(sys.modules['importlib.metadata']).__name__)\n"
        "import importlib.metadata\n"
        "print(importlib.metadata.version('doit'))\n"
        "print(type(sys.modules['importlib.metadata']).__name__, sys.modules['importlib.metadata'].__name__)\n"
        "print(len(list(entry_points(group='console_scripts'))) > 0)\n"
    )
    assert result.returncode == 0, result.stderr
    backends, before, version, after, scripts = result.stdout.splitlines()
    assert backends == "['kittydoit']" and before == "_StandIn"
    assert version.split(".")[0].isdigit()
    assert after == "module importlib.metadata" and scripts == "True"


def test_nothing_is_replaced_once_importlib_metadata_is_imported() -> None:
    result = python(
        "import sys, importlib.metadata\n"
        "from kittydoit import plugins\n"
        "plugins.install()\n"
        "print(sys.modules['importlib.metadata'] is importlib.metadata)\n"
    )
    assert result.stdout.strip() == "True", result.stderr
