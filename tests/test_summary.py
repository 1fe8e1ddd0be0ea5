"""The summary and the JSON report: figures from real runs against what the fake agents did, and the schema."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import FEATURE, make_repo

from kittydoit.summary import SCHEMA, Outcomes, build

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "kittydoit" / "report.schema.json"
RATE_LIMIT = {"stderr": "API Error: 429 Too Many Requests (rate limit)\n", "exit": 1}
_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def problems(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> list[str]:
    """Check *value* against the parts of JSON Schema that report.schema.json uses; return what is wrong."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    found = [p for part in schema.get("allOf", []) for p in problems(value, part, root, where)]
    if "const" in schema and value != schema["const"]:
        found.append(f"{where}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} is not one of {schema['enum']}")
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, kind) for kind in kinds):
            return [*found, f"{where}: {value!r} is not {' or '.join(kinds)}"]
    if "minimum" in schema and isinstance(value, int | float) and value < schema["minimum"]:
        found.append(f"{where}: {value} < {schema['minimum']}")
    if isinstance(value, dict):
        found += [f"{where}: {key} is missing" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            sub = schema.get("properties", {}).get(key, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                found += problems(item, sub, root, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += problems(item, schema["items"], root, f"{where}[{index}]")
    return found


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def check(report: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    assert problems(report, schema, schema) == []


def test_the_checker_finds_what_breaks_the_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["$id"] == SCHEMA
    broken = {"schema": "kittydoit.report/2", "feature": 1, "run": {"status": "fine"}, "counts": {"total": -1},
              "invocations": {}, "reviews": {}, "usage": {"input_tokens": "many"}, "agents": [{}], "wps": [],
              "failed": [{"wp": "WP01"}]}  # fmt: skip
    found = problems(broken, schema, schema)
    for expected in ("$.schema: 'kittydoit.report/2' is not 'kittydoit.report/1'", "$.feature: 1 is not string",
                     "$.run: id is missing", "$.run.status: 'fine' is not one of", "$.counts.total: -1 < 0",
                     "$.usage.input_tokens: 'many' is not integer or null", "$.agents[0]: agent is missing",
                     "$.failed[0]: reason is missing"):  # fmt: skip
        assert any(line.startswith(expected) for line in found), (expected, found)


def test_tokens_and_cost_are_summed_for_the_agents_that_report_them() -> None:
    def tried(agent: str, phase: str, **usage: float) -> dict[str, Any]:
        return {"phase": phase, "agent": agent, "class": "success", "detail": "finished", "evidence": [], "retry": 0,
                "duration": 2.5, **usage}  # fmt: skip

    records = {
        "WP01": {"attempts": [tried("claude-code", "implement", input_tokens=1200, output_tokens=300, cost_usd=0.25),
                              tried("codex", "review")],
                 "reviews": [{"cycle": 1, "reviewer": "codex", "verdict": "approved"}], "review_cycles": 1},
        "WP02": {"attempts": [
            {"phase": "implement", "agent": "ghost", "class": "not_installed", "detail": "not installed",
             "evidence": [], "retry": 0},  # skipped: no process started
            {"phase": "implement", "agent": "qwen", "class": "cannot_run", "detail": "prompt too long",
             "evidence": [], "retry": 0},  # refused before a process started
            tried("claude-code", "implement", input_tokens=800, output_tokens=100, cost_usd=0.125)]},
    }  # fmt: skip
    why = "WP02 review failed: no reviewer"
    outcomes = Outcomes(done=["WP01"], failed={"WP02": why}, failed_phase={"WP02": "review"})
    summary = build(feature=FEATURE, titles={"WP01": "One", "WP02": "Two"}, outcomes=outcomes, records=records,
                    run={"id": "r1", "started": "2026-01-01T00:00:00Z", "argv": ["kittydoit", "run"]}, seconds=61.5,
                    status="failed", exit_code=1,
                    logs={"WP02": {"implement": "a.log", "review": "b.log"}})  # fmt: skip
    data = summary.report()
    check(data)
    claude, codex = data["agents"][:2]  # agents by name: claude-code, codex, ghost, qwen
    assert (claude["agent"], claude["input_tokens"], claude["output_tokens"], claude["cost_usd"]) == (
        "claude-code", 2000, 400, 0.375)
    assert (codex["input_tokens"], codex["cost_usd"], codex["seconds"]) == (None, None, 2.5)
    assert data["usage"] == {"input_tokens": 2000, "output_tokens": 400, "cost_usd": 0.375}
    assert data["invocations"] == {"total": 3, "retries": 0, "fallbacks": 0, "not_installed": 1}
    assert [(a["agent"], a["invocations"], a["outcomes"]) for a in data["agents"][2:]] == [
        ("ghost", 0, {"not_installed": 1}), ("qwen", 0, {"cannot_run": 1})]
    assert data["failed"] == [{"wp": "WP02", "phase": "review", "reason": why, "log": "b.log"}]
    assert ("tokens", "2,000 in, 400 out; cost $0.38 (claude-code)") in summary.figures()
    assert summary.lines()[0] == "summary: 1/2 done, 1 failed in 1m01s"


@pytest.mark.slow
def test_report_figures_are_what_the_fake_agents_did_and_match_the_schema(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {"WP01": [], "WP02": ["WP01"], "WP03": ["WP01"], "WP04": ["WP02", "WP03"]},
        lanes={"WP01": "done"},  # done before kittydoit: skipped as already done
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
    reports = repo.root / ".kittify" / "reports"
    data = json.loads((reports / f"{FEATURE}-latest.json").read_text())
    check(data)
    latest = (reports / f"{FEATURE}-latest.json").read_text()
    assert (reports / f"{FEATURE}-{data['run']['id']}.json").read_text() == latest
    assert f"report: .kittify/reports/{FEATURE}-{data['run']['id']}.json" in result.stdout

    calls = [c for c in repo.calls() if "start" in c]
    assert data["run"]["status"] == "completed" and data["run"]["exit_code"] == 0
    counts = {"total": 4, "done": 3, "skipped": 1, "failed": 0, "blocked": 0, "implemented": 0, "interrupted": 0}
    counts["not_run"] = 0
    assert data["counts"] == counts
    assert data["invocations"] == {"total": len(calls), "retries": 1, "fallbacks": 2, "not_installed": 0}
    assert data["reviews"] == {"cycles": 4, "approved": 3, "changes_requested": 1}
    assert {a["agent"]: a["invocations"] for a in data["agents"]} == Counter(c["agent"] for c in calls)
    by_role = {a["agent"]: (a["implement"], a["review"]) for a in data["agents"]}
    assert by_role == {"coder-a": (5, 0), "coder-b": (2, 0), "fake-reviewer": (0, 4)}  # WP02 2, WP03 2, WP04 1
    coder_a = next(a for a in data["agents"] if a["agent"] == "coder-a")
    assert coder_a["outcomes"] == {"rate_limited": 2, "crash": 1, "success": 2}
    wps = {wp["id"]: wp for wp in data["wps"]}
    assert wps["WP01"]["status"] == "skipped" and wps["WP01"]["attempts"] == []
    for wp_id in ("WP02", "WP03", "WP04"):
        assert len(wps[wp_id]["attempts"]) == sum(c["wp"] == wp_id for c in calls)
        assert wps[wp_id]["status"] == "done" and wps[wp_id]["reviewer"] == "fake-reviewer"
    assert (wps["WP02"]["fallbacks"], wps["WP02"]["review_cycles"], wps["WP02"]["changes_requested"]) == (2, 2, 1)
    assert (wps["WP02"]["implementer"], wps["WP03"]["retries"]) == ("coder-b", 1)
    assert data["usage"] == {"input_tokens": None, "output_tokens": None, "cost_usd": None}  # text agents report none

    again = repo.kittydoit("run")
    assert again.returncode == 0
    second = json.loads((reports / f"{FEATURE}-latest.json").read_text())
    check(second)
    assert second["run"]["id"] != data["run"]["id"]
    assert second["counts"]["skipped"] == 4 and second["invocations"]["total"] == 0
    assert len(list(reports.glob(f"{FEATURE}-*.json"))) == 3
    assert "summary: 4/4 done, 4 already done in " in again.stdout


@pytest.mark.slow
def test_tokens_and_cost_reported_by_an_agent_reach_the_summary_and_the_report(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP02": ["WP01"]})
    config = repo.root / ".kittify" / "agents.yaml"  # the reviewer speaks claude-code's JSON
    reviewer = "    roles: [review]\n"
    config.write_text(config.read_text().replace(reviewer, reviewer + "    output: claude-code\n"))
    recorded = json.loads((Path(__file__).with_name("recorded") / "claude-code" / "review.json").read_text())
    repo.plan({wp: {"review": [{"stdout": recorded["stdout"]}]} for wp in ("WP01", "WP02")})
    result = repo.kittydoit("run")
    assert result.returncode == 0, result.stdout + result.stderr
    usage = json.loads(recorded["stdout"])  # what the agent said it used, per review
    tokens_in, tokens_out = usage["usage"]["input_tokens"], usage["usage"]["output_tokens"]
    cost = usage["total_cost_usd"]
    data = json.loads((repo.root / ".kittify" / "reports" / f"{FEATURE}-latest.json").read_text())
    check(data)
    assert data["usage"] == {"input_tokens": 2 * tokens_in, "output_tokens": 2 * tokens_out, "cost_usd": 2 * cost}
    agents = {a["agent"]: a for a in data["agents"]}
    assert agents["fake-coder"]["input_tokens"] is None and agents["fake-coder"]["cost_usd"] is None
    assert (agents["fake-reviewer"]["input_tokens"], agents["fake-reviewer"]["review"]) == (2 * tokens_in, 2)
    shown = f"  tokens       {2 * tokens_in:,} in, {2 * tokens_out:,} out; cost ${2 * cost:.4f} (fake-reviewer)"
    assert shown in result.stdout
