"""A loopback stand-in for the REST endpoints of issue comments (list, create, edit), with pagination."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class CommentServer:
    """``comments[number]`` is a list of comment dicts; ``requests`` records (method, path, auth)."""

    def __init__(self, *, page_size: int = 2, token: str = "t0ken", deny: bool = False):
        self.comments: dict[int, list[dict]] = {}
        self.requests: list[tuple[str, str, str]] = []
        self.page_size, self.token, self.deny = page_size, token, deny
        self._next_id = 100
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body=None, headers=None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _auth_ok(self) -> bool:
                server.requests.append((self.command, self.path, self.headers.get("Authorization", "")))
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    self._send(401, {"message": "Bad credentials"})
                    return False
                return True

            def do_GET(self):
                if not self._auth_ok():
                    return
                m = re.match(r"^/repos/([^/]+/[^/]+)/issues/(\d+)/comments\?(.*)$", self.path)
                if not m:
                    return self._send(404, {"message": "Not Found"})
                page = int(dict(p.split("=") for p in m.group(3).split("&")).get("page", 1))
                items = server.comments.get(int(m.group(2)), [])
                start = (page - 1) * server.page_size
                headers = {}
                if start + server.page_size < len(items):
                    nxt = f"http://{self.headers['Host']}/repos/{m.group(1)}/issues/{m.group(2)}/comments?per_page=100&page={page + 1}"
                    headers["Link"] = f'<{nxt}>; rel="next"'
                self._send(200, items[start:start + server.page_size], headers)

            def _body(self) -> dict:
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")

            def do_POST(self):
                if not self._auth_ok():
                    return
                m = re.match(r"^/repos/[^/]+/[^/]+/issues/(\d+)/comments$", self.path)
                if not m:
                    return self._send(404, {"message": "Not Found"})
                if server.deny:
                    return self._send(403, {"message": "Resource not accessible by integration"})
                comment = server.add(int(m.group(1)), self._body()["body"], bot=True)
                self._send(201, comment)

            def do_PATCH(self):
                if not self._auth_ok():
                    return
                m = re.match(r"^/repos/[^/]+/[^/]+/issues/comments/(\d+)$", self.path)
                if not m:
                    return self._send(404, {"message": "Not Found"})
                for comments in server.comments.values():
                    for comment in comments:
                        if comment["id"] == int(m.group(1)):
                            comment["body"] = self._body()["body"]
                            return self._send(200, comment)
                self._send(404, {"message": "Not Found"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def add(self, number: int, body: str, *, bot: bool) -> dict:
        self._next_id += 1
        user = {"login": "github-actions[bot]", "type": "Bot"} if bot else {"login": "someone", "type": "User"}
        comment = {"id": self._next_id, "body": body, "user": user}
        self.comments.setdefault(number, []).append(comment)
        return comment

    def __enter__(self) -> "CommentServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
