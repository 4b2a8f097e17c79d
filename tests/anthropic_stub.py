"""A loopback stand-in of the Anthropic Messages API for the real ``anthropic`` client.

``StubAnthropic`` serves ``POST /v1/messages`` on 127.0.0.1 (port 0) from a
thread. Each request is recorded (``requests``: the JSON bodies) and answered
with the next scripted answer, or by ``responder(body)`` when the script is
empty. The builders below make the answers: structured output, refusals,
web search turns (``server_tool_use`` + ``web_search_tool_result`` blocks,
``pause_turn``), search errors and HTTP errors with ``retry-after``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

Answer = tuple[int, dict[str, str], Any]  # status, headers, body (a dict, or raw bytes/str)

USAGE = {"input_tokens": 1000, "output_tokens": 100}


def message(content: list[dict], *, stop_reason: str = "end_turn", usage: dict | None = None, model: str = "stub") -> Answer:
    body = {
        "id": "msg_stub", "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop_reason, "stop_sequence": None, "usage": dict(USAGE if usage is None else usage),
    }
    return 200, {}, body


def structured(answer: Any, **kw) -> Answer:
    """A structured-output answer: ``answer`` as JSON text (a str is sent as is)."""
    text = answer if isinstance(answer, str) else json.dumps(answer)
    return message([{"type": "text", "text": text}], **kw)


def refusal() -> Answer:
    return message([{"type": "text", "text": "I can't help with that."}], stop_reason="refusal")


def search_turn(results: list[tuple[str, str]], text: str = "", *, stop_reason: str = "end_turn", query: str = "recipes") -> Answer:
    """One research response: a search, its results, then ``text``."""
    content = [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": query}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
            {"type": "web_search_result", "url": url, "title": title, "encrypted_content": "enc", "page_age": None}
            for title, url in results
        ]},
    ]
    if text:
        content.append({"type": "text", "text": text})
    usage = {**USAGE, "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0}}
    return message(content, stop_reason=stop_reason, usage=usage)


def search_error(code: str = "unavailable") -> Answer:
    content = [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
         "content": {"type": "web_search_tool_result_error", "error_code": code}},
    ]
    return message(content)


def error(status: int, kind: str = "api_error", text: str = "error", headers: dict | None = None) -> Answer:
    return status, dict(headers or {}), {"type": "error", "error": {"type": kind, "message": text}}


def slow(answer: Answer, seconds: float) -> Answer:
    status, headers, body = answer
    return status, {**headers, "x-stub-delay": str(seconds)}, body


def overloaded() -> Answer:
    return error(529, "overloaded_error", "Overloaded", {"retry-after-ms": "1"})


def rate_limited(retry_after: str = "0.01") -> Answer:
    return error(429, "rate_limit_error", "rate limited", {"retry-after": retry_after})


class StubAnthropic:
    def __init__(self, responder: Callable[[dict], Answer] | None = None):
        self.script: deque[Answer] = deque()
        self.requests: list[dict] = []
        self.responder = responder
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                if self.path.split("?")[0] != "/v1/messages":
                    return self._send(404, {}, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
                body = json.loads(raw or b"{}")
                self._send(*stub._answer(body))

            def _send(self, status, headers, body):
                delay = float(headers.pop("x-stub-delay", 0))
                if delay:  # a slow server: the client's timeout fires first
                    time.sleep(delay)
                data = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def _answer(self, body: dict) -> Answer:
        with self._lock:
            self.requests.append(body)
            if self.script:
                return self.script.popleft()
        if self.responder is not None:
            return self.responder(body)
        return error(500, "api_error", "the stub has no scripted answer left")

    def push(self, *answers: Answer) -> StubAnthropic:
        self.script.extend(answers)
        return self

    def __enter__(self) -> StubAnthropic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def user_text(body: dict) -> str:
    """The text of a request's first user message."""
    content = body["messages"][0]["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


def is_research(body: dict) -> bool:
    return any(t.get("name") == "web_search" for t in body.get("tools") or [])
