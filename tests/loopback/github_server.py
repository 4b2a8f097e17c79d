"""A loopback GitHub: the REST endpoints PyGithub calls for the github forge, in memory.

Speaks real HTTP on 127.0.0.1 (an ephemeral port) so the forge runs through
the real PyGithub client with ``base_url``. Covers the repository, issues
(list with state/labels/pagination, create, get, edit), issue comments,
labels, pulls, git refs, contents, the collaborator permission, workflow
dispatches (``dispatches``; a token of ``action_tokens`` may do only that), an issue's
events (``closed``, ``reopened``, ``labeled``, ``unlabeled`` with their
``actor``) and, over GraphQL, the same events as ``timelineItems`` (read
forward from a cursor, or the newest), its body's edit history
(``userContentEdits`` with each ``editor``) and the body after each edit
(``nodes(ids:)`` of ``UserContentEdit.diff``, which on GitHub holds the whole
body; ``edit_texts="diff"`` makes it a patch instead). Methods named after what a person does (``merge``,
``close``, ``reopen``, ``comment``, ``check_box``, ``edit_body``,
``add_label``, ``remove_label``, each ``by`` someone) change the state and
leave the same traces as the web UI would.
``fail(method, path_regex, status, message)`` makes the next matching
requests fail, for error handling tests; ``chaos(rate, kinds=...)`` fails a
share of all requests with a status (429 with ``Retry-After``, 5xx), a dropped
connection, a lost answer (the request acted on) or a slow one. Every request
is logged.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from loopback.faults import Chaotic
from mlr_action.github.dashboard import set_checkbox

BOT = "github-actions[bot]"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user(login: str) -> dict | None:
    if not login:
        return None  # a deleted account: GitHub shows "ghost", the API gives no user
    return {"login": login, "id": abs(hash(login)) % 10**6, "type": "Bot" if login.endswith("[bot]") else "User",
            "url": f"https://example.invalid/users/{login}"}


def _patch(edits: list, i: int) -> str:
    """A unified diff of the ``i``-th edit against the one before (what a ``diff`` field could also mean)."""
    import difflib

    before = edits[i - 1][2].splitlines() if i else []
    return "\n".join(difflib.unified_diff(before, edits[i][2].splitlines(), lineterm=""))


@dataclass
class Failure:
    method: str
    path: re.Pattern
    status: int
    message: str
    times: int
    headers: dict = field(default_factory=dict)


class FakeGitHub(Chaotic):
    def __init__(self, *, owner: str = "octo", name: str = "sweep", token: str = "ghs_" + "t" * 36,
                 default_branch: str = "main", actions_may_open_prs: bool = True, edits_newest_first: bool = True,
                 edit_texts: str = "body", workflows: dict[str, set[str]] | None = None,
                 action_tokens: tuple[str, ...] = ()):
        self.owner, self.name, self.token = owner, name, token
        self.default_branch = default_branch
        self.actions_may_open_prs = actions_may_open_prs
        self.edits_newest_first = edits_newest_first  # the order of userContentEdits (GitHub does not document it)
        self.edit_texts = edit_texts  # what UserContentEdit.diff holds: "body" (as GitHub does) or "diff" (a patch)
        # workflow_dispatch: the workflow files that have the trigger, with the inputs each declares, and the
        # tokens that may only run workflows (a fine-grained token with "Actions: write": anything else is 403)
        self.workflows = {"mlr.yml": {"reason"}} if workflows is None else workflows
        self.action_tokens = set(action_tokens)
        self.dispatches: list[dict] = []  # {workflow, ref, inputs, token} of each accepted dispatch
        self.clock = itertools.count(1)  # edits and events get strictly increasing times, a second apart
        self.lock = threading.RLock()
        self.numbers = itertools.count(1)
        self.ids = itertools.count(1001)
        self.issues: dict[int, dict] = {}  # issues and pull requests share numbers, as on GitHub
        self.comments: dict[int, dict] = {}  # by id
        self.labels: dict[str, dict] = {}
        self.pulls: dict[int, dict] = {}
        self.files: dict[str, dict[str, str]] = {default_branch: {}}  # branch -> path -> text
        self.refs: dict[str, str] = {}  # branch -> sha
        self.permissions: dict[str, str] = {owner: "admin", BOT: "write"}
        self.failures: list[Failure] = []
        self.log: list[tuple[str, str]] = []
        self.bodies: list[str] = []  # every body and title written through the API
        self._chaos_options: dict[str, Any] = {}
        self._commit(default_branch)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    # -- lifecycle ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def repository(self) -> str:
        return f"{self.owner}/{self.name}"

    def env(self, **extra: str) -> dict[str, str]:
        return {"GITHUB_TOKEN": self.token, "GITHUB_REPOSITORY": self.repository, "GITHUB_API_URL": self.base_url, **extra}

    def __enter__(self) -> FakeGitHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- what people do ------------------------------------------------------------

    def issues_labelled(self, label: str, state: str = "all") -> list[dict]:
        return [i for i in self.issues.values() if "pull_request" not in i and label in self._label_names(i)
                and state in ("all", i["state"])]

    def comments_on(self, number: int) -> list[dict]:
        return [c for c in self.comments.values() if c["_issue"] == number]

    def close(self, number: int, by: str = "alice") -> None:
        with self.lock:
            self._set_state(self.issues[number], "closed", by)

    def reopen(self, number: int, by: str = "alice") -> None:
        with self.lock:
            self._set_state(self.issues[number], "open", by)

    def comment(self, number: int, body: str, by: str = "alice") -> int:
        with self.lock:
            return self._add_comment(number, body, by)["id"]

    def check_box(self, number: int, checked: bool = True, by: str = "alice") -> None:
        with self.lock:
            self.edit_body(number, set_checkbox(self.issues[number]["body"], checked), by=by)

    def edit_body(self, number: int, body: str, by: str = "alice") -> None:
        with self.lock:
            # The web UI hands bodies back with CRLF line ends once a person touched them.
            self._set_body(self.issues[number], body.replace("\r\n", "\n").replace("\n", "\r\n"), by)

    def add_label(self, number: int, name: str, by: str = "alice") -> None:
        with self.lock:
            self._label(self.issues[number], name, True, by)

    def remove_label(self, number: int, name: str, by: str = "alice") -> None:
        with self.lock:
            self._label(self.issues[number], name, False, by)

    def merge(self, number: int) -> None:
        with self.lock:
            pull = self.pulls[number]
            self.files[pull["base"]["ref"]].update(self.files[pull["head"]["ref"]])
            self._commit(pull["base"]["ref"])
            now = _now()
            pull.update(state="closed", merged=True, merged_at=now, closed_at=now)
            self._set_state(self.issues[number], "closed", self.owner)

    def fail(self, method: str, path: str, status: int, message: str = "boom", *, times: int = 1, headers: dict | None = None) -> None:
        self.failures.append(Failure(method, re.compile(path), status, message, times, headers or {}))

    def chaos(self, rate: float, *, seed: int = 0, kinds: tuple[str, ...] = ("429", "502", "drop", "lost", "slow"),
              retry_after: str = "1", slow_s: float = 1.0) -> None:
        """Fail about ``rate`` of all requests with one of ``kinds``: a status (a 429 says ``Retry-After``),
        ``drop`` (no answer, nothing done), ``lost`` (done, no answer) or ``slow`` (done, answered after ``slow_s``)."""
        self.set_chaos(rate, seed=seed, kinds=kinds)
        self._chaos_options = {"retry_after": retry_after, "slow_s": slow_s}

    def _chaos_fault(self) -> tuple[str, dict] | None:
        kind = self.draw_fault()
        if kind is None:
            return None
        return kind, ({"Retry-After": self._chaos_options["retry_after"]} if kind == "429" else {})

    # -- state helpers -------------------------------------------------------------

    def _commit(self, branch: str) -> None:
        digest = hashlib.sha1(json.dumps(self.files[branch], sort_keys=True).encode()).hexdigest()
        self.refs[branch] = digest

    @staticmethod
    def _label_names(issue: dict) -> list[str]:
        return [label["name"] for label in issue["labels"]]

    def _stamp(self) -> str:
        return datetime.fromtimestamp(1_700_000_000 + next(self.clock), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _event(self, issue: dict, event: str, actor: str, **extra: Any) -> None:
        eid = next(self.ids)
        issue["_events"].append({"id": eid, "event": event, "actor": _user(actor), "created_at": self._stamp(),
                                 "url": f"{self.base_url}/repos/{self.repository}/issues/events/{eid}", **extra})

    def _set_state(self, issue: dict, state: str, by: str) -> None:
        if issue["state"] == state:
            return
        closed = state == "closed"
        issue.update(state=state, closed_at=_now() if closed else None, _closed_by=by if closed else None)
        self._event(issue, "closed" if closed else "reopened", by)

    def _set_body(self, issue: dict, body: str, by: str) -> None:
        if issue["body"] != body:
            if not issue["_edits"]:  # once edited, GitHub lists the text as created as the oldest edit, by its author
                issue["_edits"].append((issue["_created"], issue["user"]["login"] if issue["user"] else "", issue["body"]))
            issue["body"] = body
            issue["_edits"].append((self._stamp(), by, body))

    @staticmethod
    def _cursor(event_id: int) -> str:
        return base64.b64encode(f"cursor:v2:{event_id}".encode()).decode()

    def timeline_cursor(self, number: int) -> str:
        """The cursor after the issue's newest event, as GitHub's ``endCursor`` gives it."""
        return self._cursor(self.issues[number]["_events"][-1]["id"])

    def _label(self, issue: dict, name: str, present: bool, by: str) -> None:
        if present == (name in self._label_names(issue)):
            return
        if present:
            issue["labels"].append(self._ensure_label(name))
        else:
            issue["labels"] = [l for l in issue["labels"] if l["name"] != name]
        self._event(issue, "labeled" if present else "unlabeled", by, label={"name": name, "color": "ededed"})

    def _ensure_label(self, name: str, color: str = "ededed", description: str = "") -> dict:
        if name not in self.labels:
            self.labels[name] = {"id": next(self.ids), "name": name, "color": color, "description": description,
                                 "default": False, "url": f"{self.base_url}/repos/{self.repository}/labels/{name}"}
        return self.labels[name]

    def _issue_json(self, issue: dict, *, full: bool = False) -> dict:
        data = {k: v for k, v in issue.items() if not k.startswith("_")}
        data["comments"] = len(self.comments_on(issue["number"]))
        if full:  # like GitHub, closed_by only comes with a single issue
            data["closed_by"] = _user(issue["_closed_by"]) if issue.get("_closed_by") else None
        return data

    def _add_comment(self, number: int, body: str, by: str) -> dict:
        cid = next(self.ids)
        api = f"{self.base_url}/repos/{self.repository}"
        comment = {"id": cid, "body": body, "user": _user(by), "created_at": _now(), "updated_at": _now(),
                   "url": f"{api}/issues/comments/{cid}", "html_url": f"https://example.invalid/c/{cid}",
                   "issue_url": f"{api}/issues/{number}", "_issue": number}
        self.comments[cid] = comment
        return comment

    def _new_issue(self, *, title: str, body: str, labels: list[str], by: str, pull: bool = False) -> dict:
        number = next(self.numbers)
        api = f"{self.base_url}/repos/{self.repository}"
        issue = {"id": next(self.ids), "number": number, "title": title, "body": body, "state": "open",
                 "state_reason": None, "labels": [self._ensure_label(n) for n in labels], "user": _user(by),
                 "url": f"{api}/issues/{number}", "html_url": f"https://example.invalid/{self.repository}/issues/{number}",
                 "comments_url": f"{api}/issues/{number}/comments", "created_at": _now(), "updated_at": _now(),
                 "closed_at": None, "locked": False, "_closed_by": None, "_events": [], "_edits": [],
                 "_created": self._stamp()}
        if pull:
            issue["pull_request"] = {"url": f"{api}/pulls/{number}"}
        self.issues[number] = issue
        for name in labels:
            self._event(issue, "labeled", by, label={"name": name, "color": "ededed"})
        return issue

    # -- HTTP ------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # headers and body leave in one packet: no delayed-ACK stalls
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, data: Any = None, headers: dict | None = None) -> None:
                payload = b"" if data is None else json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else {}
                url = urlsplit(self.path)
                path, query = url.path, {k: v[-1] for k, v in parse_qs(url.query).items()}
                with fake.lock:
                    fake.log.append((method, path))
                    auth = self.headers.get("Authorization", "")
                    scheme, _, presented = auth.partition(" ")
                    if presented in fake.action_tokens and scheme in ("token", "Bearer"):
                        if not (method == "POST" and re.fullmatch(r"/repos/[^/]+/[^/]+/actions/workflows/[^/]+/dispatches", path)):
                            return self._reply(403, {"message": "Resource not accessible by personal access token"})
                        body["_token"] = presented
                    elif auth not in (f"token {fake.token}", f"Bearer {fake.token}"):
                        return self._reply(401, {"message": "Bad credentials"})
                    for failure in fake.failures:
                        if failure.times > 0 and failure.method == method and failure.path.search(path):
                            failure.times -= 1
                            return self._reply(failure.status, {"message": failure.message}, failure.headers)
                    chaos = fake._chaos_fault()
                    if chaos is not None and chaos[0].isdigit():
                        return self._reply(int(chaos[0]), {"message": f"injected {chaos[0]}"}, chaos[1])
                    if chaos is not None and chaos[0] == "drop":  # nothing done, no answer
                        return self._drop()
                    try:
                        status, data, headers = fake.route(method, path, query, body)
                    except KeyError:
                        status, data, headers = 404, {"message": "Not Found"}, {}
                    except Exception as exc:  # a bug in the fake: say so loudly, as a 500
                        traceback.print_exc()
                        status, data, headers = 500, {"message": f"fake GitHub crashed: {exc!r}"}, {}
                if chaos is not None and chaos[0] == "lost":  # done, but the answer never arrives
                    return self._drop()
                if chaos is not None and chaos[0] == "slow":  # done, answered after the client gave up
                    time.sleep(fake._chaos_options["slow_s"])
                try:
                    self._reply(status, data, headers)
                except OSError:  # the client is gone
                    self.close_connection = True

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        return Handler

    def _page(self, items: list[dict], query: dict, path: str) -> tuple[int, Any, dict]:
        per_page, page = int(query.get("per_page", 30)), int(query.get("page", 1))
        chunk = items[(page - 1) * per_page: page * per_page]
        last = max(1, -(-len(items) // per_page))
        rest = "&".join(f"{k}={v}" for k, v in query.items() if k != "page")
        links = {"next": page + 1 if page < last else None, "last": last if page < last else None,
                 "prev": page - 1 if page > 1 else None, "first": 1 if page > 1 else None}
        headers = {"Link": ", ".join(f'<{self.base_url}{path}?{rest}&page={n}>; rel="{rel}"'
                                     for rel, n in links.items() if n is not None)} if last > 1 else {}
        return 200, chunk, headers

    def route(self, method: str, path: str, query: dict, body: dict) -> tuple[int, Any, dict]:
        if path == "/graphql" and method == "POST":
            return self._graphql(body["query"], body.get("variables") or {})
        prefix = f"/repos/{self.repository}"
        if not path.startswith(prefix):
            return 404, {"message": "Not Found"}, {}
        rest = path[len(prefix):]
        api = self.base_url + prefix
        ok = lambda data, status=200: (status, data, {})  # noqa: E731
        if m := re.fullmatch(r"/actions/workflows/([^/]+)/dispatches", rest):
            return self._dispatch(m.group(1), body) if method == "POST" else (404, {"message": "Not Found"}, {})
        if rest == "" and method == "GET":
            return ok({"id": 1, "name": self.name, "full_name": self.repository, "owner": _user(self.owner),
                       "default_branch": self.default_branch, "url": api, "private": False,
                       "html_url": f"https://example.invalid/{self.repository}"})
        if rest == "/issues" and method == "GET":
            state, wanted = query.get("state", "open"), [n for n in query.get("labels", "").split(",") if n]
            items = [i for i in self.issues.values() if state in ("all", i["state"])
                     and all(n in self._label_names(i) for n in wanted)]
            items.sort(key=lambda i: i["number"], reverse=query.get("direction", "desc") == "desc")
            return self._page([self._issue_json(i) for i in items], query, path)
        if rest == "/issues" and method == "POST":
            self.bodies += [body.get("title", ""), body.get("body") or ""]
            issue = self._new_issue(title=body["title"], body=body.get("body") or "", labels=body.get("labels", []), by=BOT)
            return ok(self._issue_json(issue, full=True), 201)
        if m := re.fullmatch(r"/issues/(\d+)", rest):
            issue = self.issues[int(m.group(1))]
            if method == "PATCH":
                self.bodies += [body.get("title") or "", body.get("body") or ""]
                for key in ("title", "state_reason"):
                    if key in body:
                        issue[key] = body[key]
                if "body" in body:
                    self._set_body(issue, body["body"] or "", BOT)
                if "state" in body:
                    self._set_state(issue, body["state"], BOT)
                for name in {*self._label_names(issue), *body.get("labels", [])} if "labels" in body else ():
                    self._label(issue, name, name in body["labels"], BOT)
            return ok(self._issue_json(issue, full=True))
        if m := re.fullmatch(r"/issues/(\d+)/comments", rest):
            number = int(m.group(1))
            if method == "POST":
                self.bodies.append(body["body"])
                return ok({k: v for k, v in self._add_comment(number, body["body"], BOT).items() if k[0] != "_"}, 201)
            items = sorted(self.comments_on(number), key=lambda c: c["id"])
            return self._page([{k: v for k, v in c.items() if k[0] != "_"} for c in items], query, path)
        if m := re.fullmatch(r"/issues/comments/(\d+)", rest):
            comment = self.comments[int(m.group(1))]
            if method == "PATCH":
                self.bodies.append(body["body"])
                comment.update(body=body["body"], updated_at=_now())
            return ok({k: v for k, v in comment.items() if k[0] != "_"})
        if m := re.fullmatch(r"/issues/(\d+)/labels", rest):
            issue = self.issues[int(m.group(1))]
            for name in body if isinstance(body, list) else body.get("labels", []):  # GitHub takes both shapes
                self._label(issue, name, True, BOT)
            return ok(issue["labels"])
        if m := re.fullmatch(r"/issues/(\d+)/labels/(.+)", rest):
            issue, name = self.issues[int(m.group(1))], unquote(m.group(2))
            if name not in self._label_names(issue):
                return 404, {"message": "Label does not exist"}, {}
            self._label(issue, name, False, BOT)
            return ok(issue["labels"])
        if m := re.fullmatch(r"/issues/(\d+)/events", rest):
            return self._page(self.issues[int(m.group(1))]["_events"], query, path)
        if m := re.fullmatch(r"/labels/(.+)", rest):
            return ok(self.labels[unquote(m.group(1))])
        if rest == "/labels" and method == "POST":
            if body["name"] in self.labels:
                return 422, {"message": "Validation Failed", "errors": [{"code": "already_exists"}]}, {}
            return ok(self._ensure_label(body["name"], body.get("color", "ededed"), body.get("description", "")), 201)
        if m := re.fullmatch(r"/collaborators/([^/]+)/permission", rest):
            login = unquote(m.group(1))
            permission = self.permissions.get(login, "read")
            return ok({"permission": permission, "role_name": permission, "user": _user(login)})
        if m := re.fullmatch(r"/git/ref/heads/(.+)", rest):
            branch = unquote(m.group(1))
            return ok({"ref": f"refs/heads/{branch}", "url": f"{api}/git/refs/heads/{branch}",
                       "object": {"sha": self.refs[branch], "type": "commit", "url": f"{api}/git/commits/{self.refs[branch]}"}})
        if rest == "/git/refs" and method == "POST":
            branch = body["ref"].removeprefix("refs/heads/")
            if branch in self.refs:
                return 422, {"message": "Reference already exists"}, {}
            source = next(b for b, sha in self.refs.items() if sha == body["sha"])
            self.files[branch] = dict(self.files[source])
            self.refs[branch] = body["sha"]
            return ok({"ref": body["ref"], "url": f"{api}/git/refs/heads/{branch}",
                       "object": {"sha": body["sha"], "type": "commit", "url": ""}}, 201)
        if m := re.fullmatch(r"/contents/(.+)", rest):
            file_path = unquote(m.group(1))
            branch = query.get("ref") or body.get("branch") or self.default_branch
            files = self.files[branch]
            if method == "PUT":
                if file_path in files and body.get("sha") is None:
                    return 422, {"message": "Invalid request.\n\n\"sha\" wasn't supplied."}, {}
                files[file_path] = base64.b64decode(body["content"]).decode()
                self._commit(branch)
                return ok({"content": self._content(file_path, files[file_path], api),
                           "commit": {"sha": self.refs[branch], "url": f"{api}/git/commits/{self.refs[branch]}"}}, 201)
            return ok(self._content(file_path, files[file_path], api))
        if rest == "/pulls" and method == "GET":
            state, head = query.get("state", "open"), query.get("head")
            items = [p for p in self.pulls.values() if state in ("all", p["state"])
                     and (head is None or head == f"{self.owner}:{p['head']['ref']}")]
            return self._page(items, query, path)
        if rest == "/pulls" and method == "POST":
            if not self.actions_may_open_prs:
                return 403, {"message": "GitHub Actions is not permitted to create or approve pull requests.",
                             "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"}, {}
            if any(p["head"]["ref"] == body["head"] and p["state"] == "open" for p in self.pulls.values()):
                return 422, {"message": "Validation Failed",
                             "errors": [{"message": f"A pull request already exists for {self.owner}:{body['head']}."}]}, {}
            self.bodies += [body.get("title", ""), body.get("body") or ""]
            issue = self._new_issue(title=body["title"], body=body.get("body") or "", labels=[], by=BOT, pull=True)
            pull = {"id": issue["id"], "number": issue["number"], "title": body["title"], "body": body.get("body"),
                    "state": "open", "merged": False, "merged_at": None, "closed_at": None, "user": _user(BOT),
                    "url": f"{api}/pulls/{issue['number']}", "html_url": f"https://example.invalid/pull/{issue['number']}",
                    "head": {"ref": body["head"], "sha": self.refs[body["head"]], "label": f"{self.owner}:{body['head']}"},
                    "base": {"ref": body["base"], "sha": self.refs[body["base"]], "label": f"{self.owner}:{body['base']}"}}
            self.pulls[issue["number"]] = pull
            return ok(pull, 201)
        return 404, {"message": "Not Found"}, {}

    def _dispatch(self, workflow: str, body: dict) -> tuple[int, Any, dict]:
        """POST .../actions/workflows/{workflow}/dispatches: 204, as GitHub answers a run it queued."""
        if workflow not in self.workflows:
            return 404, {"message": "Not Found"}, {}
        ref = str(body.get("ref") or "")
        if ref.removeprefix("refs/heads/") not in {self.default_branch, *self.refs}:
            return 422, {"message": f"No ref found for: {ref}"}, {}
        inputs = body.get("inputs") or {}
        unexpected = sorted(set(inputs) - self.workflows[workflow])
        if unexpected:
            return 422, {"message": f"Unexpected inputs provided: {unexpected}"}, {}
        self.dispatches.append({"workflow": workflow, "ref": ref, "inputs": inputs, "token": body.get("_token")})
        return 204, None, {}

    def _graphql(self, query: str, variables: dict) -> tuple[int, Any, dict]:
        """Only what the forge asks: an issue's ``userContentEdits`` (under any aliases, by first or last) and
        ``timelineItems`` (first after a cursor, or last), and ``nodes(ids:)`` of its edits."""
        if re.search(r"\bnodes\s*\(\s*ids\s*:", query):
            texts = {f"UCE_{number}_{i}": body if self.edit_texts == "body" else _patch(issue["_edits"], i)
                     for number, issue in self.issues.items() for i, (_, _, body) in enumerate(issue["_edits"])}
            return 200, {"data": {"nodes": [{"id": i, "diff": texts[i]} if i in texts else None
                                            for i in variables.get("ids") or []]}}, {}
        if (variables.get("owner"), variables.get("name")) != (self.owner, self.name):
            return 200, {"data": {"repository": None}, "errors": [{"type": "NOT_FOUND", "message": "no repository"}]}, {}
        issue = self.issues.get(int(variables["number"]))
        if issue is None:
            return 200, {"data": {"repository": {"issue": None}},
                         "errors": [{"type": "NOT_FOUND", "message": "no issue"}]}, {}
        edits = [{"id": f"UCE_{issue['number']}_{i}", "editedAt": at,
                  "editor": None if not who else {"__typename": "Bot" if who.endswith("[bot]") else "User",
                                                  "login": who.removesuffix("[bot]")}}  # GraphQL drops "[bot]"
                 for i, (at, who, _) in enumerate(issue["_edits"])]
        if self.edits_newest_first:
            edits.reverse()
        found: dict[str, Any] = {}
        for alias, end, count in re.findall(r"(\w+)\s*:\s*userContentEdits\(\s*(first|last)\s*:\s*(\d+)\s*\)", query):
            chunk = edits[: int(count)] if end == "first" else edits[-int(count):]
            found[alias] = {"totalCount": len(edits), "nodes": chunk}
        for alias, end, count, args in re.findall(r"(\w+)\s*:\s*timelineItems\(\s*(first|last)\s*:\s*(\d+)([^)]*)\)", query):
            timeline = self._timeline(issue, end, int(count), variables.get("after") if "$after" in args else None)
            if timeline is None:
                return 200, {"data": None, "errors": [{"type": "INVALID_CURSOR_ARGUMENTS",
                                                       "message": "`after` does not appear to be a valid cursor."}]}, {}
            found[alias] = timeline
        return 200, {"data": {"repository": {"issue": found}}}, {}

    def _timeline(self, issue: dict, end: str, count: int, after: str | None) -> dict | None:
        events = issue["_events"]
        start = 0
        if after is not None:
            try:
                event_id = int(base64.b64decode(after).decode().removeprefix("cursor:v2:"))
            except ValueError:
                return None
            start = next((i + 1 for i, e in enumerate(events) if e["id"] == event_id), None)
            if start is None:
                return None
        chunk = events[start:start + count] if end == "first" else events[-count:]
        kinds = {"closed": "ClosedEvent", "reopened": "ReopenedEvent", "labeled": "LabeledEvent", "unlabeled": "UnlabeledEvent"}
        nodes = []
        for event in chunk:
            actor = event["actor"]
            node = {"__typename": kinds[event["event"]],
                    "actor": actor and {"__typename": actor["type"], "login": actor["login"].removesuffix("[bot]")}}
            if "label" in event:
                node["label"] = {"name": event["label"]["name"]}
            nodes.append(node)
        more = end == "first" and start + count < len(events)
        return {"pageInfo": {"endCursor": self._cursor(chunk[-1]["id"]) if chunk else None, "hasNextPage": more},
                "nodes": nodes}

    @staticmethod
    def _content(path: str, text: str, api: str) -> dict:
        sha = hashlib.sha1(text.encode()).hexdigest()
        return {"type": "file", "encoding": "base64", "name": path.rsplit("/", 1)[-1], "path": path, "sha": sha,
                "size": len(text), "content": base64.b64encode(text.encode()).decode(), "url": f"{api}/contents/{path}"}
