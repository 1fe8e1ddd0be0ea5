"""kittydoit ci without a CI engine: the generated files, the seals, and the jobs run by hand against a bare origin.

Every job here runs in a fresh clone of a bare origin repository, as on a new machine, with the example agents;
the engines themselves (act, gitlab-ci-local) and the linters are in tests/test_ci_engines.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import CORPUS, git, make_repo
from conftest import FEATURE as DEMO
from ruamel.yaml import YAML

from kittydoit import scaffold
from kittydoit.ci import generate
from kittydoit.ci.seals import DONE_BEFORE, MISSING, SEALED, STALE, UNFINISHED, Seal, assess
from kittydoit.context import load_context
from kittydoit.feature import load_feature

FEATURE = "001-textkit"
# kittydoit is installed where the tests run: its script names the interpreter it is installed in (a bare `python`
# can be another one, when a job's shell puts pyenv's shims first)
INSTALL = "kittydoit --version"
BARRIER_HOOK = '''#!{python}
"""pre-receive: hold the first two pushes of the watched refs until both have arrived, so they land together."""
import json, os, pathlib, sys, time
here = pathlib.Path({folder!r})
watched = set(json.loads((here / "refs.json").read_text()))
pushed = [line.split()[2].removeprefix("refs/heads/") for line in sys.stdin.read().splitlines()]
if watched & set(pushed):
    (here / f"arrived-{{os.getpid()}}").touch()
    if len(list(here.glob("arrived-*"))) <= 2:
        deadline = time.monotonic() + 300
        while len(list(here.glob("arrived-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        met = len(list(here.glob("arrived-*"))) >= 2
        with open(here / "log", "a") as log:
            log.write(" ".join(pushed) + (" together" if met else " alone") + "\\n")
'''


def kittydoit(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kittydoit", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL, check=False, env=env)  # fmt: skip


def example_origin(tmp_path: Path) -> Path:
    """Return a bare origin holding the example feature and both generated CI files, committed."""
    work = scaffold.example(tmp_path / "work")
    for engine in ("github", "gitlab"):
        result = kittydoit(work, "ci", engine, "--install", INSTALL)
        assert result.returncode == 0, result.stderr
    (work / ".gitlab-ci.yml").write_text(f"include:\n  - local: .gitlab/kittydoit-{FEATURE}.yml\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "kittydoit CI files")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(origin))
    return origin


def clone(origin: Path, where: Path) -> Path:
    git(origin.parent, "clone", "-q", str(origin), str(where))
    return where


def tips(origin: Path) -> dict[str, str]:
    out = git(origin, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads/")
    return dict(line.split() for line in out.splitlines())


def edit_on_origin(origin: Path, where: Path, wp_file: str, old: str, new: str) -> None:
    """Change a WP file on the origin's main branch, as a person would."""
    work = clone(origin, where)
    path = next((work / "kitty-specs" / FEATURE / "tasks").glob(f"{wp_file}-*.md"))
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    git(work, "commit", "-q", "-am", f"edit {wp_file}")
    git(work, "push", "-q", "origin", "main")


def barrier(origin: Path, refs: list[str]) -> Path:
    """Make the origin hold the first two pushes to *refs* until both arrived; return the folder of its log."""
    folder = origin.parent / "barrier"
    folder.mkdir()
    (folder / "refs.json").write_text(json.dumps(refs))
    hook = origin / "hooks" / "pre-receive"
    hook.write_text(BARRIER_HOOK.format(python=sys.executable, folder=str(folder)))
    hook.chmod(0o755)
    return folder


def load(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text())


# ---- the generated files ----------------------------------------------------------------------------------------


def test_github_workflow_maps_the_dag_with_least_privilege(tmp_path: Path) -> None:
    work = scaffold.example(tmp_path / "work")
    result = kittydoit(work, "ci", "github")
    assert result.returncode == 0, result.stderr
    flow = load(work / ".github/workflows/kittydoit-001-textkit.yml")
    assert flow["on"] == {"workflow_dispatch": {}}
    assert flow["permissions"] == {}
    jobs = flow["jobs"]
    assert list(jobs) == ["WP01", "WP02", "WP03", "WP04", "integrate"]
    assert jobs["WP01"]["name"] == "WP01: Package and slugify" and "needs" not in jobs["WP01"]
    assert jobs["WP04"]["needs"] == ["WP02", "WP03"]
    assert jobs["integrate"]["needs"] == ["WP01", "WP02", "WP03", "WP04"]
    assert jobs["integrate"]["if"] == "${{ !cancelled() }}"
    for job in jobs.values():
        assert job["permissions"] == {"contents": "write"}
        assert job["timeout-minutes"] >= 1
    run = [s for s in jobs["WP02"]["steps"] if s.get("run", "").startswith("kittydoit ci job")]
    assert run[0]["run"] == "kittydoit ci job WP02 --feature 001-textkit"
    assert "pip install 'kittydoit==" in jobs["WP02"]["steps"][2]["run"]
    # the example's agents are custom ones named by an absolute path: said, since a runner may not have it
    assert "absolute path" in result.stderr and "absolute path" not in result.stdout


def test_secrets_go_only_to_the_agent_step_and_the_cli_installs_are_named(tmp_path: Path) -> None:
    work = scaffold.example(tmp_path / "work")
    (work / ".kittify/agents.yaml").write_text(
        "agents:\n  claude-code: {max_concurrent: 2}\n  codex: {}\n"
        "defaults:\n  implementation: [claude-code, codex]\n  review: [codex, claude-code]\n"
        "global_timeout: 3600\n"
    )
    result = kittydoit(work, "ci", "github", "--secret", "EXTRA_TOKEN")
    assert result.returncode == 0, result.stderr
    jobs = load(work / ".github/workflows/kittydoit-001-textkit.yml")["jobs"]
    for wp in ("WP01", "WP04"):
        with_env = [s for s in jobs[wp]["steps"] if "env" in s]
        assert len(with_env) == 1 and with_env[0]["run"].startswith("kittydoit ci job")
        assert with_env[0]["env"] == {
            "ANTHROPIC_API_KEY": "${{ secrets.ANTHROPIC_API_KEY }}",
            "EXTRA_TOKEN": "${{ secrets.EXTRA_TOKEN }}",
            "OPENAI_API_KEY": "${{ secrets.OPENAI_API_KEY }}",
        }
        installs = [s["run"] for s in jobs[wp]["steps"] if s.get("name") == "Install the agent CLIs"]
        assert installs == ["npm install --global @anthropic-ai/claude-code@2.1.331 @openai/codex@0.169.0"]
    assert not any("env" in s for s in jobs["integrate"]["steps"])
    # two agents per role, an hour each, four tries, three review cycles: far beyond six hours
    assert "does not fit GitHub's 360-minute job limit" in result.stderr
    assert jobs["WP01"]["timeout-minutes"] == 360
    # claude-code (the first implementer) may run twice at once: two queues, the WPs assigned to them in turn
    groups = {wp: jobs[wp].get("concurrency") for wp in ("WP01", "WP02", "WP03", "WP04")}
    assert groups == {
        "WP01": {"group": "kittydoit-anthropic-1", "queue": "max"},
        "WP02": {"group": "kittydoit-anthropic-2", "queue": "max"},
        "WP03": {"group": "kittydoit-anthropic-1", "queue": "max"},
        "WP04": {"group": "kittydoit-anthropic-2", "queue": "max"},
    }
    assert "concurrency" not in jobs["integrate"]
    pipeline = load_gitlab(work)
    resource_groups = [job.get("resource_group") for name, job in pipeline.items() if name.startswith(FEATURE)]
    assert resource_groups == ["kittydoit-anthropic-1", "kittydoit-anthropic-2"] * 2


def load_gitlab(work: Path) -> dict:
    assert kittydoit(work, "ci", "gitlab").returncode == 0
    return load(work / ".gitlab/kittydoit-001-textkit.yml")


def test_gitlab_pipeline_maps_the_dag(tmp_path: Path) -> None:
    work = scaffold.example(tmp_path / "work")
    pipeline = load_gitlab(work)
    names = [k for k in pipeline if k.startswith(FEATURE)]
    assert names == [
        "001-textkit WP01: Package and slugify",
        "001-textkit WP02: Word count",
        "001-textkit WP03: Title case",
        "001-textkit WP04: Command line",
    ]
    assert pipeline["001-textkit WP01: Package and slugify"]["needs"] == []
    assert pipeline["001-textkit WP04: Command line"]["needs"] == [
        "001-textkit WP02: Word count", "001-textkit WP03: Title case"]  # fmt: skip
    integrate = pipeline["integrate-001-textkit"]
    assert integrate["when"] == "always" and len(integrate["needs"]) == 4
    assert pipeline["variables"]["GIT_DEPTH"] == "0"


def test_check_fails_when_the_file_no_longer_matches_the_wps(tmp_path: Path) -> None:
    work = scaffold.example(tmp_path / "work")
    missing = kittydoit(work, "ci", "github", "--check")
    assert missing.returncode == 1 and "does not exist" in missing.stdout
    assert not (work / ".github").exists()  # --check writes nothing
    assert kittydoit(work, "ci", "github").returncode == 0
    assert kittydoit(work, "ci", "github", "--check").returncode == 0
    wp = next((work / "kitty-specs" / FEATURE / "tasks").glob("WP03-*.md"))
    wp.write_text(wp.read_text().replace('dependencies: ["WP01"]', "dependencies: []"))
    stale = kittydoit(work, "ci", "github", "--check")
    assert stale.returncode == 1
    assert "no longer matches" in stale.stdout and "kittydoit ci github --feature 001-textkit" in stale.stdout


def test_user_mistakes_are_one_line_and_exit_3(tmp_path: Path) -> None:
    work = scaffold.example(tmp_path / "work")
    for args in (["ci"], ["ci", "jenkins"], ["ci", "job"], ["ci", "github", "extra"]):
        result = kittydoit(work, *args)
        assert result.returncode == 3, args
        assert result.stderr.startswith("ERROR: usage: kittydoit ci") and "Traceback" not in result.stderr
    unknown = kittydoit(work, "ci", "job", "WP09")
    assert unknown.returncode == 3
    assert unknown.stderr.strip() == (
        "ERROR: kitty-specs/001-textkit/tasks: has no work package WP09 (work packages: WP01, WP02, WP03, WP04)"
    )
    no_origin = kittydoit(work, "ci", "job", "WP01")
    assert no_origin.returncode == 2 and "Traceback" not in no_origin.stderr
    assert no_origin.stderr.startswith("ERROR: cannot read the branches of remote 'origin'")
    assert len(no_origin.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    # 0.x features: `kittydoit ci` refuses 3.x missions for now (see README, "Beyond one machine")
    "feature_dir", sorted(p for p in CORPUS.glob("v0*/kitty-specs/*") if p.is_dir()), ids=lambda p: p.name
)
def test_every_corpus_feature_becomes_a_workflow_and_a_pipeline(tmp_path: Path, feature_dir: Path) -> None:
    work = corpus_repo(tmp_path, feature_dir)
    ctx = load_context(work, None)  # in process: the command line itself is tested on the example
    for engine, place in (("github", ".github/workflows"), ("gitlab", ".gitlab")):
        assert generate(ctx, engine, say=lambda _line: None) == 0
        written = load(work / place / f"kittydoit-{feature_dir.name}.{'yml'}")
        feature = load_feature(work, work / "kitty-specs" / feature_dir.name)
        jobs = written["jobs"] if engine == "github" else [k for k in written if k.startswith(feature_dir.name)]
        assert len(jobs) == len(feature.wps) + (1 if engine == "github" else 0)


def corpus_repo(tmp_path: Path, feature_dir: Path) -> Path:
    """Return a repository holding one corpus feature and agents.yaml naming two real agent CLIs."""
    work = tmp_path / "corpus"
    shutil.copytree(feature_dir, work / "kitty-specs" / feature_dir.name)
    (work / ".kittify").mkdir()
    (work / ".kittify/agents.yaml").write_text(
        "agents:\n  claude-code: {timeout_seconds: 1200}\n  codex: {timeout_seconds: 1200}\n"
        "defaults:\n  implementation: [claude-code, codex]\n  review: [codex, claude-code]\nmax_retries: 1\n"
        "review_cycles: 2\n"
    )
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "corpus feature")
    return work


# ---- seals -------------------------------------------------------------------------------------------------------


def test_a_seal_reads_back_what_it_says() -> None:
    seal = Seal(commit="", feature=FEATURE, wp="WP04", fingerprint="f" * 64,
                built_on={"WP02": "a" * 40, "WP03": "b" * 40}, implementer="coder", reviewer="reviewer")  # fmt: skip
    assert Seal.parse("c" * 40, seal.message()) == replace(seal, commit="c" * 40)
    assert Seal.parse("c" * 40, "WP04: Command line\n\nImplemented by coder through kittydoit.\n") is None
    assert "lane" not in seal.message().lower()  # nothing 0.x-specific is carried


def test_assess_says_sealed_stale_unfinished_missing_and_done_before(tmp_path: Path) -> None:
    work = scaffold.example(tmp_path / "work")
    feature = load_feature(work, work / "kitty-specs" / FEATURE)
    prints = dict.fromkeys(feature.wps, "fp")

    def seal(wp: str, **built_on: str) -> Seal:
        return Seal(commit=f"{wp}-tip", feature=FEATURE, wp=wp, fingerprint="fp", built_on=built_on)

    tips = {"WP01": "WP01-tip", "WP02": "WP02-tip", "WP03": "WP01-tip", "WP04": None}
    seals = {"WP01": seal("WP01"), "WP02": seal("WP02", WP01="WP01-tip"), "WP03": seal("WP01")}
    states = assess(feature, prints, tips, seals)
    assert [states[w].status for w in feature.wps] == [SEALED, SEALED, UNFINISHED, MISSING]
    # a WP's branch at its dependency's seal (an attempt failed before committing) is not done
    assert states["WP03"].reason.startswith("its branch tip")

    moved = assess(feature, prints, {**tips, "WP01": "WP01-new"}, {**seals, "WP01": seal("WP01")})
    assert moved["WP01"].status == SEALED
    assert (moved["WP02"].status, moved["WP02"].reason) == (STALE, "WP01 moved since it was built")

    changed = assess(feature, {**prints, "WP01": "other"}, tips, seals)
    assert changed["WP01"].status == STALE and changed["WP02"].reason == "runs again after WP01"

    done = dict(feature.wps)
    feature_done = replace(feature, wps={**done, "WP01": replace(done["WP01"], lane="done")})
    before = assess(feature_done, prints, {"WP02": "WP02-tip"}, {"WP02": seal("WP02")})
    assert before["WP01"].status == DONE_BEFORE and before["WP02"].status == SEALED


# ---- jobs run by hand, each in a fresh clone ---------------------------------------------------------------------


@pytest.mark.slow
def test_jobs_seal_their_branches_and_a_second_run_does_nothing(tmp_path: Path) -> None:
    origin = example_origin(tmp_path)
    early = kittydoit(clone(origin, tmp_path / "early"), "ci", "job", "WP02")
    assert early.returncode == 1 and "WP02 cannot start: it needs WP01 (missing: not started)" in early.stdout
    for n, wp in enumerate(["WP01", "WP02", "WP03", "WP04"]):
        result = kittydoit(clone(origin, tmp_path / f"job{n}"), "ci", "job", wp)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{wp}: pushed {FEATURE}-{wp} at" in result.stdout and "(sealed)" in result.stdout
    sealed = tips(origin)
    again = kittydoit(clone(origin, tmp_path / "again"), "ci", "job", "WP04")
    assert again.returncode == 0 and "WP04 up to date" in again.stdout
    assert "implement started" not in again.stdout
    assert tips(origin) == sealed
    step_summary = tmp_path / "step-summary.md"
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(step_summary), "GITHUB_RUN_ID": "77"}
    integrate = kittydoit(clone(origin, tmp_path / "integrate"), "ci", "integrate", env=env)
    assert integrate.returncode == 0, integrate.stdout + integrate.stderr
    assert "summary: 4/4 done, 4 already done" in integrate.stdout  # no job of this "dispatch" left a report
    assert "report: .kittify/reports/001-textkit-ci-77.json" in integrate.stdout
    shown = step_summary.read_text()
    assert shown.startswith("## kittydoit 001-textkit: 4/4 done, 4 already done")
    assert f"| WP04 | Command line | skipped (sealed) | {tips(origin)[f'{FEATURE}-WP04'][:10]} |" in shown
    merged = clone(origin, tmp_path / "merged")
    git(merged, "checkout", "-q", f"{FEATURE}-integration")
    assert git(merged, "log", "-1", "--format=%s").startswith("001-textkit: lanes of the integrated work packages")


@pytest.mark.slow
def test_two_runs_of_one_wp_never_overwrite_each_other(tmp_path: Path) -> None:
    origin = example_origin(tmp_path)
    held = barrier(origin, [f"{FEATURE}-WP01"])
    clones = [clone(origin, tmp_path / f"run{n}") for n in (1, 2)]
    runs = [  # committers differ, so the two runs' commits differ even within one second
        subprocess.Popen(
            [sys.executable, "-m", "kittydoit", "ci", "job", "WP01"],
            cwd=c,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "GIT_COMMITTER_NAME": c.name, "GIT_AUTHOR_NAME": c.name},
        )
        for c in clones
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert (held / "log").read_text().splitlines() == [f"{FEATURE}-WP01 together"] * 2
    heads = [git(c, "rev-parse", f"{FEATURE}-WP01").strip() for c in clones]
    landed = tips(origin)[f"{FEATURE}-WP01"]
    winner = heads.index(landed)
    loser = 1 - winner
    assert "(sealed)" in outputs[winner][0]
    assert "not pushed" in outputs[loser][0] and "another run pushed to it first" in outputs[loser][0]
    assert "so it stands" in outputs[loser][0]  # the same spec was sealed: this run's job is done too
    assert [r.returncode for r in runs] == [0, 0]
    # no branch of the origin holds the loser's seal: the winner's branch was not overwritten
    assert git(origin, "for-each-ref", "--contains", heads[loser]) == ""


@pytest.mark.slow
def test_integrate_refuses_while_a_wp_is_unfinished(tmp_path: Path) -> None:
    origin = example_origin(tmp_path)
    assert kittydoit(clone(origin, tmp_path / "j1"), "ci", "job", "WP01").returncode == 0
    refused = kittydoit(clone(origin, tmp_path / "i1"), "ci", "integrate")
    assert refused.returncode == 1
    assert "integrate refused: 3 of 4 work packages are not sealed" in refused.stdout
    assert f"{FEATURE}-integration" not in tips(origin)
    report = json.loads((tmp_path / "i1/.kittify/reports/001-textkit-latest.json").read_text())
    assert report["run"]["status"] == "failed" and report["counts"]["skipped"] == 1


def test_the_ci_help_matches_the_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "kittydoit", "ci", "--help"], capture_output=True, text=True,
                            check=False, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert result.returncode == 0
    for words in ("kittydoit ci github", "--check", "kittydoit ci job WPxx", "kittydoit ci integrate", "--secret"):
        assert words in result.stdout


def test_a_title_cannot_smuggle_an_expression_or_a_line_into_the_workflow(tmp_path: Path) -> None:
    work = scaffold.example(tmp_path / "work")
    wp = next((work / "kitty-specs" / FEATURE / "tasks").glob("WP02-*.md"))
    wp.write_text(wp.read_text().replace('title: "Word count"', 'title: "Count ${{ secrets.X }}: words\\n# x"'))
    git(work, "commit", "-q", "-am", "odd title")
    assert kittydoit(work, "ci", "github").returncode == 0
    jobs = load(work / ".github/workflows/kittydoit-001-textkit.yml")["jobs"]
    assert jobs["WP02"]["name"] == "WP02: Count $ {{ secrets.X }}: words # x"


@pytest.mark.slow
def test_lane_folders_and_wps_done_before_kittydoit_integrate_too(tmp_path: Path) -> None:
    """The 0.8 layout (a folder per lane): integrate moves the files to tasks/done/; a WP done before never runs."""
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": ["WP01"], "WP03": ["WP02"]}, lanes={"WP01": "done"},
                     layout="lanes")  # fmt: skip
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo.root), str(origin))
    said = {}
    for wp in ("WP01", "WP02", "WP03"):
        result = kittydoit(clone(origin, tmp_path / f"job-{wp}"), "ci", "job", wp)
        assert result.returncode == 0, result.stdout + result.stderr
        said[wp] = result.stdout
    assert "WP01 up to date: its lane was done on main before kittydoit" in said["WP01"]
    assert repo.started() == ["WP02", "WP02", "WP03", "WP03"]  # implement and review of each, nothing of WP01
    assert f"{DEMO}-WP01" not in tips(origin)
    integrate = kittydoit(clone(origin, tmp_path / "integrate"), "ci", "integrate")
    assert integrate.returncode == 0, integrate.stdout + integrate.stderr
    assert "lanes moved to done: WP02, WP03" in integrate.stdout
    merged = clone(origin, tmp_path / "merged")
    git(merged, "checkout", "-q", f"{DEMO}-integration")
    tasks = merged / "kitty-specs" / DEMO / "tasks"
    assert sorted(p.name for p in (tasks / "done").iterdir()) == ["WP01-work.md", "WP02-work.md", "WP03-work.md"]
    assert not list((tasks / "planned").glob("*.md"))
    assert (merged / "WP02.txt").exists() and (merged / "WP03.txt").exists()
    calls = len(repo.calls())
    for wp in ("WP01", "WP02", "WP03"):  # dispatched again: git alone says there is nothing to do
        assert kittydoit(clone(origin, tmp_path / f"again-{wp}"), "ci", "job", wp).returncode == 0
    assert len(repo.calls()) == calls


def test_the_readme_shows_the_workflow_generated_for_the_example(tmp_path: Path) -> None:
    work = scaffold.example(tmp_path / "work")
    assert kittydoit(work, "ci", "github").returncode == 0
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index("<summary>.github/workflows/kittydoit-001-textkit.yml</summary>\n\n```yaml\n")
    shown = readme[readme.index("```yaml\n", start) + len("```yaml\n") : readme.index("```\n\n</details>", start)]
    assert shown == (work / ".github/workflows/kittydoit-001-textkit.yml").read_text()


def test_a_3x_mission_is_refused_in_one_line(tmp_path: Path) -> None:
    feature_dir = CORPUS / "v3" / "kitty-specs" / "mission-type-guard-registry-01KZY2FG"
    work = corpus_repo(tmp_path, feature_dir)
    result = subprocess.run([sys.executable, "-m", "kittydoit", "ci", "github"], cwd=work, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1 and "is a spec-kitty 3.x mission" in result.stderr
    assert not (work / ".github").exists()
