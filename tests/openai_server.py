"""A scripted OpenAI-compatible chat-completions server, for protocol tests without a model.

It speaks the part of the OpenAI HTTP protocol that `ChatOpenAI` uses: `POST
/v1/chat/completions`, plain and streamed (server-sent events), with `response_format`
(`json_schema`, `json_object`) and `tools` (forced function calls). Each request is sorted by
its purpose (the schema it asks for, else the prompt it carries) and answered with the next
scripted `Reply` for that purpose: good JSON, prose, the wrong shape, truncated JSON, a
length-limit finish, an HTTP error, or an answer slower than the client's time-out.

Standard library only; the server runs in a daemon thread of the test process.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from memory_agent.embeddings import HashingEmbeddings

# The schema names our structured calls send (json_schema / function_calling), and the
# opening words of their prompts (json_mode and plain calls carry no schema name).
_SCHEMAS = {
    "_IntentDecision": "intent",
    "_Choice": "teams",
    "_Extraction": "extraction",
}
_PROMPTS = {
    "Classify the user's message": "intent",
    "You plan the work": "teams",
    "Extract durable memories": "extraction",
    "Update the running summary": "summary",
}


@dataclass
class Reply:
    """One scripted answer."""

    text: str = ""
    """The content (or, for a structured call by function calling, the tool's arguments)."""
    finish_reason: str | None = None
    """None: "stop" (or "tool_calls" for a tool call)."""
    status: int = 200
    """An HTTP error status instead of an answer (429, 500, ...)."""
    delay: float = 0.0
    """Seconds to wait before answering (past the client's time-out: a slow server)."""
    plain: bool = False
    """Answer as text even when the request asked for a tool call (a model ignoring tools)."""


def good(value: Any) -> Reply:
    """Well-formed structured output."""
    return Reply(json.dumps(value))


def prose(text: str = "Sure! The user seems to be saying hello.") -> Reply:
    """Prose where JSON was asked for."""
    return Reply(text, plain=True)


def truncated(value: Any) -> Reply:
    """JSON cut off in its first third (finish_reason stop: a broken server or proxy).

    Streamed tool-call arguments are parsed as partial JSON, so a cut after the last required
    field would still validate; a third falls inside the first field of our schemas.
    """
    body = json.dumps(value)
    return Reply(body[: len(body) // 3])


def length_limit(value: Any) -> Reply:
    """JSON cut off by the token limit (finish_reason "length")."""
    body = json.dumps(value)
    return Reply(body[: len(body) // 2], finish_reason="length")


def status(code: int) -> Reply:
    return Reply(status=code)


def slow(seconds: float, value: Any = "late") -> Reply:
    return Reply(json.dumps(value) if not isinstance(value, str) else value, delay=seconds)


DEFAULT_SCRIPT: dict[str, Reply] = {
    "intent": good({"intent": "statement", "reason": "scripted"}),
    "teams": good({"tasks": []}),
    "extraction": good({"memories": []}),
    "summary": Reply("The user talked about scripted things."),
    "answer": Reply("Scripted answer from the test server."),
}


def purpose_of(request: dict[str, Any]) -> str:
    """intent, teams, extraction, summary or answer."""
    for tool in request.get("tools") or []:
        name = tool.get("function", {}).get("name", "")
        if name in _SCHEMAS:
            return _SCHEMAS[name]
    fmt = request.get("response_format") or {}
    name = (fmt.get("json_schema") or {}).get("name", "")
    if name in _SCHEMAS:
        return _SCHEMAS[name]
    for message in request.get("messages", []):
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content)
        for opening, purpose in _PROMPTS.items():
            if opening in text:
                return purpose
    return "answer"


@dataclass
class ScriptedOpenAI:
    """The server's script and what it was asked; `url` is the `base_url` for `ChatOpenAI`."""

    script: dict[str, list[Reply]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    embeddings_status: int = 200
    """What `/embeddings` answers: 200 with the offline embedder's vectors, else that status."""

    def set(self, purpose: str, *replies: Reply) -> None:
        """Answer `purpose` with `replies` in order; the last one repeats."""
        with self.lock:
            self.script[purpose] = list(replies)

    def next_reply(self, request: dict[str, Any]) -> Reply:
        purpose = purpose_of(request)
        with self.lock:
            self.requests.append({**request, "_purpose": purpose})
            queue = self.script.get(purpose)
            if not queue:
                return DEFAULT_SCRIPT[purpose]
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def purposes(self) -> list[str]:
        with self.lock:
            return [r["_purpose"] for r in self.requests]


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:12]}"


def _pieces(text: str, n: int = 3) -> list[str]:
    if not text:
        return [""]
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _message(request: dict[str, Any], reply: Reply) -> tuple[dict[str, Any], str]:
    """The assistant message and its finish reason."""
    tools = request.get("tools") or []
    if tools and not reply.plain:
        name = tools[0]["function"]["name"]
        call = {
            "id": f"call_{uuid.uuid4().hex[:8]}",
            "type": "function",
            "function": {"name": name, "arguments": reply.text},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return message, reply.finish_reason or "tool_calls"
    return {"role": "assistant", "content": reply.text}, reply.finish_reason or "stop"


def _chunks(request: dict[str, Any], reply: Reply) -> Iterator[dict[str, Any]]:
    message, finish = _message(request, reply)
    base = {
        "id": _completion_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": request.get("model", "scripted"),
    }
    first: dict[str, Any] = {"role": "assistant", "content": ""}
    if message.get("tool_calls"):
        call = message["tool_calls"][0]
        first = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""},
                }
            ],
        }
        yield {**base, "choices": [{"index": 0, "delta": first, "finish_reason": None}]}
        for piece in _pieces(call["function"]["arguments"]):
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    else:
        yield {**base, "choices": [{"index": 0, "delta": first, "finish_reason": None}]}
        for piece in _pieces(message["content"]):
            delta = {"content": piece}
            yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
    if (request.get("stream_options") or {}).get("include_usage"):
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        yield {**base, "choices": [], "usage": usage}


def _completion(request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message, finish = _message(request, reply)
    return {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "scripted"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def _handler(server: ScriptedOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def _send_json(self, code: int, body: dict[str, Any], **headers: str) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            if self.path.endswith("/embeddings"):
                self._embeddings()
                return
            if not self.path.endswith("/chat/completions"):
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                return
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length))
            reply = server.next_reply(request)
            try:
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status != 200:
                    error = {"message": f"scripted HTTP {reply.status}", "type": "server_error"}
                    # Retry quickly: the client honours retry-after-ms.
                    self._send_json(reply.status, {"error": error}, retry_after_ms="10")
                    return
                if not request.get("stream"):
                    self._send_json(200, _completion(request, reply))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                for chunk in _chunks(request, reply):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its time-out): nothing to answer

        def _embeddings(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length))
            if server.embeddings_status != 200:
                error = {"message": "scripted embeddings outage", "type": "server_error"}
                self._send_json(server.embeddings_status, {"error": error}, retry_after_ms="10")
                return
            texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
            vectors = EMBEDDER.embed_documents([str(t) for t in texts])
            data = [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
            ]
            usage = {"prompt_tokens": 1, "total_tokens": 1}
            body = {"object": "list", "data": data, "model": request["model"], "usage": usage}
            self._send_json(200, body)

    return Handler


EMBEDDER = HashingEmbeddings(dims=64)
"""What the scripted `/embeddings` answers with (any fixed, real embedder would do)."""


@contextmanager
def serve(script: ScriptedOpenAI | None = None) -> Iterator[ScriptedOpenAI]:
    """Run the scripted server on a free local port for the duration of the block."""
    state = script or ScriptedOpenAI()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, name="scripted-openai", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
