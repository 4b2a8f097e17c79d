"""A loopback stand-in for the Hugging Face Jobs API, spoken to through the real ``HfApi``.

It speaks the endpoints huggingface_hub 2.x calls, with the paths and JSON
fields of ``hf_api.py`` and ``_jobs_api.py``:

- ``GET /api/whoami-v2``: the token's user.
- ``GET /api/jobs/hardware``: the hardware catalog (``unitCostUSD`` per ``unitLabel``, ``ram``, and an
  ``accelerator`` with its total ``vram`` and ``quantity``, as ``JobHardwareInfo`` reads them).
- ``POST /api/jobs/{ns}``: create a job from the JSON job spec (``command``,
  ``environment``, ``secrets``, ``flavor``, ``timeoutSeconds``, ``labels``,
  ``dockerImage``); answers with the job.
- ``GET /api/jobs/{ns}?label=k=v&stage=S``: list, filtered by every label and
  stage given, paginated with a ``Link: <...>; rel="next"`` header.
- ``GET /api/jobs/{ns}/{id}``, ``POST /api/jobs/{ns}/{id}/cancel``.
- ``GET /api/jobs/{ns}/{id}/logs``: the SSE log stream
  (``data: {"timestamp": ..., "data": line}``), ``?tail=N``; a finished job's
  replay ends with the response, as the real service ends it. A replay can be
  made to pause, break off, or keep the stream open with keep-alives halfway (:meth:`FakeHub.stall_logs`).
- ``GET /api/models/{repo}``, ``GET /api/datasets/{repo}``, ``DELETE /api/repos/delete``.
- Hub repos (create, info, tree, preupload, commit, resolve): see tests/loopback/hf_repos.py.

Nothing runs by itself unless ``autorun`` is set: :meth:`FakeHub.run` executes a
job's command for real (``bash``, with a ``uv`` shim on ``PATH`` that runs the
current Python, tests/fake_uv.py), so a test sees exactly what the job would.
Each of the job's volumes (a repo at a revision, under a ``path``) is written
to a temporary folder made read-only, and the volume's mount path in the
command stands for that folder (a test cannot mount at ``/mlr/code``); a
volume that cannot be mounted fails the job, as on HF; :meth:`FakeHub.advance`
moves a job by hand (a job it completes ends its log with its launcher's last
line, as the real launcher prints it). Faults are injected per request (:meth:`FakeHub.fail`,
:meth:`FakeHub.chaos`, :meth:`FakeHub.hold`, :meth:`FakeHub.stall_logs`). Job
durations come from ``clock``, as ``JobDurations`` reports them: seconds
scheduling (creation to start), running, and in total. Every request is
logged in ``requests`` (method, path) and its headers in ``request_headers``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from fake_uv import make_uv
from loopback.faults import Chaotic
from loopback.hf_repos import FakeRepos, writable

TERMINAL = {"COMPLETED", "ERROR", "CANCELED", "DELETED"}
HARDWARE = [
    # name, per-minute USD (the real catalog's unit), RAM, accelerator (model, quantity, total VRAM) or None
    ("cpu-basic", 0.0001667, "16 GB", None),
    ("cpu-upgrade", 0.0005, "32 GB", None),
    ("t4-small", 0.0066667, "15 GB", ("T4", 1, "16 GB")),
    ("t4-medium", 0.01, "30 GB", ("T4", 1, "16 GB")),
    ("a10g-small", 0.0166667, "15 GB", ("A10G", 1, "24 GB")),
    ("a10g-large", 0.025, "46 GB", ("A10G", 1, "24 GB")),
    ("a10g-largex2", 0.05, "92 GB", ("A10G", 2, "48 GB")),
    ("l40sx1", 0.03, "62 GB", ("L40S", 1, "48 GB")),
    ("a100-large", 0.0416667, "142 GB", ("A100", 1, "80 GB")),
]
FAULT_KINDS = ("429", "500", "503", "drop", "lost")
LAST_LINE = "mlr-launcher: exit="  # what the job's launcher prints last, with the script's exit status


def _prints_last_line(job: FakeJob) -> bool:
    words = [str(w) for w in job.spec.get("command") or []]
    return "mlr-job" in words and any(LAST_LINE in w for w in words[:words.index("mlr-job")])


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class FakeJob:
    id: str
    namespace: str
    spec: dict[str, Any]
    created_at: float
    stage: str = "SCHEDULING"
    message: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    running_secs: float | None = None  # fixed by advance/run; else computed from the clock
    logs: list[tuple[str, str]] = field(default_factory=list)  # (real-time ISO stamp, line)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.spec.get("labels") or {})

    @property
    def environment(self) -> dict[str, str]:
        return dict(self.spec.get("environment") or {})

    @property
    def secrets(self) -> dict[str, str]:
        return dict(self.spec.get("secrets") or {})


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    kind: str  # a status code ("429", "503", ...), "drop", "lost", "hang" or "hold"
    times: int | None = 1  # None: every matching request
    headers: dict[str, str] = field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0  # for "hang"
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class LogStall:
    """A log replay that pauses (``pause``), breaks off (``drop``) or sends a ``: keep-alive`` comment every
    ``interval`` seconds (``trickle``, the stream open the while) after ``after`` lines."""

    job_id: str | None  # None: any job
    after: int
    seconds: float
    kind: str  # "pause", "drop" or "trickle"
    times: int | None  # None: every replay
    interval: float = 0.1  # for "trickle"
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    split: int | None = None  # a byte offset where the body pauses or breaks off
    stall: LogStall | None = None


def _json(status: int, payload: Any, **headers: str) -> Reply:
    return Reply(status, json.dumps(payload).encode(), dict(headers))


def _reply(status: int, payload: Any, *, raw: bool = False, **headers: str) -> Reply:
    if raw:
        return Reply(status, payload, dict(headers), content_type="application/octet-stream")
    return _json(status, payload, **headers)


def _error(status: int, message: str, **headers: str) -> Reply:
    return _json(status, {"error": message}, **{"X-Error-Message": message, **headers})


class FakeHub(Chaotic):
    """The state behind the server: users, jobs, repos, faults. Thread-safe."""

    def __init__(self, *, token: str, user: str = "me", orgs: tuple[str, ...] = ("my-org",),
                 clock: Callable[[], float] = time.time, page_size: int = 100) -> None:
        self.token, self.user = token, user
        self.namespaces = {user, *orgs}
        self.clock = clock
        self.page_size = page_size
        self.jobs: dict[str, FakeJob] = {}
        self.repos: set[tuple[str, str]] = set()  # (type, repo_id)
        self.requests: list[tuple[str, str]] = []
        self.request_headers: list[dict[str, str]] = []
        self.faults: list[Fault] = []
        self.log_stalls: list[LogStall] = []
        self.hardware: list[tuple[str, float, str, tuple[str, int, str] | None]] | None = list(HARDWARE)
        self.autorun: float | None = None  # running_secs to charge; None: jobs wait for run()/advance()
        self.url = ""
        self._chaos_options: dict[str, Any] = {"retry_after": "0", "hang_s": 1.0}
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._shim = make_uv(Path(tempfile.mkdtemp(prefix="fake-uv-")))
        self.git = FakeRepos(namespaces=self.namespaces, reply=_reply, error=_error)

    # -- test controls -------------------------------------------------------

    def fail(self, method: str, path: str, kind: str | int, *, times: int | None = 1, seconds: float = 0.0,
             message: str = "", **headers: str) -> Fault:
        """Make the next ``times`` requests matching ``method`` and the ``path`` regex fail with ``kind``."""
        fault = Fault(method.upper(), re.compile(path), str(kind), times, dict(headers), message, seconds)
        with self._lock:
            self.faults.append(fault)
        return fault

    def stall_logs(self, *, after: int, job_id: str | None = None, seconds: float = 60.0, kind: str = "pause",
                   times: int | None = 1, interval: float = 0.1) -> LogStall:
        """Make the next ``times`` log replays (of ``job_id``, or any job) stop after ``after`` lines: ``pause``
        sends nothing more for ``seconds`` (or until released) and then the rest; ``drop`` closes the connection;
        ``trickle`` sends a keep-alive every ``interval`` for ``seconds`` (or until released), then the rest (a
        stream the service keeps open, as for a job whose build failed)."""
        stall = LogStall(job_id, after, seconds, kind, times, interval)
        with self._lock:
            self.log_stalls.append(stall)
        return stall

    def hold(self, method: str, path: str, *, after: bool = True) -> Fault:
        """Block the next matching request (after acting on it, when ``after``) until released; then drop it."""
        return self.fail(method, path, "hold" if after else "hold-before")

    def chaos(self, rate: float, *, seed: int = 0, kinds: tuple[str, ...] = FAULT_KINDS, retry_after: str = "0",
              hang_s: float = 1.0) -> None:
        """Fail about ``rate`` of all API requests with a random fault of ``kinds``: a 429 says ``Retry-After:
        retry_after``; ``hang`` answers after ``hang_s`` (set it beyond the client's timeout)."""
        self.set_chaos(rate, seed=seed, kinds=kinds)
        self._chaos_options = {"retry_after": retry_after, "hang_s": hang_s}

    def advance(self, job_id: str, stage: str, *, logs: str | None = None, message: str | None = None,
                running_secs: float | None = None, last_line: bool = True) -> FakeJob:
        """Move a job by hand. A job that COMPLETED ran its launcher to the end: when the launcher prints
        ``mlr-launcher: exit=<status>`` last (mlr_action.job.runner), its log ends with that line, as on HF; pass
        ``last_line=False`` for a log the service cut before it."""
        if stage == "COMPLETED" and last_line and _prints_last_line(self.jobs[job_id]):
            lines = (logs or "").splitlines()
            logs = "\n".join(lines if lines[-1:] == [f"{LAST_LINE}0"] else [*lines, f"{LAST_LINE}0"])
        with self._lock:
            job = self.jobs[job_id]
            now = self.clock()
            if job.started_at is None and stage != "SCHEDULING":
                job.started_at = now
            if stage in TERMINAL and job.finished_at is None:
                job.finished_at = now
            job.stage = stage
            if message is not None:
                job.message = message
            if running_secs is not None:
                job.running_secs = running_secs
            for line in (logs or "").splitlines():
                job.logs.append((_iso(time.time()), line))
            return job

    def run(self, job_id: str, *, running_secs: float | None = 600.0) -> FakeJob:
        """Run the job's command as its container would, then record the outcome."""
        job = self.jobs[job_id]
        if job.stage in TERMINAL:
            return job
        self.advance(job_id, "RUNNING", logs=f"===== Job started at {_iso(time.time())} =====")
        output, code = self._execute(job)
        if code == 0:
            return self.advance(job_id, "COMPLETED", logs=output, running_secs=running_secs)
        message = "OOMKilled" if code == 137 else f"Job failed with exit code: {code}"
        return self.advance(job_id, "ERROR", logs=output, message=message, running_secs=running_secs)

    def run_all(self, *, running_secs: float | None = 600.0) -> int:
        pending = [j.id for j in list(self.jobs.values()) if j.stage not in TERMINAL]
        for job_id in pending:
            self.run(job_id, running_secs=running_secs)
        return len(pending)

    def jobs_of(self, campaign: str) -> list[FakeJob]:
        return [j for j in self.jobs.values() if j.labels.get("mlr-campaign") == campaign]

    # -- the job's container -------------------------------------------------

    def _execute(self, job: FakeJob) -> tuple[str, int]:
        workdir = Path(tempfile.mkdtemp(prefix="fake-job-"))
        env = {"PATH": f"{self._shim}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(workdir),
               "TMPDIR": str(workdir), **job.environment, **job.secrets}
        command = list(job.spec.get("command") or []) + list(job.spec.get("arguments") or [])
        mounts: list[Path] = []
        try:
            for n, volume in enumerate(job.spec.get("volumes") or []):
                where = workdir / f"volume-{n}"
                why = self.git.mount(volume, where)
                if why:
                    return f"Error: failed to mount {why}\n", 1
                mounts.append(where)
                command = [w.replace(str(volume["mountPath"]), str(where)) for w in command]
            done = subprocess.run(command, env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, timeout=60)
        finally:
            for where in mounts:
                writable(where)
            shutil.rmtree(workdir, ignore_errors=True)
        return done.stdout, done.returncode

    # -- faults ----------------------------------------------------------------

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests.append((method, path))
            for fault in self.faults:
                if fault.method == method and fault.path.search(path) and fault.times != 0:
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
            kind = self.draw_fault() if path.startswith("/api/") else None
            if kind is not None:
                options = self._chaos_options
                return Fault(method, re.compile(""), kind, seconds=options["hang_s"],
                             headers={"Retry-After": options["retry_after"]} if kind == "429" else {})
        return None

    # -- the API ---------------------------------------------------------------

    def route(self, method: str, path: str, query: list[tuple[str, str]], body: bytes, auth: str | None) -> Reply:
        if method == "GET" and path == "/api/jobs/hardware":
            return self._hardware()
        if auth != f"Bearer {self.token}":
            return _error(401, "Invalid credentials in Authorization header")
        repo_reply = self.git.route(method, unquote(path), query, body)
        if repo_reply is not None:
            return repo_reply
        if method == "GET" and path == "/api/whoami-v2":
            return _json(200, {"type": "user", "name": self.user, "orgs": [{"name": n} for n in self.namespaces - {self.user}]})
        if m := re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)", path):
            return self._repo_info(m.group(1)[:-1], m.group(2))
        if method == "DELETE" and path == "/api/repos/delete":
            return self._delete_repo(json.loads(body or b"{}"))
        m = re.fullmatch(r"/api/jobs/([^/]+)(?:/([^/]+))?(?:/(logs|cancel))?", path)
        if not m:
            return _error(404, f"no route for {method} {path}")
        namespace, job_id, action = m.groups()
        if namespace not in self.namespaces:
            return _error(404, f"Namespace {namespace} not found")
        if job_id is None:
            return self._create(namespace, json.loads(body)) if method == "POST" else self._list(namespace, query)
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None or job.namespace != namespace:
            return _error(404, f"Job {job_id} not found")
        if action == "logs":
            return self._logs(job, query)
        if action == "cancel" and method == "POST":
            if job.stage not in TERMINAL:
                self.advance(job.id, "CANCELED", message="Canceled by user")
            return _json(200, {})
        return _json(200, self._info(job))

    def _hardware(self) -> Reply:
        if self.hardware is None:  # as a Hub without Jobs answers
            return _error(404, "no route for GET /api/jobs/hardware")
        return _json(200, [
            {"name": name, "prettyName": name.upper(), "cpu": "8 vCPU", "ram": ram, "ephemeralStorage": "50 GB",
             "accelerator": ({"type": "gpu", "model": acc[0], "quantity": str(acc[1]), "vram": acc[2],
                              "manufacturer": "Nvidia"} if acc else None),
             "unitCostMicroUSD": round(cost * 1e6), "unitCostUSD": cost, "unitLabel": "minute"}
            for name, cost, ram, acc in self.hardware
        ])

    def _create(self, namespace: str, spec: dict[str, Any]) -> Reply:
        with self._lock:
            job_id = f"{next(self._ids):024x}"
            self.jobs[job_id] = job = FakeJob(job_id, namespace, spec, created_at=self.clock())
        if self.autorun is not None:
            threading.Thread(target=self.run, args=(job_id,), kwargs={"running_secs": self.autorun}, daemon=True).start()
        return _json(200, self._info(job))

    def _list(self, namespace: str, query: list[tuple[str, str]]) -> Reply:
        labels = [tuple(v.split("=", 1)) for k, v in query if k == "label"]
        stages = {v for k, v in query if k == "stage"}
        with self._lock:
            found = [j for j in self.jobs.values() if j.namespace == namespace
                     and all(j.labels.get(k) == v for k, v in labels) and (not stages or j.stage in stages)]
        start = int(dict(query).get("cursor", 0))
        page = found[start:start + self.page_size]
        headers = {}
        if start + self.page_size < len(found):
            rest = [(k, v) for k, v in query if k != "cursor"] + [("cursor", str(start + self.page_size))]
            headers["Link"] = f'<{self.url}/api/jobs/{namespace}?{urlencode(rest)}>; rel="next"'
        return _json(200, [self._info(j) for j in page], **headers)

    def _logs(self, job: FakeJob, query: list[tuple[str, str]]) -> Reply:
        lines = list(job.logs)
        tail = dict(query).get("tail")
        if tail is not None:
            lines = lines[-int(tail):]
        events = [f"data: {json.dumps({'timestamp': ts, 'data': line}, ensure_ascii=False)}\n\n".encode()
                  for ts, line in lines]  # raw UTF-8, as a JSON encoder on the server writes it
        stall = self._log_stall(job.id)
        split = len(b"".join(events[:stall.after])) if stall else None
        return Reply(200, b"".join(events), content_type="text/event-stream", split=split, stall=stall)

    def _log_stall(self, job_id: str) -> LogStall | None:
        with self._lock:
            for stall in self.log_stalls:
                if stall.times != 0 and stall.job_id in (None, job_id):
                    if stall.times is not None:
                        stall.times -= 1
                    return stall
        return None

    def _repo_info(self, repo_type: str, repo_id: str) -> Reply:
        if (repo_type, repo_id) not in self.repos:
            return _error(404, "Repository not found", **{"X-Error-Code": "RepoNotFound"})
        return _json(200, {"id": repo_id, "private": True})

    def _delete_repo(self, payload: dict[str, Any]) -> Reply:
        repo_id = f"{payload.get('organization')}/{payload.get('name')}"
        key = (payload.get("type") or "model", repo_id)
        if key not in self.repos:
            return _error(404, "Repository not found", **{"X-Error-Code": "RepoNotFound"})
        if payload.get("organization") not in self.namespaces:
            return _error(403, "You don't have the rights to delete this repository")
        self.repos.discard(key)
        return _json(200, {})

    def _info(self, job: FakeJob) -> dict[str, Any]:
        now = self.clock()
        running = job.running_secs
        if running is None and job.started_at is not None:
            running = (job.finished_at if job.finished_at is not None else now) - job.started_at
        info: dict[str, Any] = {
            "id": job.id, "createdAt": _iso(job.created_at), "dockerImage": job.spec.get("dockerImage"),
            "command": job.spec.get("command"), "arguments": job.spec.get("arguments", []),
            "environment": job.environment, "secrets": {k: None for k in job.secrets},  # values never come back
            "flavor": job.spec.get("flavor"), "labels": job.labels,
            "status": {"stage": job.stage, "message": job.message},
            "durations": _durations(job, now, running),
            "owner": {"id": "0" * 24, "name": job.namespace, "type": "user"},
            "initiator": {"type": "user", "id": "0" * 24, "name": self.user},
        }
        if job.started_at is not None:
            info["startedAt"] = _iso(job.started_at)
        if job.finished_at is not None:
            info["finishedAt"] = _iso(job.finished_at)
        return info


def _durations(job: FakeJob, now: float, running: float | None) -> dict[str, Any]:
    """As HF counts them: scheduling (creation to start), running, and the total since creation (frozen at the end)."""
    scheduling = None if job.started_at is None else job.started_at - job.created_at
    if job.finished_at is not None and running is not None:
        total = (scheduling or 0) + running  # ``running_secs`` may be fixed by the test, not by the clock
    else:
        total = (job.finished_at if job.finished_at is not None else now) - job.created_at
    return {"schedulingSecs": None if scheduling is None else int(scheduling),
            "runningSecs": None if running is None else int(running), "totalSecs": int(total)}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub  # set on the subclass made by serve()

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm costs ~40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.hub._lock:
            self.hub.request_headers.append(dict(self.headers.items()))
        fault = self.hub._fault_for(method, url.path)
        kind = fault.kind if fault else None
        if kind == "drop":
            return self._drop()
        if kind == "hold-before":
            return self._hold(fault)
        if kind and kind.isdigit():
            return self._send(_error(int(kind), fault.message or f"injected {kind}", **fault.headers))
        reply = self.hub.route(method, url.path, parse_qsl(url.query, keep_blank_values=True), body,
                               self.headers.get("Authorization"))
        if kind == "lost":
            return self._drop()
        if kind == "hold":
            return self._hold(fault)
        if kind == "hang":
            time.sleep(fault.seconds)
        self._send(reply)

    def _hold(self, fault: Fault) -> None:
        fault.reached.set()
        fault.release.wait(timeout=60)
        self._drop()

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            trickle = reply.stall is not None and reply.split is not None and reply.stall.kind == "trickle"
            if trickle:  # a stream of unknown length: the body ends when the connection closes
                self.send_header("Connection", "close")
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command == "HEAD":
                return
            if reply.split is None or reply.stall is None:
                self.wfile.write(reply.body)
                return
            self.wfile.write(reply.body[:reply.split])
            self.wfile.flush()
            if reply.stall.kind == "drop":
                return self._drop()
            if reply.stall.kind == "trickle":
                ends = time.monotonic() + reply.stall.seconds
                while time.monotonic() < ends and not reply.stall.release.wait(timeout=reply.stall.interval):
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
            else:
                reply.stall.release.wait(timeout=reply.stall.seconds)
            self.wfile.write(reply.body[reply.split:])
        except OSError:
            self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class FakeHubServer:
    """``with FakeHubServer(token=...) as hub:`` serves a :class:`FakeHub` on 127.0.0.1 at ``hub.url``."""

    def __init__(self, **options: Any) -> None:
        self.hub = FakeHub(**options)
        handler = type("Handler", (_Handler,), {"hub": self.hub})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.hub.url = self.hub.git.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self.hub

    def __exit__(self, *exc: Any) -> None:
        for fault in self.hub.faults:
            fault.release.set()
        for stall in self.hub.log_stalls:
            stall.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        shutil.rmtree(self.hub._shim, ignore_errors=True)
