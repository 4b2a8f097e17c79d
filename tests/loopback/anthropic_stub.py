"""A loopback stand-in of the Anthropic Messages API for the real ``anthropic`` client.

``StubAnthropic`` serves ``POST /v1/messages`` on 127.0.0.1 (port 0) from a
thread. Each request is recorded (``requests``: the JSON bodies) and answered
with the next scripted answer, or by ``responder(body)`` when the script is
empty. ``chaos`` injects faults (429, 5xx, dropped connections, lost and slow
answers); ``billed`` holds the usage of every answer produced, read or not. The builders below make the answers: structured output, refusals,
web search turns (``server_tool_use`` + ``web_search_tool_result`` blocks,
``pause_turn``), search errors and HTTP errors with ``retry-after``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from loopback.faults import Chaotic

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


class StubAnthropic(Chaotic):
    def __init__(self, responder: Callable[[dict], Answer] | None = None):
        self.script: deque[Answer] = deque()
        self.requests: list[dict] = []
        self.responder = responder
        self._lock = threading.Lock()
        self.chaos_options: dict[str, Any] = {}
        self.billed: list[dict] = []  # the usage of every answer produced (what the API would bill)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                if self.path.split("?")[0] != "/v1/messages":
                    return self._send(404, {}, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
                body = json.loads(raw or b"{}")
                fault = stub._chaos_fault()
                if fault is not None and fault[0].isdigit():  # refused before any work: not billed
                    return self._send(*error(int(fault[0]), "rate_limit_error" if fault[0] == "429" else "api_error",
                                             f"injected {fault[0]}", fault[1]))
                kind = fault[0] if fault else None
                if kind == "drop":  # the connection dies before the request is processed
                    return self._drop()
                answer = stub._answer(body)
                stub._bill(answer)
                if kind == "lost":  # processed (and billed), the answer never arrives
                    return self._drop()
                if kind == "slow":  # processed (and billed), answered after the client gave up
                    time.sleep(stub.chaos_options["slow_s"])
                self._send(*answer)

            def _drop(self):
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def _send(self, status, headers, body):
                delay = float(headers.pop("x-stub-delay", 0))
                if delay:  # a slow server: the client's timeout fires first
                    time.sleep(delay)
                data = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up waiting (a slow answer): nothing to tell it
                    self.close_connection = True

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

    def chaos(self, rate: float, *, seed: int = 0, kinds: tuple[str, ...] = ("429", "529", "drop", "lost", "slow"),
              retry_after: str = "0.01", slow_s: float = 1.0) -> None:
        """Fail about ``rate`` of all requests with one of ``kinds``: a status (refused, not billed; a 429 says
        ``retry-after``), ``drop`` (not processed), ``lost`` or ``slow`` (processed and billed, the answer lost
        or later than the client waits)."""
        self.set_chaos(rate, seed=seed, kinds=kinds)
        self.chaos_options = {"retry_after": retry_after, "slow_s": slow_s}

    def _chaos_fault(self) -> tuple[str, dict] | None:
        kind = self.draw_fault()
        if kind is None:
            return None
        if kind == "429":
            return kind, {"retry-after": self.chaos_options["retry_after"]}
        return kind, ({"retry-after-ms": "1"} if kind.isdigit() else {})  # as the API says with an overload

    def _bill(self, answer: Answer) -> None:
        """Record the usage of an answer the server produced, whether or not the client reads it."""
        status, _, body = answer
        if status == 200 and isinstance(body, dict) and isinstance(body.get("usage"), dict):
            with self._lock:
                self.billed.append(dict(body["usage"]))

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
