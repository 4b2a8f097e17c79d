"""How the campaign folder reaches an HF job: a private Hub repo at a pinned revision, mounted read-only.

The folder (:class:`mlr_action.job.shipped.ShippedFolder`) is uploaded under
``<digest[:16]>/`` in the private model repo ``<namespace>/mlr-code-<campaign>``
(:func:`code_repo`) with the plain commit API (``HfApi.create_commit``), and
the job gets ``Volume(type="model", source=repo, revision=<commit>,
path=<digest[:16]>, mount_path=/mlr/code, read_only=True)``.

Guarantees:

- Once per content: before uploading, the folder's path in the repo is listed
  at the repo's current revision and compared file by file (git blob ids, or
  the SHA-256 of files stored with LFS); when everything matches, nothing is
  uploaded and that revision is mounted. So a tick whose commit only moved
  ``runs/`` uploads nothing, and an edited or planted file under that path is
  never mounted: it is uploaded again, and the new commit is mounted.
- The revision is pinned: a job mounts the commit that was checked or made,
  never a branch that may move.
- Never public: a repo created here is private, and an existing repo of that
  name that is public is refused (:class:`PermanentError`) before anything is
  uploaded to it.
- Within one backend object, a folder already shipped is not looked up again.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, Volume

from mlr_action.core.jobs import PermanentError
from mlr_action.job.runner import MOUNT
from mlr_action.job.shipped import ShippedFolder

REPO_TYPE = "model"
DIGEST_CHARS = 16  # the folder's name in the repo: enough to tell folders apart; the content is checked anyway


class Missing(Exception):
    """A 404 where the caller expects one (a job, a repo or a path that is not there)."""


def folder_path(folder: ShippedFolder) -> str:
    return folder.digest[:DIGEST_CHARS]


class CodeShipper:
    """Uploads folders through ``api`` (an ``HfApi``); ``call(action, fn, missing=, writes=)`` translates errors."""

    def __init__(self, api: Any, call: Callable[..., Any]) -> None:
        self.api = api
        self.call = call
        self._shipped: dict[tuple[str, str], Volume] = {}

    def volume(self, folder: ShippedFolder, *, repo_id: str) -> Volume:
        key = (repo_id, folder.digest)
        if key not in self._shipped:
            path = folder_path(folder)
            revision = self._revision(repo_id)
            listed = self._listing(repo_id, revision, path) if revision else {}
            if not (listed and self._matches(folder, listed)):
                revision = self._upload(repo_id, path, folder, listed)
            self._shipped[key] = Volume(type=REPO_TYPE, source=repo_id, revision=revision, path=path,
                                        mount_path=MOUNT, read_only=True)
        return self._shipped[key]

    def _revision(self, repo_id: str) -> str | None:
        """The repo's current commit; None when the repo was just created (private)."""
        try:
            info = self.call(f"reading the code repo {repo_id}",
                             lambda: self.api.repo_info(repo_id, repo_type=REPO_TYPE), missing=True)
        except Missing:
            self.call(f"creating the private code repo {repo_id}",
                      lambda: self.api.create_repo(repo_id, repo_type=REPO_TYPE, private=True, exist_ok=True))
            return None
        if info.private is False:
            raise PermanentError(
                f"the Hub repo {repo_id}, where the campaign's code is shipped to its jobs, is public: the bot never "
                f"uploads code to a public repo; make it private (its Settings page) or delete it, then run again; "
                "this job was not submitted")
        return info.sha

    def _listing(self, repo_id: str, revision: str, path: str) -> dict[str, Any]:
        """The files under ``path`` at ``revision``, by their path in the folder."""
        try:
            entries = self.call(f"listing the shipped folder {path} in {repo_id}", lambda: list(self.api.list_repo_tree(
                repo_id, path_in_repo=path, recursive=True, revision=revision, repo_type=REPO_TYPE)), missing=True)
        except Missing:
            return {}
        return {e.path[len(path) + 1:]: e for e in entries if hasattr(e, "blob_id") and e.path.startswith(path + "/")}

    @staticmethod
    def _matches(folder: ShippedFolder, listed: dict[str, Any]) -> bool:
        if set(listed) != {f.path for f in folder.files}:
            return False
        for entry in folder.files:
            found = listed[entry.path]
            if found.lfs is not None:
                if found.lfs.sha256 != hashlib.sha256(folder.data(entry)).hexdigest():
                    return False
            elif found.blob_id != entry.oid:
                return False
        return True

    def _upload(self, repo_id: str, path: str, folder: ShippedFolder, listed: dict[str, Any]) -> str:
        ops: list[Any] = [CommitOperationDelete(path_in_repo=f"{path}/{name}") for name in sorted(listed)
                          if folder.get(name) is None]
        ops += [CommitOperationAdd(path_in_repo=f"{path}/{f.path}", path_or_fileobj=folder.data(f)) for f in folder.files]
        message = f"mlr: the campaign folder {path} ({folder.source})"
        info = self.call(f"uploading the campaign folder to {repo_id}", lambda: self.api.create_commit(
            repo_id, operations=ops, commit_message=message, repo_type=REPO_TYPE))
        return str(info.oid)
