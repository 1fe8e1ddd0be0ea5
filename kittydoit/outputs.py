"""Read what an agent printed: its final answer, session id, tokens and cost, and how it failed, if it did.

Each output format has a parser from (stdout, stderr) to an :class:`AgentOutput`; :func:`parse` then classifies a
failure. ``text`` takes stdout as the final answer; the named agents' formats are in :data:`PARSERS` (kilocode
writes opencode's format). Classification looks at structured fields first (an HTTP status the agent reports,
an error type), then the agent's exit code (:class:`FailureSignals` of its row), and message patterns last.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

# Failure kinds: why an agent run failed, as far as its output tells.
RATE_LIMIT = "rate_limit"  # the model provider refused for rate or quota (HTTP 429): wait, or another agent
AUTH = "auth"  # no or bad credentials: no retry helps until someone logs in
USAGE = (
    "usage"  # the CLI rejected its command line (a flag that drifted): fix the agent row or the CLI version
)
LIMIT = "limit"  # a turn, time or tool-call limit of the CLI itself ended the run
TOOL = "tool"  # a tool the agent ran failed fatally
CONFIG = "config"  # the CLI's own setup is wrong (settings, sandbox, untrusted workspace)
API = "api"  # the provider failed otherwise (HTTP 5xx, overloaded, bad response)
OTHER = "other"  # the agent said it failed, without saying why in a way we recognise
KINDS = (RATE_LIMIT, AUTH, USAGE, LIMIT, TOOL, CONFIG, API, OTHER)

_NO_CODES: Mapping[int, str] = MappingProxyType({})


@dataclass(frozen=True)
class FailureSignals:
    """How one agent's failures look, beyond what its structured output says.

    ``exit_codes`` maps an exit status the CLI documents to a failure kind (gemini's 41 is AUTH). ``patterns``
    are ``(kind, regex)`` pairs, tried in order, case-insensitively, on the reported error, then stderr, then
    stdout, line by line; the first line that matches decides.
    """

    exit_codes: Mapping[int, str] = field(default_factory=lambda: _NO_CODES)
    patterns: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AgentOutput:
    """The parts of an agent's output kittydoit acts on, the same for every agent.

    - ``final_text``: the agent's final answer; None when the output holds none.
    - ``session_id``, ``input_tokens``, ``output_tokens``, ``cost_usd``: what the agent reported, or None.
    - ``is_final``: the output holds the agent's complete final result record (for a CLI that may hang after
      printing it, seeing this means the work is over).
    - ``is_error``: the agent's structured output says the run failed (claude ``is_error``, codex
      ``turn.failed``, an opencode ``error`` event, gemini's error JSON ...), whatever its exit code.
    - ``error``: the error message the agent reported, or the line that showed the failure.
    - ``failure``: the kind of failure (one of :data:`KINDS`), or None for a run that did not fail.
    - ``status_code``: the HTTP status the agent reported for its provider's answer (429, 401, ...), if any.
    - ``retryable``: whether the agent itself says the error is transient (opencode ``isRetryable``), or None.
    - ``evidence``: the output lines that decided ``failure`` (or showed the error), for logs and messages.
    """

    final_text: str | None
    session_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None
    is_final: bool = False
    is_error: bool = False
    failure: str | None = None
    status_code: int | None = None
    retryable: bool | None = None
    evidence: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.final_text is not None and not self.is_error and self.failure is None

    @property
    def rate_limited(self) -> bool:
        """Tell whether the provider refused for rate or quota (retry later, or with another agent)."""
        return self.failure == RATE_LIMIT

    @property
    def auth_failed(self) -> bool:
        """Tell whether the agent has no valid credentials (retrying the same agent cannot help)."""
        return self.failure == AUTH


def parse(
    output_format: str,
    stdout: str,
    stderr: str,
    *,
    returncode: int | None = 0,
    signals: FailureSignals | None = None,
) -> AgentOutput:
    """Parse an agent's output in *output_format* (a key of :data:`PARSERS`) and classify its failure.

    *returncode* is the agent's exit status (None when kittydoit stopped it). A run that exited 0 and whose
    output reports no error is not classified, so an answer that talks about "429" is still a success.
    """
    output = PARSERS[output_format](stdout, stderr)
    failed = output.is_error or (returncode is not None and returncode != 0) or returncode is None
    if not failed:
        return output
    return _classify(output, stdout, stderr, returncode, signals or FailureSignals())


def has_final_result(output_format: str, stdout: str) -> bool:
    """Tell whether *stdout* already holds the agent's complete final result (see ProcessRunner is_finished)."""
    return PARSERS[output_format](stdout, "").is_final


# ---- classification -----------------------------------------------------------------------------------------

_STATUS_KINDS = {429: RATE_LIMIT, 401: AUTH, 403: AUTH, 529: API, 500: API, 502: API, 503: API, 504: API}
_TYPE_KINDS = (  # structured error type or name -> kind
    (re.compile(r"rate.?limit|quota|resource_exhausted|too.?many.?requests", re.I), RATE_LIMIT),
    (re.compile(r"auth|permission_denied|unauthenticated|api.?key", re.I), AUTH),
    (re.compile(r"overloaded|api_error|server|unavailable", re.I), API),
)


def _classify(
    output: AgentOutput, stdout: str, stderr: str, returncode: int | None, signals: FailureSignals
) -> AgentOutput:
    if output.status_code in _STATUS_KINDS:
        line = output.error or f"HTTP {output.status_code}"
        return replace(output, failure=_STATUS_KINDS[output.status_code], evidence=output.evidence or (line,))
    if returncode is not None and returncode in signals.exit_codes:
        evidence = output.evidence or _last_lines(stderr or stdout)
        return replace(
            output, failure=signals.exit_codes[returncode], evidence=(f"exit code {returncode}", *evidence)
        )
    for kind, pattern in signals.patterns:
        regex = re.compile(pattern, re.IGNORECASE)
        for line in _lines(output.error or "", stderr, stdout):
            if regex.search(line):
                return replace(output, failure=kind, evidence=(line,))
    for regex, kind in _TYPE_KINDS:  # the error's own words, for agents without a pattern for it
        if output.error and regex.search(output.error):
            return replace(output, failure=kind, evidence=output.evidence or (output.error,))
    if returncode is None and not output.is_error:
        return output  # stopped by kittydoit (timeout, hang): the process result says so
    return replace(output, failure=OTHER, evidence=output.evidence or _last_lines(stderr or stdout))


def _lines(*texts: str) -> Iterator[str]:
    for text in texts:
        for line in text.splitlines()[-400:]:
            if line.strip():
                yield line.strip()[:500]


def _last_lines(text: str, count: int = 3) -> tuple[str, ...]:
    return tuple(line.strip()[:500] for line in text.splitlines() if line.strip())[-count:]


# ---- reading JSON -------------------------------------------------------------------------------------------


def _json_lines(text: str) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a JSONL stream, skipping lines that are not JSON objects."""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                yield data


def _json_document(text: str, opener: str = "{") -> Any:
    """Return the last JSON document in *text* that starts at the beginning of a line with *opener*."""
    decoder = json.JSONDecoder()
    starts = [m.start() for m in re.finditer(r"^[ \t]*" + re.escape(opener), text, re.MULTILINE)]
    for start in reversed(starts):
        try:
            data, _ = decoder.raw_decode(text[start:].lstrip())
        except ValueError:
            continue
        return data
    return None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _sum(values: list[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


# ---- one parser per format ----------------------------------------------------------------------------------


def parse_text(stdout: str, stderr: str) -> AgentOutput:
    """Take all of stdout as the final answer."""
    del stderr  # plain-text agents report errors only through the exit code and free text
    return AgentOutput(final_text=stdout if stdout.strip() else None)


def parse_result_object(stdout: str, stderr: str) -> AgentOutput:
    """Read claude's, auggie's and cursor's one ``{"type": "result", ...}`` object.

    claude's ``subtype`` says "success" even for errors: ``is_error``, ``api_error_status`` and
    ``terminal_reason`` tell. A run that failed before its result (a bad flag, no credentials for auggie and
    cursor) prints no JSON, only text on stderr.
    """
    del stderr  # without a result object the text is matched by the row's patterns
    result = next((d for d in reversed(list(_json_lines(stdout))) if d.get("type") == "result"), None)
    if result is None:
        document = _json_document(stdout)
        result = document if isinstance(document, dict) and document.get("type") == "result" else None
    if result is None:
        return AgentOutput(final_text=None)
    usage = _dict(result.get("usage"))
    inputs = [
        _int(usage.get(k)) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    ]
    is_error = bool(result.get("is_error"))
    text = result.get("result") if isinstance(result.get("result"), str) else None
    cost = result.get("total_cost_usd")
    billing = result.get("billing")
    if cost is None and isinstance(billing, dict):
        cost = billing.get("cost_usd", billing.get("total_cost_usd"))
    error = text if is_error else None
    if is_error and not error:
        error = str(result.get("terminal_reason") or result.get("subtype") or "error")
    return AgentOutput(
        final_text=None if is_error else text,
        session_id=_str(result.get("session_id")),
        input_tokens=_sum(inputs),
        output_tokens=_int(usage.get("output_tokens")),
        cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
        error=error,
        is_final=True,
        is_error=is_error,
        status_code=_int(result.get("api_error_status")),
        evidence=(f"result: is_error=true: {error}",) if is_error else (),
    )


def parse_codex(stdout: str, stderr: str) -> AgentOutput:
    """Read ``codex exec --json`` events: agent messages, usage per turn, ``turn.failed`` and ``error`` items."""
    del stderr
    session = answer = error = None
    tokens_in: list[int | None] = []
    tokens_out: list[int | None] = []
    final = failed = False
    evidence: list[str] = []
    for event in _json_lines(stdout):
        kind = event.get("type")
        item = _dict(event.get("item"))
        if kind == "thread.started":
            session = _str(event.get("thread_id"))
        elif kind == "item.completed" and item.get("type") == "agent_message":
            answer = item.get("text") if isinstance(item.get("text"), str) else answer
        elif kind == "item.completed" and item.get("type") == "error":
            error = _str(item.get("message") or item.get("text")) or error
        elif kind == "turn.completed":
            usage = _dict(event.get("usage"))
            tokens_in.append(_int(usage.get("input_tokens")))
            tokens_out.append(_int(usage.get("output_tokens")))
            final = True
        elif kind in ("turn.failed", "error"):
            detail = _dict(event.get("error")) or event
            error = _str(detail.get("message")) or error or "turn failed"
            evidence.append(f"{kind}: {error}")
            final = failed = True
    return AgentOutput(
        final_text=None if failed else answer,
        session_id=session,
        input_tokens=_sum(tokens_in),
        output_tokens=_sum(tokens_out),
        error=error,
        is_final=final,
        is_error=failed,
        status_code=_status_in(error),
        evidence=tuple(evidence),
    )


def parse_copilot(stdout: str, stderr: str) -> AgentOutput:
    """Read copilot's JSONL events: ``assistant.message`` contents, error events, the final ``result``."""
    del stderr
    answer = session = error = None
    status: int | None = None
    final = failed = False
    evidence: list[str] = []
    for event in _json_lines(stdout):
        kind = str(event.get("type", ""))
        data = _dict(event.get("data"))
        if kind == "assistant.message" and isinstance(data.get("content"), str) and data["content"].strip():
            answer = data["content"]
        elif kind == "result":
            session = _str(event.get("sessionId"))
            final = True
            code = _int(event.get("exitCode"))
            failed = failed or bool(code)
        elif kind.endswith("error") or kind == "session.error":
            error = _str(data.get("message")) or error or kind
            status = _int(data.get("statusCode")) or status
            evidence.append(f"{kind}: {error}" + (f" (status {status})" if status else ""))
            failed = True
    return AgentOutput(
        final_text=None if failed else answer,
        session_id=session,
        error=error,
        is_final=final,
        is_error=failed,
        status_code=status or _status_in(error),
        evidence=tuple(evidence),
    )


def parse_gemini(stdout: str, stderr: str) -> AgentOutput:
    """Read gemini's JSON: ``response`` and token stats on stdout, ``{"error": ...}`` on stderr (or stdout)."""
    data = _json_document(stdout)
    data = data if isinstance(data, dict) else {}
    failure = data.get("error") if isinstance(data.get("error"), dict) else None
    if failure is None:
        err_doc = _json_document(stderr)
        if isinstance(err_doc, dict) and isinstance(err_doc.get("error"), dict):
            failure = err_doc["error"]
    models = ((data.get("stats") or {}).get("models") or {}) if isinstance(data.get("stats"), dict) else {}
    tokens = [m.get("tokens") or {} for m in models.values() if isinstance(m, dict)]
    answer = data.get("response") if isinstance(data.get("response"), str) else None
    if failure is None:
        return AgentOutput(
            final_text=answer,
            session_id=_str(data.get("session_id")),
            input_tokens=_sum([_int(t.get("input", t.get("prompt"))) for t in tokens]),
            output_tokens=_sum([_int(t.get("candidates")) for t in tokens]),
            is_final=bool(data),
        )
    message = str(failure.get("message") or failure.get("type") or "error")
    code = _int(failure.get("code"))
    return AgentOutput(
        final_text=None,
        session_id=_str(data.get("session_id")),
        error=message,
        is_final=True,
        is_error=True,
        status_code=code if code is not None and code >= 400 else _status_in(message),
        evidence=(f"error: {failure.get('type') or ''} {message}".strip(),),
    )


def parse_qwen(stdout: str, stderr: str) -> AgentOutput:
    """Read qwen's JSON array of events; the last ``result`` element holds the answer or the error."""
    del stderr
    events = _json_document(stdout, "[")
    if not isinstance(events, list):
        events = list(_json_lines(stdout))  # stream-json, one event a line
    result = next((e for e in reversed(events) if isinstance(e, dict) and e.get("type") == "result"), None)
    if result is None:
        return AgentOutput(final_text=None)
    parsed = parse_result_object(json.dumps(result), "")
    failure = result.get("error") if isinstance(result.get("error"), dict) else None
    if failure and failure.get("message"):
        message = str(failure["message"])
        return replace(
            parsed,
            final_text=None,
            error=message,
            is_error=True,
            status_code=_status_in(message),
            evidence=(f"result error: {message}",),
        )
    return parsed


def parse_opencode(stdout: str, stderr: str) -> AgentOutput:
    """Read opencode's (and kilo's) JSONL events: text parts, per-step tokens and cost, ``error`` events.

    There is no final result object: the answer is the text of the last message, and a step that finished for a
    reason other than a tool call marks the end.
    """
    del stderr
    texts: dict[str, list[str]] = {}
    last_message: str | None = None
    session = error = None
    tokens_in: list[int | None] = []
    tokens_out: list[int | None] = []
    costs: list[float] = []
    final = failed = False
    retryable: bool | None = None
    status: int | None = None
    evidence: list[str] = []
    for event in _json_lines(stdout):
        kind = event.get("type")
        part = _dict(event.get("part"))
        session = _str(event.get("sessionID")) or session
        if kind == "text" and isinstance(part.get("text"), str):
            last_message = str(part.get("messageID") or "")
            texts.setdefault(last_message, []).append(part["text"])
        elif kind == "step_finish":
            tokens = _dict(part.get("tokens"))
            tokens_in.append(_int(tokens.get("input")))
            tokens_out.append(_int(tokens.get("output")))
            if isinstance(part.get("cost"), int | float):
                costs.append(float(part["cost"]))
            final = part.get("reason") not in ("tool-calls", "tool_calls")
        elif kind == "error":
            detail = _dict(event.get("error"))
            data = _dict(detail.get("data"))
            error = _str(data.get("message")) or _str(detail.get("name")) or "error"
            retryable = data.get("isRetryable") if isinstance(data.get("isRetryable"), bool) else retryable
            status = _int(data.get("statusCode")) or _status_in(error)
            evidence.append(f"error {detail.get('name') or ''}: {error}")
            failed = final = True
    answer = "".join(texts[last_message]) if last_message is not None else None
    return AgentOutput(
        final_text=None if failed else answer,
        session_id=session,
        input_tokens=_sum(tokens_in),
        output_tokens=_sum(tokens_out),
        cost_usd=sum(costs) if costs else None,
        error=error,
        is_final=final,
        is_error=failed,
        status_code=status,
        retryable=retryable,
        evidence=tuple(evidence),
    )


_STATUS_IN_TEXT = re.compile(r"\b(?:status(?: code)?:?\s*|HTTP\s*)(4\d\d|5\d\d)\b|\b(429)\b", re.IGNORECASE)


def _status_in(message: str | None) -> int | None:
    """Return an HTTP status an error message states ("last status: 429"), or None."""
    if not message:
        return None
    match = _STATUS_IN_TEXT.search(message)
    return int(match.group(1) or match.group(2)) if match else None


PARSERS: Mapping[str, Callable[[str, str], AgentOutput]] = MappingProxyType(
    {
        "text": parse_text,
        "claude": parse_result_object,
        "auggie": parse_result_object,
        "cursor": parse_result_object,
        "codex": parse_codex,
        "copilot": parse_copilot,
        "gemini": parse_gemini,
        "qwen": parse_qwen,
        "opencode": parse_opencode,
    }
)


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
