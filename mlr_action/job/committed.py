"""The folder a local step's jobs run: the campaign folder as committed at ``HEAD``, as an HF job runs a commit.

Guarantees:

- In a git repository, :func:`local_snapshot` is :func:`mlr_action.job.shipped.from_commit` of ``HEAD``: the
  tracked files as committed, never an untracked file (a ``.env`` with a secret, a module the user forgot to
  commit) nor an uncommitted edit. So a local run predicts an HF one, which runs the committed folder.
  :attr:`~mlr_action.job.shipped.ShippedFolder.note` names what was left out (untracked files, and tracked files
  modified since the commit; ignored files, ``runs/`` and ``.mlr/`` are never shipped and never named), so the
  step can say it. A repository with no commit yet, or a campaign folder the commit at ``HEAD`` has no file of
  (untracked, or ignored by .gitignore), is a :class:`~mlr_action.job.shipped.ShipError` that says to commit, and
  nothing runs.
- Outside git, the folder on disk (every file but ``runs/``, ``.mlr/`` and ``.git/``,
  :func:`~mlr_action.job.shipped.from_work_tree`), and the note says that it is not a commit.

Read-only: git is asked (``rev-parse``, ``ls-tree``, ``cat-file``, ``status``), never told.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

from mlr_action.core.redaction import redact
from mlr_action.job.shipped import ShipError, ShippedFolder, clean_path, from_commit, from_work_tree

SHOWN = 5  # names shown of each kind left out

NO_GIT = ("the campaign folder is not in a git repository, so local jobs run its files as they are on disk "
          "(every file but runs/, .mlr/ and .git/); HF jobs run a commit, so commit the folder for local runs to "
          "predict them")


def local_snapshot(folder: Path) -> ShippedFolder:
    """The campaign folder ``folder`` as a local step ships it (see the module's doc)."""
    folder = Path(folder)
    git = _git_in(folder)
    probe = git("rev-parse", "--is-inside-work-tree", check=False)
    if probe.returncode != 0 or probe.stdout.strip() != b"true":
        return dataclasses.replace(from_work_tree(folder), note=NO_GIT)
    head = git("rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False).stdout.decode().strip()
    if not head:
        raise ShipError(f"{folder} is in a git repository with no commit yet: commit the campaign folder "
                        "(`git add` and `git commit`); local jobs run the committed folder, as HF jobs do")
    prefix = git("rev-parse", "--show-prefix").stdout.decode("utf-8", "surrogateescape").strip().rstrip("/")
    top = Path(git("rev-parse", "--show-toplevel").stdout.decode("utf-8", "surrogateescape").strip())
    shipped = from_commit(_git_in(top), head, prefix or ".")
    if not shipped.files:
        raise ShipError(f"the campaign folder {prefix or '.'} is not in the commit at HEAD ({head[:12]}) of the "
                        f"repository at {top}: it is untracked or ignored by .gitignore, so a job would start with "
                        "no file of it; commit the campaign folder (`git add` and `git commit`, or `git init` it as "
                        "a repository of its own): local jobs run the committed folder, as HF jobs do")
    return dataclasses.replace(shipped, note=_left_out(_git_in(top), prefix, head))


def _git_in(where: Path):
    env = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}

    def git(*args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(["git", *args], cwd=where, input=input, capture_output=True, env=env)
        if check and proc.returncode != 0:
            raise ShipError(f"git {args[0]} failed in {where}: "
                            f"{redact(proc.stderr.decode(errors='replace')).strip()[:300]}")
        return proc
    return git


def _left_out(git, prefix: str, head: str) -> str | None:
    """What the work tree has that the commit does not ship: untracked files, and files modified since."""
    listing = git("status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--",
                  prefix or ".").stdout.decode("utf-8", "surrogateescape")
    untracked, modified = [], []
    for item in filter(None, listing.split("\0")):
        code, path = item[:2], item[3:]
        rel = clean_path(path[len(prefix) + 1:] if prefix else path)
        if rel is not None:
            (untracked if code == "??" else modified).append(rel)
    if not untracked and not modified:
        return None
    parts = ([f"{_count(untracked, 'untracked file')} ({_names(untracked)})"] if untracked else []) + \
        ([f"the uncommitted changes to {_count(modified, 'file')} ({_names(modified)})"] if modified else [])
    return redact(f"local jobs run the campaign folder as committed at HEAD ({head[:12]}), as HF jobs run a "
                  f"commit: left out {' and '.join(parts)}; commit them to run them")


def _count(paths: list[str], kind: str) -> str:
    return f"{len(paths)} {kind}{'s' * (len(paths) != 1)}"


def _names(paths: list[str]) -> str:
    return ", ".join(sorted(paths)[:SHOWN]) + (f", and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")
