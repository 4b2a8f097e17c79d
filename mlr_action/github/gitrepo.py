"""A git checkout driven through the git CLI: the plumbing :mod:`mlr_action.github.gitsync` decides with.

Guarantees: no policy lives here (what to commit, where, how to merge is
gitsync's). git runs with English messages, no prompt and no pager; its
errors become :class:`~mlr_action.github.gitruns.GitError` (permanent, with the fix) or
:class:`~mlr_action.core.jobs.TransientError`, with every token scrubbed
from the text. Credentials: the checkout's own; when it has none and
``GITHUB_TOKEN`` is set, an ``http.extraheader`` for the GitHub server is
handed to each git process through its environment (``GIT_CONFIG_*``), never
written to disk or put in a URL. What may be read and written under
``runs/`` is checked by :mod:`mlr_action.github.gitruns`, which this
repository inherits.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mlr_action.core.jobs import TransientError
from mlr_action.core.redaction import redact
from mlr_action.github.gitruns import REGULAR_MODES, GitError, RunsFiles, failure_detail, write_file

RUNS = "runs"
LEDGER_NAME = "ledger.jsonl"
ZERO = "0" * 40


class NotACheckout(GitError):
    """The folder is not in a git work tree."""


@dataclass
class GitRepo(RunsFiles):
    top: Path
    prefix: str  # the campaign root relative to the top of the work tree, "" at the top
    remote: str
    env: dict[str, str]
    secrets: list[str]  # credentials this process handed to git, masked besides the environment's tokens

    @classmethod
    def open(cls, root: Path, remote: str) -> "GitRepo":
        env, secrets = _base_env(), []
        probe = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"],
                               capture_output=True, text=True, env=env)
        if probe.returncode != 0:
            raise NotACheckout(f"{root} is not in a git checkout, so runs/ cannot be committed; "
                           "check out the repository first (actions/checkout) or use --forge none")
        top = Path(probe.stdout.strip()).resolve()
        if top != root.resolve() and top not in root.resolve().parents:  # reached through a symlink
            raise GitError(f"{root} resolves to {root.resolve()}, outside the git checkout {top}; give a folder "
                           "of the checkout itself (a symlinked folder is not followed)")
        rel = root.resolve().relative_to(top).as_posix()
        repo = cls(top=top, prefix="" if rel == "." else rel, remote=remote, env=env, secrets=secrets)
        repo.env.update(repo.auth_env())
        return repo

    # -- plumbing helpers

    def git(self, *args: str, input: bytes | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(["git", *args], cwd=self.top, input=input, capture_output=True,
                              env={**self.env, **(env or {})})
        if check and proc.returncode != 0:
            raise GitError(f"git {args[0]} failed: {self.scrub(proc.stderr.decode(errors='replace')).strip()}")
        return proc

    def out(self, *args: str, **kwargs) -> str:
        return self.git(*args, **kwargs).stdout.decode().strip()

    def rev(self, ref: str) -> str | None:
        proc = self.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    def scrub(self, text: str) -> str:
        """``text`` without the environment's tokens (in any encoding) or the credentials handed to git."""
        return redact(text, extra=self.secrets)

    @property
    def runs_dir(self) -> str:
        return f"{self.prefix}/{RUNS}" if self.prefix else RUNS

    @property
    def ledger(self) -> str:
        return f"{self.runs_dir}/{LEDGER_NAME}"

    # -- names

    def current_branch(self) -> str | None:
        return self.out("symbolic-ref", "--quiet", "--short", "HEAD", check=False) or None

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        return self.git("merge-base", "--is-ancestor", ancestor, commit, check=False).returncode == 0

    def tree_of(self, commit: str | None) -> str | None:
        return self.out("rev-parse", f"{commit}^{{tree}}") if commit else None

    def write_tree(self, base: str | None, index_info: list[str]) -> str:
        """The tree of ``base`` (or an empty one) with ``index_info`` lines applied, built on a private index."""
        with tempfile.TemporaryDirectory(prefix="mlr-index-") as tmp:
            index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.git("read-tree", *([base] if base else ["--empty"]), env=index)
            self.git("update-index", "--index-info", input=("\n".join(index_info) + "\n").encode(), env=index)
            return self.out("write-tree", env=index)

    def commit_tree(self, tree: str, parent: str | None, message: str, identity: dict[str, str]) -> str:
        return self.out("commit-tree", "--no-gpg-sign", tree, *(["-p", parent] if parent else []), "-m", message,
                        env=identity)

    def write_blob(self, data: bytes) -> str:
        return self.out("hash-object", "-w", "--stdin", input=data)

    def check_branch_name(self, branch: str) -> None:
        if self.git("check-ref-format", "--branch", branch, check=False).returncode != 0:
            raise GitError(f"ledger-branch {branch!r} is not a valid branch name; use something like mlr-ledger")

    # -- what is where

    def blob(self, oid: str) -> bytes:
        return self.git("cat-file", "blob", oid).stdout

    def entry(self, commit: str, path: str) -> tuple[str, str] | None:
        """(mode, object id) of ``path`` in ``commit``; None when there is none. Read literally: no pathspec
        magic, and a path through a symlink or a submodule in the tree is not there."""
        listing = self.git("--literal-pathspecs", "ls-tree", "-z", commit, "--", path).stdout
        for item in filter(None, listing.decode("utf-8", errors="surrogateescape").split("\0")):
            meta, name = item.split("\t", 1)
            if name == path:
                mode, _kind, oid = meta.split()
                return mode, oid
        return None

    def size(self, oid: str) -> int:
        return int(self.out("cat-file", "-s", oid))

    # -- trees and commits

    def changed_paths(self, old_tree: str | None, new_tree: str) -> list[str]:
        if old_tree is None:
            listing = self.git("ls-tree", "-r", "-z", "--name-only", new_tree).stdout.decode()
        else:
            listing = self.git("diff-tree", "-r", "-z", "--name-only", "--no-renames", old_tree, new_tree).stdout.decode()
        return [p for p in listing.split("\0") if p]

    # -- the network

    def fetch(self, branch: str) -> str | None:
        """Fetch ``branch`` into its remote-tracking ref; its tip, or None when the remote has no such branch."""
        tracking = f"refs/remotes/{self.remote}/{branch}"
        shallow = self.out("rev-parse", "--is-shallow-repository") == "true"
        args = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", *(["--depth=1"] if shallow else []),
                self.remote, f"+refs/heads/{branch}:{tracking}"]
        proc = self.git(*args, check=False)
        if proc.returncode != 0:
            text = proc.stderr.decode(errors="replace")
            if "couldn't find remote ref" in text.lower():
                self.git("update-ref", "-d", tracking, check=False)
                return None
            if self.git("remote", "get-url", self.remote, check=False).returncode != 0:
                raise GitError(f"could not fetch {self.remote}/{branch}: the checkout has no remote {self.remote}; "
                               "check the repository out with actions/checkout, which sets it")
            self.raise_for(text, action=f"fetch {self.remote}/{branch}")
        return self.rev(tracking)

    def push(self, commit: str, branch: str) -> bool:
        """True when pushed; False when rejected because the remote moved on; raises otherwise."""
        proc = self.git("push", "--porcelain", self.remote, f"{commit}:refs/heads/{branch}", check=False)
        if proc.returncode == 0:
            return True
        text = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        low = text.lower()
        if not _protected(low) and any(s in low for s in _MOVED_ON):
            return False
        self.raise_for(text, action=f"push runs/ to {self.remote}/{branch}")
        return False  # pragma: no cover - _raise_for always raises

    def raise_for(self, text: str, *, action: str) -> None:
        low, detail = text.lower(), failure_detail(self.scrub(text))
        if _protected(low):
            raise GitError(f"could not {action}: the branch is protected ({detail}); set the action's "
                           "ledger-branch input (e.g. ledger-branch: mlr-ledger) so the ledger goes to its own branch")
        if any(s in low for s in _DENIED):
            raise GitError(f"could not {action}: permission denied ({detail}); give the workflow "
                           "`permissions: contents: write` and keep actions/checkout's persist-credentials (the default)")
        raise TransientError(f"could not {action}: {detail} (the next tick retries)")

    # -- the work tree

    def move_checkout(self, old: str | None, new: str) -> None:
        """Index entries (and untouched work tree files) of paths that changed from ``old`` to ``new``."""
        paths = self.changed_paths(self.tree_of(old), self.tree_of(new) or "")
        if not paths:
            return
        old_files = self.entries(old, paths) if old else {}
        new_files = self.entries(new, paths)
        lines = [f"{new_files[p][0]} {new_files[p][1]}\t{p}" if p in new_files else f"0 {ZERO}\t{p}" for p in paths]
        self.git("update-index", "--index-info", input=("\n".join(lines) + "\n").encode())
        for path in paths:
            if path.startswith(f"{self.runs_dir}/"):
                continue  # checkout_runs writes these
            here = self.top / path
            if path in new_files and new_files[path][0] not in REGULAR_MODES or here.is_symlink() \
                    or Path(os.path.realpath(here.parent)) != here.parent:
                continue  # a symlink or a submodule, or a path through one: left for the owner's `git pull`
            current = self.out("hash-object", "--", path) if here.is_file() else None
            if current != (old_files.get(path) or (None, None))[1]:
                continue  # a local change: leave it
            if path in new_files:
                write_file(here, self.blob(new_files[path][1]))
            else:
                here.unlink(missing_ok=True)
        self.git("update-index", "-q", "--refresh", check=False)

    def entries(self, commit: str, paths: list[str]) -> dict[str, tuple[str, str]]:
        listing = self.git("ls-tree", "-r", "-z", commit, "--", *paths).stdout.decode()
        entries = {}
        for entry in filter(None, listing.split("\0")):
            meta, path = entry.split("\t", 1)
            mode, _kind, oid = meta.split()
            entries[path] = (mode, oid)
        return entries

    # -- credentials

    def auth_env(self) -> dict[str, str]:
        """An extraheader for the GitHub server, through the environment, when the checkout has no credentials."""
        token = os.environ.get("GITHUB_TOKEN", "").strip()
        url = self.out("remote", "get-url", self.remote, check=False)
        parts = urlsplit(url)
        server = urlsplit(os.environ.get("GITHUB_SERVER_URL", "https://github.com"))
        if not token or parts.scheme != "https" or "@" in parts.netloc or parts.netloc != server.netloc:
            return {}
        configured = self.git("config", "--get-regexp", r"^http\..*extraheader$", check=False).stdout.strip()
        if configured or self.git("config", "--get", "credential.helper", check=False).stdout.strip():
            return {}
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        self.secrets.append(basic)
        count = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
        return {
            "GIT_CONFIG_COUNT": str(count + 1),
            f"GIT_CONFIG_KEY_{count}": f"http.{server.scheme}://{server.netloc}/.extraheader",
            f"GIT_CONFIG_VALUE_{count}": f"AUTHORIZATION: basic {basic}",
        }


_MOVED_ON = ("fetch first", "non-fast-forward", "stale info", "cannot lock ref", "incorrect old value",
             "failed to update ref", "[rejected]")
_DENIED = ("authentication failed", "could not read username", "permission to", "permission denied",
           "the requested url returned error: 403", "denied to", "write access to repository not granted")


def _protected(low: str) -> bool:
    return any(s in low for s in ("protected branch", "gh006", "gh013", "repository rule violations"))


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    # Messages in English (they are parsed), never a prompt, no pager.
    env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0", GIT_PAGER="cat", GCM_INTERACTIVE="never")
    return env

