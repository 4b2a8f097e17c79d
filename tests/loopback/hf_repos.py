"""Hub repos for the loopback HF server (tests/loopback/hf_server.py): create, commit, list, download, mount.

It speaks what ``HfApi`` calls for a repo, with the paths and JSON of
huggingface_hub 2.x (``hf_api.py``, ``_commit_api.py``):

- ``POST /api/repos/create`` (``{"name", "organization", "type", "visibility"}``;
  409 when it exists), answered with its URL. A new repo has one commit
  holding ``.gitattributes``, as on the Hub.
- ``GET /api/{models,datasets}/{repo}`` and ``.../revision/{rev}``: ``id``,
  ``sha`` (the head commit), ``private``, ``siblings``.
- ``GET /api/{models,datasets}/{repo}/tree/{rev}/{path}?recursive=``: files
  (``oid``: git's blob id) and folders, 404 ``EntryNotFound`` for a path with
  nothing under it.
- ``POST .../preupload/{rev}``: every file ``regular`` (small files go
  through the plain commit API; nothing here speaks LFS or Xet).
- ``POST .../commit/{rev}``: the NDJSON payload (``header``, ``file``
  base64, ``deletedFile``, ``deletedFolder``), answered with ``commitOid``.
- ``GET`` and ``HEAD /{repo}/resolve/{rev}/{path}`` (``/datasets/...`` for
  datasets): the file's bytes, with ``X-Repo-Commit`` and ``ETag``.

:meth:`FakeRepos.mount` writes a repo's files at a revision (under a
``path`` prefix) into a folder and makes it read-only, as a job's volume.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO_TYPES = {"models": "model", "datasets": "dataset"}


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeRepo:
    private: bool
    commits: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)  # (oid, every file at that commit)

    @property
    def head(self) -> str:
        return self.commits[-1][0]

    def files_at(self, revision: str) -> dict[str, bytes] | None:
        if revision in ("main", self.head):
            return self.commits[-1][1]
        return next((files for oid, files in self.commits if oid == revision), None)


class FakeRepos:
    """Repo state, thread-safe; :meth:`route` answers a request or returns None when it is not about repos."""

    def __init__(self, *, namespaces: set[str], reply: Callable[..., Any], error: Callable[..., Any]) -> None:
        self.namespaces = namespaces
        self._reply, self._error = reply, error
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self.commit_count = 0  # commits made through the API (not counting a repo's initial one)
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self.url = ""

    def _oid(self) -> str:
        return hashlib.sha1(f"commit-{next(self._ids)}".encode()).hexdigest()

    def create(self, repo_type: str, repo_id: str, *, private: bool = True) -> FakeRepo:
        with self._lock:
            repo = FakeRepo(private=private, commits=[(self._oid(), {".gitattributes": b"*.bin filter=lfs\n"})])
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def get(self, repo_type: str, repo_id: str) -> FakeRepo | None:
        return self.repos.get((repo_type, repo_id))

    # -- the API -------------------------------------------------------------

    def route(self, method: str, path: str, query: list[tuple[str, str]], body: bytes) -> Any | None:
        if method == "POST" and path == "/api/repos/create":
            return self._create(json.loads(body or b"{}"))
        m = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)(?:/(tree|preupload|commit|revision)/([^/]+)(/.*)?)?", path)
        if m and m.group(2) and (m.group(1), m.group(2)) and (REPO_TYPES[m.group(1)], m.group(2)) in self.repos:
            repo_type, repo_id, action, revision, rest = REPO_TYPES[m.group(1)], m.group(2), m.group(3), m.group(4), m.group(5)
            repo = self.repos[(repo_type, repo_id)]
            if action in (None, "revision") and method == "GET":
                return self._info(repo_id, repo, revision or "main")
            if action == "tree" and method == "GET":
                return self._tree(repo, revision, (rest or "/").lstrip("/"), dict(query).get("recursive") in ("true", "True", "1"))
            if action == "preupload" and method == "POST":
                files = json.loads(body or b"{}").get("files", [])
                return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                   for f in files]})
            if action == "commit" and method == "POST":
                return self._commit(repo_id, repo, revision, body)
        m = re.fullmatch(r"/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m and method in ("GET", "HEAD"):
            repo = self.get("dataset" if m.group(1) else "model", m.group(2))
            with self._lock:
                files = repo.files_at(m.group(3)) if repo else None
                commit = (repo.head if m.group(3) == "main" else m.group(3)) if repo else ""
            if files is None or m.group(4) not in files:
                return self._error(404, "Entry not found", **{"X-Error-Code": "EntryNotFound"})
            data = files[m.group(4)]
            return self._reply(200, data, raw=True, **{"X-Repo-Commit": commit, "ETag": f'"{blob_id(data)}"'})
        return None

    def _create(self, payload: dict[str, Any]) -> Any:
        repo_type = payload.get("type") or "model"
        namespace, name = payload.get("organization"), payload.get("name")
        if namespace not in self.namespaces:
            return self._error(403, "You don't have the rights to create a repo in this namespace")
        repo_id = f"{namespace}/{name}"
        if (repo_type, repo_id) in self.repos:
            return self._reply(409, {"error": "You already created this repo", "url": f"{self.url}/{repo_id}"})
        self.create(repo_type, repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")))
        return self._reply(200, {"url": f"{self.url}/{repo_id}", "name": repo_id})

    def _info(self, repo_id: str, repo: FakeRepo, revision: str) -> Any:
        with self._lock:
            files = repo.files_at(revision)
            if files is None:
                return self._error(404, "Revision not found", **{"X-Error-Code": "RevisionNotFound"})
            sha = repo.head if revision == "main" else revision
            return self._reply(200, {"id": repo_id, "sha": sha, "private": repo.private,
                                     "siblings": [{"rfilename": p} for p in sorted(files)]})

    def _tree(self, repo: FakeRepo, revision: str, prefix: str, recursive: bool) -> Any:
        with self._lock:
            files = repo.files_at(revision)
        if files is None:
            return self._error(404, "Revision not found", **{"X-Error-Code": "RevisionNotFound"})
        under = {p: d for p, d in files.items() if not prefix or p.startswith(prefix.rstrip("/") + "/")}
        if prefix and not under:
            return self._error(404, f"{prefix} does not exist", **{"X-Error-Code": "EntryNotFound"})
        entries, folders = [], set()
        for p, data in sorted(under.items()):
            rest = p[len(prefix.rstrip("/")) + 1:] if prefix else p
            parts = rest.split("/")
            if not recursive and len(parts) > 1:
                folders.add(p[: len(p) - len(rest)] + parts[0])
                continue
            for depth in range(1, len(parts)):
                folders.add(p[: len(p) - len(rest)] + "/".join(parts[:depth]))
            entries.append({"type": "file", "oid": blob_id(data), "size": len(data), "path": p})
        entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders)]
        return self._reply(200, entries)

    def _commit(self, repo_id: str, repo: FakeRepo, revision: str, body: bytes) -> Any:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        with self._lock:
            files = repo.files_at(revision)
            if files is None or revision not in ("main", repo.head):
                return self._error(400, f"cannot commit to {revision}")
            files = dict(files)
            for item in lines:
                key, value = item.get("key"), item.get("value") or {}
                if key == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    files = {p: d for p, d in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
                elif key != "header":
                    return self._error(400, f"this stand-in does not speak {key}")
            oid = self._oid()
            repo.commits.append((oid, files))
            self.commit_count += 1
        return self._reply(200, {"commitUrl": f"{self.url}/{repo_id}/commit/{oid}", "commitOid": oid,
                                 "pullRequestUrl": None})

    # -- what a job's container sees ------------------------------------------

    def mount(self, volume: dict[str, Any], where: Path) -> str | None:
        """Write the volume's files into ``where`` and make it read-only; why it cannot be mounted, or None."""
        repo = self.get(volume.get("type") or "model", str(volume.get("source")))
        if repo is None:
            return f"volume {volume.get('source')}: no such {volume.get('type')} repo"
        with self._lock:
            files = repo.files_at(str(volume.get("revision") or "main"))
        if files is None:
            return f"volume {volume.get('source')}: no revision {volume.get('revision')}"
        prefix = str(volume.get("path") or "").strip("/")
        chosen = {p[len(prefix) + 1:] if prefix else p: d for p, d in files.items()
                  if not prefix or p.startswith(prefix + "/")}
        if prefix and not chosen:
            return f"volume {volume.get('source')}: no folder {prefix} at {volume.get('revision')}"
        where.mkdir(parents=True)
        for rel, data in chosen.items():
            (where / rel).parent.mkdir(parents=True, exist_ok=True)
            (where / rel).write_bytes(data)
        read_only(where)
        return None


def read_only(top: Path) -> None:
    """Files 0444 and folders 0555, as a read-only mount shows them."""
    for parent, dirs, files in os.walk(top, topdown=False):
        for name in files:
            os.chmod(os.path.join(parent, name), stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        for name in dirs:
            os.chmod(os.path.join(parent, name), 0o555)
    os.chmod(top, 0o555)


def writable(top: Path) -> None:
    """Undo :func:`read_only`, so the folder can be removed."""
    if not top.exists():
        return
    os.chmod(top, 0o755)
    for parent, dirs, files in os.walk(top):
        for name in dirs:
            os.chmod(os.path.join(parent, name), 0o755)
        for name in files:
            os.chmod(os.path.join(parent, name), 0o644)
