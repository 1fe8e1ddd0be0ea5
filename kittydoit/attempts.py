"""Run agents for one phase of a WP until an attempt succeeds or every option is used up.

Every attempt ends in one class (:class:`Outcome`), decided from the exit code, the agent's structured output and
known message patterns, with the lines that decided it kept as evidence. What happens next:

- transient failures (timeout, crash, unusable output, rate limit) are retried with the same agent, up to
  ``max_retries`` times, after a backoff that doubles each time (``retry_backoff_seconds``, at most 5 minutes);
  a rate-limited agent is retried only when no other agent can take over, and not before its cooldown ends;
- an auth failure, a missing binary, an agent that cannot take the prompt, or no change is not retried with
  that agent;
- then ``fallback_strategy``: ``next_in_list`` tries the next agent for the role that is enabled, installed
  and not cooling down; ``same_agent`` stops after the retries; ``fail`` stops at the first failure, no retries;
- a rate-limited agent cools down for ``rate_limit_cooldown_seconds`` and an auth-failed one for an hour, for
  every WP of the run and across doit's worker processes (see :class:`kittydoit.state.AgentHealth`).

Retries, fallbacks and review cycles are counted separately, each against its own limit. When the options run
out, :class:`NeedsHuman` says which agents were tried, why each failed, where the logs are and how to go on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from kittydoit import detect
from kittydoit.config import AgentSettings, Config
from kittydoit.outputs import AgentOutput
from kittydoit.process import ProcessResult, after_next_start
from kittydoit.slots import GLOBAL, Slots
from kittydoit.state import AgentHealth, WPRecord

_BACKOFF_CAP = 300.0
_AUTH_COOLDOWN = 3600.0

# Failure kinds (kittydoit.outputs) that no retry can fix.
_CANNOT_RUN = {"usage": "the agent rejected its command line", "config": "the agent's setup is broken"}

# Generic message patterns, after the agent's own structured fields, exit codes and patterns (kittydoit.outputs).
_RATE_LIMIT = re.compile(
    r"\b429\b|rate[ _-]?limit|too many requests|quota|resource[ _-]?exhausted|overloaded", re.IGNORECASE
)
_AUTH = re.compile(
    r"not logged in|unauthori[sz]ed|\b401\b|\b403\b|invalid (api )?key|api key|authenticat|no auth|"
    r"log ?in required|please log ?in|credentials",
    re.IGNORECASE,
)


class Outcome(StrEnum):
    """How one agent attempt ended."""

    SUCCESS = "success"
    HUNG_AFTER_FINISH = "hung_after_finish"  # complete output, process stopped by kittydoit: result kept
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    AUTH_FAILED = "auth_failed"
    CRASH = "crash"
    UNUSABLE_OUTPUT = "unusable_output"
    NO_CHANGE = "no_change"
    NOT_INSTALLED = "not_installed"
    CANNOT_RUN = "cannot_run"  # not executable, or the prompt is too long for the agent's command line


SUCCESSES = frozenset({Outcome.SUCCESS, Outcome.HUNG_AFTER_FINISH})
TRANSIENT = frozenset({Outcome.TIMEOUT, Outcome.CRASH, Outcome.UNUSABLE_OUTPUT, Outcome.RATE_LIMITED})


@dataclass(frozen=True)
class Attempt:
    """One run of one agent for one phase of a WP, and how it ended."""

    agent: str
    outcome: Outcome
    detail: str  # a few words: "exit code 3", "timed out after 600 s"
    evidence: tuple[str, ...] = ()
    result: ProcessResult | None = field(default=None, repr=False)
    output: AgentOutput | None = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return self.outcome in SUCCESSES

    def failed(self, outcome: Outcome, detail: str, *evidence: str) -> Attempt:
        """Return this attempt judged as *outcome* (say, no verdict in a review that exited 0)."""
        return replace(self, outcome=outcome, detail=detail, evidence=tuple(evidence) or self.evidence)


class NeedsHuman(Exception):
    """Every option for a phase failed; the message lists what was tried and how to go on."""


def classify(agent: AgentSettings, result: ProcessResult, output: AgentOutput, *, need_answer: bool) -> Attempt:
    """Decide how an attempt ended: structured fields first, then exit code and message patterns.

    *need_answer*: a missing final answer makes the attempt unusable (reviews, and agents with structured
    output, whose result record is missing only when something went wrong).
    """
    lines = [line for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
    if result.timed_out:
        return Attempt(agent.id, Outcome.TIMEOUT, f"timed out after {result.duration:.0f} s",
                       (f"still running after {result.duration:.0f} s",), result, output)  # fmt: skip
    if result.idle_timed_out:
        return Attempt(agent.id, Outcome.TIMEOUT, f"silent for too long ({result.duration:.0f} s in all)",
                       ("no output for the idle limit",), result, output)  # fmt: skip
    if result.finished_then_hung:
        return Attempt(agent.id, Outcome.HUNG_AFTER_FINISH, "finished, then hung: stopped, result kept",
                       ("final result printed, process still alive",), result, output)  # fmt: skip
    if output.auth_failed:
        return Attempt(agent.id, Outcome.AUTH_FAILED, "authentication failed", _evidence(output, lines), result, output)
    if output.rate_limited:
        return Attempt(agent.id, Outcome.RATE_LIMITED, "rate limited", _evidence(output, lines), result, output)
    if output.failure in _CANNOT_RUN:  # retrying a rejected flag or a broken setup cannot help
        detail = f"{_CANNOT_RUN[output.failure]} (exit code {result.returncode})"
        return Attempt(agent.id, Outcome.CANNOT_RUN, detail, _evidence(output, lines), result, output)
    if result.returncode != 0 or output.is_error:
        auth = _matching(lines, _AUTH)
        if auth:
            return Attempt(agent.id, Outcome.AUTH_FAILED, "authentication failed", auth, result, output)
        limited = _matching(lines, _RATE_LIMIT)
        if limited:
            return Attempt(agent.id, Outcome.RATE_LIMITED, "rate limited", limited, result, output)
        detail = f"exit code {result.returncode}" if result.returncode else "reported an error"
        if output.failure and output.failure != "other":
            detail += f" ({output.failure} error)"
        evidence = (f"exit code {result.returncode}", *(_evidence(output, lines[-3:])))
        return Attempt(agent.id, Outcome.CRASH, detail, evidence, result, output)
    if need_answer and not (output.final_text or "").strip():
        return Attempt(agent.id, Outcome.UNUSABLE_OUTPUT, "no final answer in its output",
                       ("exit code 0 but no result in the output",), result, output)  # fmt: skip
    return Attempt(agent.id, Outcome.SUCCESS, "finished", (), result, output)


def not_installed(agent: AgentSettings) -> Attempt:
    return Attempt(agent.id, Outcome.NOT_INSTALLED, f"'{agent.spec.binary}' is not installed",
                   (f"{agent.spec.binary}: not found on PATH",))  # fmt: skip


def installed(agent: AgentSettings) -> bool:
    """Tell whether the agent's binary can be found on PATH."""
    return bool(detect.find(agent.spec, version=False))


def backoff(config: Config, retry: int) -> float:
    """Seconds to wait before retry number *retry* (1-based): doubling from ``retry_backoff_seconds``."""
    return float(min(_BACKOFF_CAP, config.retry_backoff_seconds * 2 ** (retry - 1)))


@dataclass
class PhaseRun:
    """Runs one phase of one WP across retries and fallbacks, recording every attempt."""

    config: Config
    health: AgentHealth
    record: WPRecord
    phase: str  # implement | review
    log_path: str
    slots: Slots | None = None
    global_slots: Slots | None = None  # global_concurrency: every running agent holds one of these too
    sleep: Callable[[float], None] = time.sleep
    tried: list[Attempt] = field(default_factory=list)

    def run(
        self,
        candidates: Sequence[AgentSettings],
        attempt: Callable[[AgentSettings], Attempt],
        before: Callable[[AgentSettings], None] | None = None,
    ) -> Attempt:
        """Try *candidates* under the configured retry and fallback rules; return the successful attempt.

        *attempt* runs one agent once and judges the result; *before* is called before each agent's first try.
        Each try holds one of the agent's ``max_concurrent`` slots; choosing an agent takes its slot in the same
        step, so of two WPs starting together only one gets the last free slot and the other the next agent.
        """
        strategy = self.config.fallback_strategy
        retries_allowed = 0 if strategy == "fail" else self.config.max_retries
        remaining = self._usable(candidates)
        used = tries = 0
        while remaining and (not used or strategy == "next_in_list"):
            agent, slot = self._pick(remaining)
            remaining.remove(agent)
            if used:
                self.record.count("fallbacks")
            used += 1
            if before:
                before(agent)
            for retry in range(retries_allowed + 1):
                if retry:
                    self.record.count("retries")
                    slot = self._after_wait(agent, retry)
                tries += 1
                try:
                    overall = self._global_slot(agent)
                    # Written once the agent runs (the next write, at the latest), not on the way to its start.
                    self.record.note(agent=agent.id, attempt=tries, waiting=None)
                    after_next_start(self.record.flush)
                    try:
                        result = attempt(agent)
                    finally:
                        overall.release()
                finally:
                    slot.release()
                self._note(result, retry=retry)
                if result:
                    return result
                if result.outcome not in TRANSIENT:
                    break
                if result.outcome is Outcome.RATE_LIMITED and strategy == "next_in_list" and self._others(
                    remaining, agent
                ):
                    break  # it cools down; another agent takes over rather than waiting
        raise NeedsHuman(self._summary())

    def _usable(self, candidates: Iterable[AgentSettings]) -> list[AgentSettings]:
        """Return the candidates worth trying; note the others (not installed, failed authentication)."""
        usable = []
        for agent in candidates:
            if not installed(agent):
                self._note(not_installed(agent))
            elif self.health.failed_auth(agent.id):
                self._note(Attempt(agent.id, Outcome.AUTH_FAILED, "failed authentication earlier in this run",
                                   ("not tried again until its cooldown ends",)))  # fmt: skip
            else:
                usable.append(agent)
        return usable

    def _pick(self, remaining: list[AgentSettings]) -> tuple[AgentSettings, Any]:
        """Choose the next agent and take one of its slots.

        The first agent that is not cooling down and has a free slot; else the most preferred one, after its
        cooldown and once a slot is free.
        """
        ready = [a for a in remaining if not self.health.cooling_until(a.id)]
        for agent in ready:
            slot = self._try_slot(agent)
            if slot is not None:
                return agent, slot
        agent = (ready or remaining)[0]
        return agent, self._after_wait(agent, 0)

    def _after_wait(self, agent: AgentSettings, retry: int) -> Any:
        """Wait out the backoff and the agent's cooldown, then for one of its slots; return the slot."""
        wait = self._wait(agent, retry)
        if wait > 0:
            reason = "cooldown" if self.health.cooling_until(agent.id) else "backoff"
            until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + wait))
            self.record.update(agent=agent.id, waiting=f"{reason} of {agent.id} until {until}")
            self.sleep(wait)
        if self.slots is None:
            return _NoSlot()
        return self._take(agent, self.slots, agent.id, self.config.limit_for(agent), f"a free slot of {agent.id}")

    def _global_slot(self, agent: AgentSettings) -> Any:
        """Take one of the ``global_concurrency`` slots, waiting when that many agents run already.

        Taken after the agent's own slot: whoever holds a global slot holds all it needs, so waiting cannot
        deadlock.
        """
        if self.global_slots is None:
            return _NoSlot()
        limit = self.config.global_concurrency
        waiting = f"one of the {limit} agents allowed at once to finish (global_concurrency)"
        return self._take(agent, self.global_slots, GLOBAL, limit, waiting)

    def _take(self, agent: AgentSettings, slots: Slots, pool: str, limit: int, waiting: str) -> Any:
        """Take a slot of *pool* at once if one is free, else say what the WP is *waiting* for and wait."""
        slot = slots.try_acquire(pool, limit)
        if slot is None:
            self.record.update(agent=agent.id, waiting=waiting)
            slot = slots.acquire(pool, limit)
        return slot

    def _try_slot(self, agent: AgentSettings) -> Any:
        if self.slots is None:
            return _NoSlot()
        return self.slots.try_acquire(agent.id, self.config.limit_for(agent))

    def _others(self, remaining: Iterable[AgentSettings], agent: AgentSettings) -> bool:
        """Tell whether an agent other than *agent* could take over now."""
        return any(other.id != agent.id and not self.health.cooling_until(other.id) for other in remaining)

    def _wait(self, agent: AgentSettings, retry: int) -> float:
        """Return how long to wait before this try: the backoff, or until the agent's cooldown ends."""
        wait = backoff(self.config, retry) if retry else 0.0
        until = self.health.cooling_until(agent.id)
        if until is not None:
            wait = max(wait, until - time.time())
        return wait

    def _note(self, attempt: Attempt, retry: int = 0) -> None:
        if not attempt:
            self.tried.append(attempt)
        cooldown = None
        if attempt.outcome is Outcome.RATE_LIMITED:
            cooldown = float(self.config.rate_limit_cooldown_seconds)
        elif attempt.outcome is Outcome.AUTH_FAILED:
            cooldown = _AUTH_COOLDOWN
        if attempt.outcome is not Outcome.NOT_INSTALLED:
            self.health.record(attempt.agent, attempt.outcome.value, cooldown=cooldown)
        self.record.add_attempt(describe(attempt, self.phase, retry))

    def _summary(self) -> str:
        if not self.tried:
            return f"no agent could be used for the {self.phase} phase"
        by_agent: dict[str, list[Attempt]] = {}
        for attempt in self.tried:
            by_agent.setdefault(attempt.agent, []).append(attempt)
        parts = []
        for agent, attempts in by_agent.items():
            last = attempts[-1]
            times = f" ({len(attempts)} attempts)" if len(attempts) > 1 else ""
            why = f"{last.outcome.value}: {last.detail}"
            telling = [e for e in last.evidence if e != last.detail and not e.startswith("exit code")][:2]
            if telling:
                why += f" [{' | '.join(e[:160] for e in telling)}]"
            parts.append(f"{agent}{times} {why}")
        return f"every agent failed ({'; '.join(parts)})"


class _NoSlot:
    """Stands for a slot when no slot files are in use (PhaseRun without Slots)."""

    def release(self) -> None:
        pass


def describe(attempt: Attempt, phase: str, retry: int) -> dict[str, Any]:
    """Return the state-file record of an attempt."""
    record: dict[str, Any] = {
        "phase": phase,
        "agent": attempt.agent,
        "class": attempt.outcome.value,
        "detail": attempt.detail,
        "evidence": list(attempt.evidence),
        "retry": retry,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if attempt.result is not None:
        record |= {"exit_code": attempt.result.returncode, "duration": round(attempt.result.duration, 3)}
    if attempt.output is not None:
        for name in ("session_id", "input_tokens", "output_tokens", "cost_usd"):
            value = getattr(attempt.output, name, None)
            if value is not None:
                record[name] = value
    return record


def _matching(lines: Sequence[str], pattern: re.Pattern[str]) -> tuple[str, ...]:
    """Return the last lines matching *pattern*: the generic fallback after an agent's own failure signals."""
    return tuple(line.strip()[:200] for line in lines if pattern.search(line))[-3:]


def _evidence(output: AgentOutput, lines: Sequence[str]) -> tuple[str, ...]:
    if output.evidence:
        return output.evidence
    if output.error:
        return (output.error[:200],)
    return tuple(line.strip()[:200] for line in lines[-3:])
