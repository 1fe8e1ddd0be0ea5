"""Read what an agent printed: its final answer, session id, tokens and cost, and any error it reported.

Each output format is a parser from (stdout, stderr) to an :class:`AgentOutput`. ``text`` takes stdout as the
final answer; the named agents' JSON formats are parsed by their own functions in :data:`PARSERS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class AgentOutput:
    """The parts of an agent's output kittydoit acts on."""

    final_text: str | None  # the agent's final answer; None when the output holds none
    session_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None  # an error the agent reported in structured output
    rate_limited: bool = False  # the structured output says so (e.g. HTTP 429)
    auth_failed: bool = False  # the structured output says so (not logged in, bad key)
    evidence: tuple[str, ...] = ()  # the output lines that decided the above


def parse_text(stdout: str, stderr: str) -> AgentOutput:
    """Take all of stdout as the final answer."""
    del stderr  # plain-text agents report errors only through the exit code and free text
    return AgentOutput(final_text=stdout if stdout.strip() else None)


PARSERS: Mapping[str, Callable[[str, str], AgentOutput]] = MappingProxyType({"text": parse_text})


def parse(output_format: str, stdout: str, stderr: str) -> AgentOutput:
    """Parse an agent's output in *output_format* (a key of :data:`PARSERS`)."""
    return PARSERS[output_format](stdout, stderr)


_VERDICT = re.compile(
    r"^[ \t>*_`#-]*VERDICT[ \t*_`]*:[ \t*_`]*(APPROVED|CHANGES[ _]REQUESTED)[ \t*_`.!]*$",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class Verdict:
    """A reviewer's decision and the feedback that came with it."""

    approved: bool
    feedback: str


def find_verdict(answer: str | None) -> Verdict | None:
    """Return the verdict of the last ``VERDICT:`` line of *answer*, or None when there is none.

    Only a line that is a verdict and nothing else counts, so "NOT APPROVED" in prose never approves. The
    feedback is the text after that line, or the text before it when nothing follows.
    """
    if not answer:
        return None
    matches = list(_VERDICT.finditer(answer))
    if not matches:
        return None
    last = matches[-1]
    approved = last.group(1).upper() == "APPROVED"
    after = answer[last.end() :].strip()
    before = answer[: last.start()].strip()
    return Verdict(approved=approved, feedback=after or before)
