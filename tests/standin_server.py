"""A stand-in model server on 127.0.0.1 that drives the real agent CLIs without an account or network.

    python tests/standin_server.py [--port N] [--mode ok|429|500] [--log requests.jsonl]

It answers the four wire formats the CLIs speak, streamed or not:

- Anthropic Messages (``POST /v1/messages``): Claude Code
- OpenAI Responses (``POST /v1/responses``): Codex
- OpenAI Chat Completions (``POST /v1/chat/completions``): Copilot, Qwen Code, OpenCode, Kilo Code
- Gemini (``POST /v1beta/models/M:streamGenerateContent`` and ``:generateContent``): Gemini CLI

The script is the same for every format. A request whose conversation already holds a tool result gets the final
answer. Otherwise, when the prompt says ``Work only inside DIR:`` (kittydoit's implement prompt) and the CLI
offers a tool that writes files, the answer is a call of that tool writing ``DIR/standin.txt`` (its text names
the WP being implemented). A review prompt
("You are reviewing") is answered ``VERDICT: APPROVED`` (or the verdict in the server's ``verdict``). Mode
``429`` answers every request with HTTP 429, ``500`` with HTTP 500, which reproduces each CLI's failure handling.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

WRITTEN_FILE = "standin.txt"
FINAL_IMPLEMENT = "Done: wrote standin.txt as the specification asks."
_WORKDIR = re.compile(r"Work only inside (/\S+?):")
_WP = re.compile(r"implementing (?:work package )?(WP\d+)")

# How each CLI's file-writing tool takes a path and content: tool name -> arguments for (path, text).
_WRITERS: dict[str, Any] = {
    "Write": lambda path, text: {"file_path": path, "content": text},  # claude
    "write_file": lambda path, text: {"file_path": path, "content": text},  # gemini, qwen
    "write": lambda path, text: {"filePath": path, "content": text},  # opencode, kilo
    "create": lambda path, text: {"path": path, "file_text": text},  # copilot
    "shell": lambda path, text: {"command": ["bash", "-c", f"printf %s {_quote(text)} > {_quote(path)}"]},
}
# Codex offers one custom tool, ``exec``, that runs JavaScript calling its nested tools (exec_command, ...).
_CODEX_EXEC = "exec"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


class StandinServer(ThreadingHTTPServer):
    """The HTTP server; ``mode`` and ``verdict`` may be changed while it runs."""

    daemon_threads = True

    def __init__(
        self, port: int = 0, *, mode: str = "ok", verdict: str = "APPROVED", log: Path | None = None
    ):
        super().__init__(("127.0.0.1", port), _Handler)
        self.mode = mode
        self.verdict = verdict
        self.log = log
        self.requests: list[str] = []
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> StandinServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    server: StandinServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # the base class's name
        del format, args  # requests are recorded in server.requests instead

    def do_GET(self) -> None:  # http.server's naming
        self.server.requests.append(f"GET {self.path}")
        if self.path.rstrip("/").endswith("/models"):
            self._json(
                200, {"object": "list", "data": [{"id": "standin", "object": "model", "owned_by": "standin"}]}
            )
        else:
            self._json(404, {"error": {"message": f"no such path {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw or b"{}")
        self.server.requests.append(f"POST {self.path}")
        if self.server.log:
            with self.server.log.open("a") as handle:
                handle.write(json.dumps({"path": self.path, "body": body}) + "\n")
        if self.server.mode == "429":
            self.send_response(429)
            self.send_header("retry-after", "0")
            self._body("application/json", json.dumps(_error(429, "rate_limit_error", "Rate limit exceeded")))
            return
        if self.server.mode == "500":
            self._json(500, _error(500, "api_error", "Internal server error"))
            return
        path = self.path.split("?")[0]
        if path.endswith("/messages/count_tokens"):
            self._json(200, {"input_tokens": 100})
        elif path.endswith("/messages"):
            _Anthropic(self, body).answer()
        elif path.endswith("/responses"):
            _Responses(self, body).answer()
        elif path.endswith("/chat/completions"):
            _Chat(self, body).answer()
        elif ":streamGenerateContent" in path or ":generateContent" in path:
            _Gemini(self, body, streamed=":streamGenerateContent" in path).answer()
        elif ":countTokens" in path:
            self._json(200, {"totalTokens": 100})
        else:
            self._json(404, {"error": {"message": f"no such path {self.path}"}})

    def _json(self, status: int, data: object) -> None:
        self.send_response(status)
        self._body("application/json", json.dumps(data))

    def _body(self, content_type: str, text: str) -> None:
        data = text.encode()
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def sse(self, events: list[tuple[str | None, object]]) -> None:
        """Send *events* (name, data) as one server-sent event stream."""
        chunks = []
        for name, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            chunks.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
        self.send_response(200)
        self._body("text/event-stream", "".join(chunks))


def _error(status: int, kind: str, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": kind, "code": status, "message": message, "status": kind.upper()},
    }


class _Turn:
    """What to answer to one request: a final text, or a call of a file-writing tool."""

    def __init__(self, handler: _Handler, body: dict[str, Any]) -> None:
        self.handler = handler
        self.body = body
        self.text = json.dumps(body)

    def decide(self, tool_names: list[str], has_tool_result: bool) -> tuple[str, dict[str, Any]] | str:
        if "You are reviewing" in self.text:
            verdict = self.handler.server.verdict
            return f"I read the change; it does what the specification asks.\nVERDICT: {verdict}\nNo further notes."
        workdir = _WORKDIR.search(self.text)
        writer = next((name for name in _WRITERS if name in tool_names), None)
        if has_tool_result or not workdir or not writer:
            return FINAL_IMPLEMENT if workdir else "OK"
        path = str(Path(workdir.group(1)) / WRITTEN_FILE)
        wp = _WP.search(self.text)  # each WP writes its own content, so a WP after another changes something
        return writer, _WRITERS[writer](
            path, f"written through the stand-in model server{' for ' + wp.group(1) if wp else ''}\n"
        )


class _Anthropic(_Turn):
    def answer(self) -> None:
        names = [t.get("name", "") for t in self.body.get("tools") or []]
        messages = self.body.get("messages") or []
        last = messages[-1] if messages else {}
        content = last.get("content") if isinstance(last, dict) else None
        has_result = isinstance(content, list) and any(c.get("type") == "tool_result" for c in content)
        decision = self.decide(names, has_result)
        model = self.body.get("model", "standin")
        usage = {"input_tokens": 120, "output_tokens": 30}
        if isinstance(decision, str):
            block: dict[str, Any] = {"type": "text", "text": decision}
            stop = "end_turn"
        else:
            block = {
                "type": "tool_use",
                "id": "toolu_" + uuid.uuid4().hex[:20],
                "name": decision[0],
                "input": decision[1],
            }
            stop = "tool_use"
        message = {
            "id": "msg_" + uuid.uuid4().hex[:20],
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [block],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        if not self.body.get("stream"):
            self.handler._json(200, message)
            return
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 120, "output_tokens": 1},
        }
        if block["type"] == "text":
            first = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            first = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        self.handler.sse(
            [
                ("message_start", {"type": "message_start", "message": start}),
                ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": first}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": 30},
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            ]
        )


class _Responses(_Turn):
    def answer(self) -> None:
        items = self.body.get("input") or []
        tools = list(self.body.get("tools") or [])
        tools += [t for i in items if isinstance(i, dict) for t in i.get("tools") or []]
        names = [
            n for t in tools for n in [t.get("name", ""), *(x.get("name", "") for x in t.get("tools") or [])]
        ]
        has_result = any(isinstance(i, dict) and i.get("type", "").endswith("_call_output") for i in items)
        decision = self.decide([*names, "shell"] if _CODEX_EXEC in names else names, has_result)
        rid = "resp_" + uuid.uuid4().hex[:20]
        if not isinstance(decision, str) and _CODEX_EXEC in names:
            command = json.dumps(" ".join(decision[1]["command"][2:]))
            item: dict[str, Any] = {
                "type": "custom_tool_call",
                "id": "ctc_" + uuid.uuid4().hex[:12],
                "status": "completed",
                "call_id": "call_" + uuid.uuid4().hex[:12],
                "name": _CODEX_EXEC,
                "input": f"await tools.exec_command({{cmd: {command}}});",
            }
        elif isinstance(decision, str):
            item = {
                "type": "message",
                "role": "assistant",
                "id": "msg_" + uuid.uuid4().hex[:12],
                "status": "completed",
                "content": [{"type": "output_text", "text": decision, "annotations": []}],
            }
        else:
            item = {
                "type": "function_call",
                "id": "fc_" + uuid.uuid4().hex[:12],
                "status": "completed",
                "call_id": "call_" + uuid.uuid4().hex[:12],
                "name": decision[0],
                "arguments": json.dumps(decision[1]),
            }
        usage = {
            "input_tokens": 120,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 30,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 150,
        }
        response = {"id": rid, "object": "response", "status": "completed", "output": [item], "usage": usage}
        self.handler.sse(
            [
                (
                    "response.created",
                    {
                        "type": "response.created",
                        "response": {**response, "status": "in_progress", "output": []},
                    },
                ),
                (
                    "response.output_item.done",
                    {"type": "response.output_item.done", "output_index": 0, "item": item},
                ),
                ("response.completed", {"type": "response.completed", "response": response}),
            ]
        )


class _Chat(_Turn):
    def answer(self) -> None:
        names = [(t.get("function") or {}).get("name", "") for t in self.body.get("tools") or []]
        messages = self.body.get("messages") or []
        has_result = bool(messages) and messages[-1].get("role") == "tool"
        decision = self.decide(names, has_result)
        cid = "chatcmpl-" + uuid.uuid4().hex[:20]
        usage = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}
        if isinstance(decision, str):
            message: dict[str, Any] = {"role": "assistant", "content": decision}
            finish = "stop"
        else:
            call = {
                "id": "call_" + uuid.uuid4().hex[:12],
                "type": "function",
                "function": {"name": decision[0], "arguments": json.dumps(decision[1])},
            }
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        base = {"id": cid, "created": int(time.time()), "model": self.body.get("model", "standin")}
        if not self.body.get("stream"):
            self.handler._json(
                200,
                {
                    **base,
                    "object": "chat.completion",
                    "usage": usage,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                },
            )
            return
        delta = dict(message)
        if "tool_calls" in delta:
            delta["tool_calls"] = [{"index": 0, **c} for c in delta["tool_calls"]]
        chunk = {**base, "object": "chat.completion.chunk"}
        self.handler.sse(
            [
                (None, {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}),
                (
                    None,
                    {
                        **chunk,
                        "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
                        "usage": usage,
                    },
                ),
                (None, "[DONE]"),
            ]
        )


class _Gemini(_Turn):
    def __init__(self, handler: _Handler, body: dict[str, Any], *, streamed: bool) -> None:
        super().__init__(handler, body)
        self.streamed = streamed

    def answer(self) -> None:
        names = [
            d.get("name", "")
            for t in self.body.get("tools") or []
            for d in t.get("functionDeclarations") or []
        ]
        contents = self.body.get("contents") or []
        parts = contents[-1].get("parts", []) if contents else []
        has_result = any("functionResponse" in p for p in parts)
        decision = self.decide(names, has_result)
        schema = (self.body.get("generationConfig") or {}).get("responseJsonSchema")
        if schema:  # a side question (e.g. Gemini's model router) that wants JSON of this shape
            part: dict[str, Any] = {"text": json.dumps(_sample(schema))}
        elif isinstance(decision, str):
            part = {"text": decision}
        else:
            part = {"functionCall": {"name": decision[0], "args": decision[1]}}
        data = {
            "candidates": [
                {"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 30, "totalTokenCount": 150},
            "modelVersion": "standin",
        }
        if self.streamed:
            self.handler.sse([(None, data)])
        else:
            self.handler._json(200, data)


def _sample(schema: dict[str, Any]) -> object:
    """Return a small value that fits a JSON *schema* (Gemini's upper-case type names too)."""
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        return {name: _sample(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_sample(schema.get("items") or {"type": "string"})]
    if schema.get("enum"):
        return schema["enum"][0]
    return {"string": "standin", "integer": 10, "number": 10, "boolean": False}.get(kind, "standin")


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--mode", choices=["ok", "429", "500"], default="ok")
    parser.add_argument("--log", type=Path)
    args = parser.parse_args()
    server = StandinServer(args.port, mode=args.mode, log=args.log)
    print(f"stand-in model server on {server.url} (mode {args.mode})", flush=True)
    server.serve_forever()


def iter_requests(log: Path) -> Iterator[dict[str, Any]]:
    """Yield the requests a server recorded in *log*."""
    for line in log.read_text().splitlines():
        yield json.loads(line)


if __name__ == "__main__":
    _main()
