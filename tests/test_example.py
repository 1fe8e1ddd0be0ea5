"""The bundled example: `kittydoit example` then a real run with the example agent, as the README's first command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kittydoit.example_agent import checks, spec_of, wanted_files

pytestmark = pytest.mark.slow


def kittydoit(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kittydoit", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_example_runs_to_done_with_every_worktree_holding_its_dependencies(tmp_path: Path) -> None:
    created = kittydoit(tmp_path, "example", str(tmp_path / "ex"))
    assert created.returncode == 0, created.stderr
    root = Path(created.stdout.strip())
    assert root == (tmp_path / "ex").resolve()
    result = kittydoit(root, "-n", "2", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "summary: 4/4 done" in result.stdout
    for wp in sorted((root / "kitty-specs/001-textkit/tasks").glob("WP*.md")):
        text = wp.read_text()
        assert 'lane: "done"' in text and 'reviewed_by: "example-reviewer"' in text, wp.name
        assert 'review_status: "approved"' in text
    wp04 = root / ".worktrees" / "001-textkit-WP04"
    for name in ("slug.py", "count.py", "title.py", "__main__.py"):
        assert (wp04 / "textkit" / name).is_file(), name
    run = subprocess.run(
        [sys.executable, "-m", "textkit", "Hello", "brave", "world"],
        cwd=wp04, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert run.stdout.splitlines() == ["hello-brave-world", "3", "Hello Brave World"]
    assert not (root / ".worktrees" / "001-textkit-WP02" / "textkit" / "title.py").exists()  # WP03's work stays out


def test_example_refuses_a_folder_in_use(tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    result = kittydoit(tmp_path, "example", str(tmp_path / "used"))
    assert result.returncode == 3
    assert "used: exists and is not empty; choose a new folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_example_agent_reads_files_and_checks_from_a_spec() -> None:
    spec = spec_of("intro\n## Specification of WP01\n\n### `a/b.py`\n\n```python\nx = 1\n```\n\n## Check\n\n"
                   "```sh\npython -c 'import a.b'\n```\n\n## The change to review\n\n### `not/this.py`\n")
    assert wanted_files(spec) == {"a/b.py": "x = 1\n"}
    assert checks(spec) == ["python -c 'import a.b'"]
