"""Events read from WP records: each retry, fallback, failed attempt and verdict reported once, in order."""

from __future__ import annotations

from typing import Any

from kittydoit.events import Watch, clean

CRASH = {"class": "crash", "detail": "exit code 2"}
OK = {"class": "success", "detail": "finished"}


def attempt(phase: str, agent: str, outcome: dict[str, str], retry: int = 0) -> dict[str, Any]:
    return {"phase": phase, "agent": agent, "retry": retry, **outcome}


def record(attempts: list[dict[str, Any]], *, phase: str | None = None, agent: str | None = None, tries: int = 0,
           reviews: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    return {"status": "running" if phase else "done", "phase": phase, "agent": agent, "attempt": tries,
            "attempts": attempts, "reviews": reviews or []}  # fmt: skip


def texts(events: list[Any]) -> list[str]:
    return [event.text for event in events]


def test_a_retry_seen_while_it_runs_is_reported_then_and_not_again() -> None:
    watch = Watch(review_cycles=3)
    failed = [attempt("implement", "coder", CRASH)]
    assert texts(watch.observe("WP01", record(failed, phase="implementing", agent="coder", tries=1))) == [
        "WP01 implement: coder crash (exit code 2)"
    ]
    assert watch.observe("WP01", record(failed, phase="implementing", agent="coder", tries=1)) == []  # backing off
    assert texts(watch.observe("WP01", record(failed, phase="implementing", agent="coder", tries=2))) == [
        "WP01 implement retried with coder (retry 1)"
    ]
    done = [*failed, attempt("implement", "coder", OK, retry=1)]
    assert watch.observe("WP01", record(done)) == []


def test_a_retry_and_a_fallback_between_two_looks_are_reported_from_the_attempts() -> None:
    watch = Watch(review_cycles=3)
    attempts = [
        attempt("implement", "coder-a", CRASH),
        attempt("implement", "coder-a", {"class": "rate_limited", "detail": "rate limited"}, retry=1),
        attempt("implement", "coder-b", OK),
    ]
    assert texts(watch.observe("WP02", record(attempts))) == [
        "WP02 implement: coder-a crash (exit code 2)",
        "WP02 implement retried with coder-a (retry 1)",
        "WP02 implement: coder-a rate_limited (rate limited)",
        "WP02 implement fell back to coder-b (after coder-a: rate_limited)",
    ]


def test_a_fallback_seen_while_it_runs_and_an_agent_not_installed() -> None:
    watch = Watch(review_cycles=3)
    missing = [attempt("review", "rev-a", {"class": "not_installed", "detail": "'rev-a' is not installed"})]
    assert texts(watch.observe("WP03", record(missing, phase="reviewing", agent="rev-b", tries=1))) == [
        "WP03 review: rev-a not_installed ('rev-a' is not installed)",
        "WP03 review fell back to rev-b (after rev-a: not_installed)",
    ]
    assert watch.observe("WP03", record([*missing, attempt("review", "rev-b", OK)])) == []


def test_verdicts_follow_their_review_and_come_before_the_reimplementation() -> None:
    watch = Watch(review_cycles=2)
    rejected = {"cycle": 1, "reviewer": "rev", "verdict": "changes_requested"}
    attempts = [attempt("implement", "coder", OK), attempt("review", "rev", OK)]
    # the review attempt is recorded before its verdict: nothing to say about it yet
    assert watch.observe("WP04", record(attempts, phase="reviewing", agent="rev", tries=1)) == []
    attempts += [attempt("implement", "coder", CRASH)]
    now = record(attempts, phase="re-implementing", agent="coder", tries=1, reviews=[rejected])
    events = watch.observe("WP04", now)
    assert texts(events) == [
        "WP04 review verdict by rev: changes requested (review 1 of 2); re-implementing",
        "WP04 implement: coder crash (exit code 2)",
    ]
    approved = {"cycle": 2, "reviewer": "rev", "verdict": "approved"}
    attempts += [attempt("implement", "coder", OK, retry=1), attempt("review", "rev", OK)]
    assert texts(watch.observe("WP04", record(attempts, reviews=[rejected, approved]))) == [
        "WP04 implement retried with coder (retry 1)",
        "WP04 review verdict by rev: approved (review 2 of 2)",
    ]
    assert [e.kind for e in events] == ["verdict", "attempt_failed"]


def test_the_last_rejection_does_not_promise_another_round() -> None:
    watch = Watch(review_cycles=1)
    attempts = [attempt("implement", "coder", OK), attempt("review", "rev", OK)]
    reviews = [{"cycle": 1, "reviewer": "rev", "verdict": "changes_requested"}]
    assert texts(watch.observe("WP05", record(attempts, reviews=reviews))) == [
        "WP05 review verdict by rev: changes requested (review 1 of 1)"
    ]


def test_clean_keeps_one_line_of_plain_text() -> None:
    assert clean("\x1b[31mred\x1b[0m\tdone\r\nnext\x07\x1b]0;title\x07 \x9bok") == "red done  next ok"
