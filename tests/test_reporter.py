"""What people see of a run: plain lines for CI, the live view in a terminal, from real runs with fake agents."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import FEATURE, Repo, make_repo
from terminal import PtyRun, Screen, plain
from test_process import wait_gone
from test_run import agent_pids

from kittydoit.events import last_line
from kittydoit.reporter import choose_view

RATE_LIMIT = {"stderr": "API Error: 429 Too Many Requests (rate limit)\n", "exit": 1}
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
EVENT = re.compile(rf"^{STAMP} ")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def events(stdout: str) -> list[str]:
    """Return the event lines of plain output, without their time stamps."""
    return [line.split(" ", 1)[1] for line in stdout.splitlines() if EVENT.match(line)]


def report(repo: Repo) -> dict:
    return json.loads((repo.root / ".kittify" / "reports" / f"{FEATURE}-latest.json").read_text())


def gate(repo: Repo, name: str) -> Path:
    return repo.root.parent / f"gate-{name}"


# ---- choosing the view ------------------------------------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "environ", "view"),
    [
        (Tty(), {}, "live"),
        (io.StringIO(), {}, "plain"),  # a pipe or a file
        (Tty(), {"CI": "true"}, "plain"),
        (Tty(), {"CI": "1"}, "plain"),
        (Tty(), {"CI": "false"}, "live"),  # how people say "not CI"
        (Tty(), {"CI": ""}, "live"),
        (Tty(), {"TERM": "dumb"}, "plain"),
        (Tty(), {"KITTYDOIT_PROGRESS": "plain"}, "plain"),
        (io.StringIO(), {"KITTYDOIT_PROGRESS": "live", "CI": "true"}, "live"),
    ],
)
def test_the_view_follows_the_terminal_ci_and_the_override(stream: io.StringIO, environ: dict, view: str) -> None:
    assert choose_view(stream, environ) == view


def test_last_line_of_a_log_is_plain_text(tmp_path: Path) -> None:
    log = tmp_path / "WP01-implement.log"
    assert last_line(log) == ""
    log.write_text("x" * 10000 + "\n\x1b[32mcompiling\x1b[0m 10%\r\x1b[32mcompiling\x1b[0m 90%\r\n\n  \n")
    assert last_line(log) == "compiling 90%"
    with log.open("a") as handle:
        handle.write("\n[kittydoit 2026-01-01T00:00:00Z] running fake-coder (implementation): agent --yes\n")
    assert last_line(log) == "running fake-coder (implementation): agent --yes"


# ---- plain lines ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_plain_lines_of_a_parallel_run_tell_every_retry_fallback_and_verdict_once(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {"WP01": [], "WP02": ["WP01"], "WP03": ["WP01"], "WP04": ["WP02", "WP03"]},
        implementers=("coder-a", "coder-b"),
        config_extra="rate_limit_cooldown_seconds: 0\n",
    )
    repo.plan({
        "WP02": {"implement@coder-a": [RATE_LIMIT],
                 "review": [{"verdict": "CHANGES_REQUESTED", "say": "Add tests."}, {"verdict": "APPROVED"}]},
        "WP03": {"implement@coder-a": [{"exit": 2, "stderr": "boom\n"}, {}]},
    })  # fmt: skip
    result = repo.kittydoit("-n", "2", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert not CONTROL.search(out.replace("\n", "")), "plain output holds control characters"
    lines = out.splitlines()
    summary_at = next(i for i, line in enumerate(lines) if " summary: " in line)
    assert all(EVENT.match(line) for line in lines[: summary_at + 1])  # every event line is time-stamped
    said = events(out)
    expected = {  # coder-a is rate limited for WP02 each time: at first, and again after the review feedback
        "WP02 implement: coder-a rate_limited (rate limited)": 2,
        "WP02 implement fell back to coder-b (after coder-a: rate_limited)": 2,
        "WP02 review verdict by fake-reviewer: changes requested (review 1 of 3); re-implementing": 1,
        "WP02 review verdict by fake-reviewer: approved (review 2 of 3)": 1,
        "WP03 implement: coder-a crash (exit code 2)": 1,
        "WP03 implement retried with coder-a (retry 1)": 1,
        "WP04 review done (fake-reviewer)": 1,
    }
    assert {line: said.count(line) for line in expected} == expected, said
    for wp in ("WP01", "WP02", "WP03", "WP04"):  # in order, per WP
        mine = [line for line in said if line.startswith(wp + " ")]
        assert mine[0] == f"{wp} implement started" and mine[-1] == f"{wp} review done (fake-reviewer)", mine
        implemented = f"{wp} implement done ({'coder-b' if wp == 'WP02' else 'coder-a'})"
        assert mine.index(implemented) < mine.index(f"{wp} review started")
    wp02 = [line for line in said if line.startswith("WP02 ")]
    rejected = wp02.index("WP02 review verdict by fake-reviewer: changes requested (review 1 of 3); re-implementing")
    fell_back = [i for i, line in enumerate(wp02) if line.startswith("WP02 implement fell back to coder-b")]
    assert fell_back[0] < rejected < fell_back[1]  # the second fallback is in the re-implementation

    # the summary's figures are what the fake agents did
    calls = [c for c in repo.calls() if "start" in c]
    per_agent = Counter(c["agent"] for c in calls)
    assert per_agent == {"coder-a": 6, "coder-b": 2, "fake-reviewer": 5}
    assert lines[summary_at].endswith(f"summary: 4/4 done in {lines[summary_at].rsplit(' in ', 1)[1]}")
    block = "\n".join(lines[summary_at:])
    assert "  agents       coder-a 6 (implement 6), coder-b 2 (implement 2), fake-reviewer 5 (review 5)" in block
    assert f"  invocations  {len(calls)} (1 retry, 2 fallbacks)" in block
    assert "  reviews      5 (4 approved, 1 changes requested)" in block
    assert "  tokens       not reported by the agents used" in block
    assert f"  report: .kittify/reports/{FEATURE}-" in block


@pytest.mark.slow
def test_plain_lines_and_summary_of_a_failed_and_a_blocked_wp(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": ["WP01"], "WP03": []}, config_extra="max_retries: 1\n")
    repo.plan({"WP01": {"implement": [{"exit": 3, "stderr": "no network\n"}]}})
    result = repo.kittydoit("-n", "2", "run")
    assert result.returncode == 1
    said = events(result.stdout)
    assert said.count("WP01 implement: fake-coder crash (exit code 3)") == 2
    assert said.count("WP01 implement retried with fake-coder (retry 1)") == 1
    assert [line for line in said if "FAILED" in line] == [
        next(line for line in said if line.startswith("WP01 implement FAILED: WP01 needs a human: implement failed"))
    ]
    assert "WP02 blocked: waits for WP01" in said
    assert "WP03 review done (fake-reviewer)" in said
    out = result.stdout
    assert "summary: 1/3 done, 1 failed, 1 blocked in " in out
    assert "\n  failed  WP01: WP01 needs a human: implement failed, every agent failed" in out
    assert f"\n          log: .kittify/logs/{FEATURE}/WP01-implement.log\n" in out
    assert "\n  blocked WP02: waits for WP01\n" in out
    assert len(calls := [c for c in repo.calls() if "start" in c]) == 4  # WP01 twice; WP03 implement, review
    assert f"\n  invocations  {len(calls)} (1 retry, 0 fallbacks)\n" in out
    data = report(repo)
    assert data["run"]["status"] == "failed" and data["run"]["exit_code"] == 1
    assert [(f["wp"], f["phase"], f["log"]) for f in data["failed"]] == [
        ("WP01", "implement", f".kittify/logs/{FEATURE}/WP01-implement.log")
    ]


@pytest.mark.slow
def test_a_reader_that_goes_away_does_not_stop_the_run(diamond: Repo) -> None:
    run = diamond.popen("-n", "2", "run")
    assert run.stdout is not None and run.stderr is not None
    assert run.stdout.readline().endswith(" 001-demo: 4 work packages\n")
    run.stdout.close()  # as `kittydoit run | head -1` does
    with run.stderr:
        err = run.stderr.read()
    assert run.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert all(diamond.lane(wp) == "done" for wp in ("WP01", "WP02", "WP03", "WP04"))
    assert report(diamond)["run"]["status"] == "completed"


# The orchestrator, with every fork and every thread start of its main process logged in order.
TRACED = """
import os, sys, threading
events = []
os.register_at_fork(before=lambda: events.append("fork"))
start = threading.Thread.start
def traced(self, *args, **kwargs):
    events.append("thread " + self.name)
    return start(self, *args, **kwargs)
threading.Thread.start = traced
from kittydoit.cli import main
code = main(sys.argv[1:])
with open(os.environ["TRACE_FILE"], "w") as handle:
    handle.write("\\n".join(events))
sys.exit(code)
"""


@pytest.mark.slow
def test_the_progress_thread_starts_only_after_doit_has_forked_its_workers(diamond: Repo) -> None:
    trace = diamond.root.parent / "trace.txt"
    env = {**os.environ, "TRACE_FILE": str(trace)}
    result = subprocess.run([sys.executable, "-c", TRACED, "-n", "2", "run"], cwd=diamond.root, env=env,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    events = trace.read_text().splitlines()
    assert events.count("fork") == 2  # doit's two workers
    assert events.count("thread kittydoit-progress") == 1
    assert events.index("thread kittydoit-progress") > max(i for i, event in enumerate(events) if event == "fork")


# ---- the live view ----------------------------------------------------------------------------------------


def row(wp: str, phase: str, agent: str, last: str) -> re.Pattern[str]:
    """Match a row of the live view: WP, title, phase, agent, try, time, last line of the log."""
    return re.compile(rf"{wp}\s+Title of {wp}\s+{phase}\s+{agent}\s+1\s+\d+:\d\d\s+{re.escape(last)}")


@pytest.mark.slow
def test_live_view_with_two_workers_shows_rows_and_keeps_stray_output_off_the_table(diamond: Repo) -> None:
    wait = str(gate(diamond, "go"))
    diamond.plan({"WP02": {"implement": [{"say": "step 2 of 5: writing tests", "wait": wait}]},
                  "WP03": {"implement": [{"say": "WP03 is halfway", "wait": wait}]}})  # fmt: skip
    run = PtyRun(diamond.root, "-n", "2", "run", columns=130)
    seen = run.read_until(
        lambda text: bool(row("WP02", "implementing", "fake-coder", "step 2 of 5: writing tests").search(text)
                          and row("WP03", "implementing", "fake-coder", "WP03 is halfway").search(text)),
        what="rows for WP02 and WP03",
    )  # fmt: skip
    header = r"kittydoit 001-demo\s+1/4 done\s+0 failed\s+0 blocked\s+2 running\s+1 waiting\s+elapsed 0:\d\d"
    assert re.search(header, seen)
    # Something writes to stderr while the view is up: a corrupt state file is reported (by a worker or
    # the main process, whichever reads it first). It must come out as a line of its own above the view.
    (diamond.root / ".kittify" / "kittydoit" / FEATURE / "agent-health.json").write_text("{ not json")
    gate(diamond, "go").write_text("")
    assert run.wait() == 0, plain(run.text)[-3000:]

    screen = Screen().feed(run.text)
    left = screen.text
    assert screen.cursor_visible
    warnings = [line for line in left if "agent-health.json was unreadable" in line]
    whole = r"(kittydoit: )?/\S+agent-health\.json was unreadable \(.*\); set aside as agent-health\.json\.corrupt-\S+"
    assert warnings and all(re.fullmatch(whole, warning) for warning in warnings), warnings
    event_lines = [line for line in left if re.match(r"\d\d:\d\d:\d\d ", line)]
    panel = [line for line in left if line[0] in "╭│╰"]
    assert len(event_lines) + len(warnings) + len(panel) == len(left), left  # nothing else: no table left behind
    said = [line[9:] for line in event_lines]
    for wp in ("WP01", "WP02", "WP03", "WP04"):
        assert said.count(f"{wp} implement started") == 1 and said.count(f"{wp} review done (fake-reviewer)") == 1
    assert said.index("WP01 review done (fake-reviewer)") < said.index("WP02 implement started")
    assert panel[0].startswith("╭─ 001-demo: 4/4 done in ")
    assert any(re.fullmatch(r"│ invocations\s+8 \(0 retries, 0 fallbacks\)\s+│", line) for line in panel), panel
    assert any(re.fullmatch(rf"│ report\s+\.kittify/reports/{FEATURE}-\S+\.json\s+│", line) for line in panel), panel
    assert report(diamond)["counts"]["done"] == 4


@pytest.mark.slow
def test_live_view_with_tasks_in_the_main_process(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    repo.plan({"WP01": {"review": [{"say": "reading the diff", "wait": str(gate(repo, "go"))}]}})
    run = PtyRun(repo.root, "-n", "0", "run")
    run.read_until(lambda text: bool(row("WP01", "reviewing", "fake-reviewer", "").search(text)), what="WP01's row")
    gate(repo, "go").write_text("")
    assert run.wait() == 0, plain(run.text)[-3000:]
    left = Screen().feed(run.text).text
    assert [line[9:] for line in left if re.match(r"\d\d:\d\d:\d\d ", line)] == [
        "WP01 implement started",
        "WP01 implement done (fake-coder)",
        "WP01 review started",
        "WP01 review verdict by fake-reviewer: approved (review 1 of 3)",
        "WP01 review done (fake-reviewer)",
    ]
    assert left[-1].startswith("╰") and any("1/1 done" in line for line in left)


@pytest.mark.slow
def test_ctrl_c_during_the_live_view_restores_the_terminal_and_reports_the_interruption(diamond: Repo) -> None:
    diamond.plan({"WP01": {"implement": [{"say": "working", "wait": str(gate(diamond, "never")), "child": 60}]}})
    run = PtyRun(diamond.root, "-n", "2", "run")
    working = row("WP01", "implementing", "fake-coder", "working")
    run.read_until(lambda text: bool(working.search(text)), what="WP01's row")
    run.interrupt()
    assert run.wait() == 130
    screen = Screen().feed(run.text)
    assert screen.cursor_visible
    left = screen.text
    assert not any("last output" in line for line in left)  # the table is gone
    assert any(line.startswith("╭─ 001-demo: 0/4 done, 1 interrupted, 3 not run in ") for line in left), left
    assert any(re.fullmatch(r"│ interrupted WP01\s+Title of WP01\s+│", line) for line in left), left
    assert wait_gone(agent_pids(diamond), seconds=20) == []
    data = report(diamond)
    assert data["run"]["status"] == "aborted" and data["run"]["exit_code"] == 130
    assert data["run"]["reason"] == "interrupted (Ctrl-C)"
    counts = {"total": 4, "done": 0, "skipped": 0, "failed": 0, "blocked": 0, "implemented": 0, "interrupted": 1}
    counts["not_run"] = 3
    assert data["counts"] == counts


@pytest.mark.slow
def test_ci_in_a_terminal_gives_plain_lines(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    run = PtyRun(repo.root, "run", env={"CI": "true"})
    assert run.wait() == 0
    text = run.text.replace("\r\n", "\n")
    assert "\x1b" not in text and "\r" not in text
    assert events(text)[0] == f"{FEATURE}: 1 work package" and "WP01 review done (fake-reviewer)" in events(text)
