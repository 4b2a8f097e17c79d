"""Commits and pushes of ``runs/`` with the git CLI, as the bot (DESIGN.md sections 1.4 and 4.7).

Contract (``GitHubForge.finish_step`` calls it, lazily imported; keep the signature):

``publish_runs(root, *, message, branch=None, remote="origin", attempts=4, backoff=1.0) -> bool``
    Commits what this step changed under ``<root>/runs/`` (ledger.jsonl,
    summary.md, research/, reports) with ``message`` as the commit message, as
    ``github-actions[bot]``, and pushes it. True when a commit was made and
    pushed; False when nothing under ``runs/`` changed (no commit, no push).
    ``branch`` is the ledger branch; ``None`` reads ``$MLR_LEDGER_BRANCH``,
    and an empty value means the branch that is checked out.

``prepare_runs(root, *, branch, remote="origin") -> bool``
    Before a step in ledger-branch mode: fetches ``branch`` and makes the work
    tree's ``runs/`` exactly that branch's ``runs/``, so the step folds the
    latest ledger. False (and the work tree untouched) when the branch does
    not exist yet; the first publish creates it.

``check_runs(root, *, remote="origin")``
    Before a step: runs/ in the work tree is a real folder with no symlink in it.

Guarantees:

- Only paths under ``runs/`` are committed, ever: the commit is built with
  plumbing on a private index, starting from the remote tip and replacing
  only ``runs/`` entries, and a commit whose tree differs from its parent
  anywhere else is refused (:class:`GitError`). The bot never writes
  ``program.md``, and never deletes or shortens the ledger. The user's index
  and other files are left alone.
- A rejected push re-reads the remote and retries. The ledger is merged as an
  append-only log: the remote's lines in their order, then this step's lines
  the remote does not have (exact duplicates dropped). Any other file under
  ``runs/`` that this step changed is taken from this step (``summary.md`` is
  rewritten every step); the rest comes from the remote. After ``attempts``
  rejected pushes: :class:`PushRejected`, a transient error (exit 1, the next
  tick retries; a job submitted in this step is adopted by its labels).
- With a ledger branch, ``runs/`` goes to that branch (created as an orphan
  branch holding only ``runs/`` when missing) and the checked-out branch is
  never written; the base of this step's changes is the tip
  :func:`prepare_runs` brought in (kept in ``refs/mlr/ledger-base``).
- A protected branch or a token without ``contents: write`` raises
  :class:`GitError` (permanent, reported) naming the fix.
- runs/ is data, never a path: a tree (the ledger branch's, or the checked-out
  branch's) whose runs/ holds anything but regular files at plain paths (a
  ``..``, ``.``, empty or ``.git`` name, a symlink, a submodule, a runs/ that
  is not a folder) is refused whole, before anything is written, with a
  :class:`GitError` that names the entry and the fix; a work tree whose runs/
  is a symlink or holds one is refused too, and every write is checked to land
  inside runs/. Nothing is ever written outside runs/.
- No token is written to disk, to a remote URL, to a log or to a commit
  message (the message is redacted here, whoever wrote it, and its
  ``@name``, ``#123`` and ``GH-123`` are defused, so text quoted from a job
  neither pings anyone nor closes an issue when it reaches the default
  branch). git uses the
  checkout's own credentials (``actions/checkout`` persists them); when there
  are none and ``GITHUB_TOKEN`` is set, an ``http.extraheader`` is handed to
  each git process through its environment (``GIT_CONFIG_*``) only, and only
  for the GitHub server (see :mod:`mlr_action.github.gitrepo`, the plumbing).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator

from mlr_action.core.jobs import TransientError
from mlr_action.github.gitrepo import RUNS, ZERO, GitRepo, NotACheckout
from mlr_action.github.gitruns import GitError, UnsafeTree, UnsafeWorktree, write_file

__all__ = ["GitError", "NotACheckout", "PushRejected", "check_runs", "merge_ledger", "outside_runs", "prepare_runs",
           "publish_runs"]

BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
BOT_IDENTITY = {"GIT_AUTHOR_NAME": BOT_NAME, "GIT_AUTHOR_EMAIL": BOT_EMAIL,
                "GIT_COMMITTER_NAME": BOT_NAME, "GIT_COMMITTER_EMAIL": BOT_EMAIL}
LEDGER_BRANCH_ENV = "MLR_LEDGER_BRANCH"
BASE_REF = "refs/mlr/ledger-base"


class PushRejected(TransientError):
    """The remote kept moving; the next tick retries."""


# --- the merge (pure) -------------------------------------------------------


def merge_ledger(remote: str, ours: str) -> str:
    """The remote's lines in order, then ours that it lacks; exact duplicates of ours dropped."""
    remote_lines = [line for line in remote.split("\n") if line.strip()]
    seen = set(remote_lines)
    merged = list(remote_lines)
    for line in ours.split("\n"):
        if line.strip() and line not in seen:
            seen.add(line)
            merged.append(line)
    return "".join(line + "\n" for line in merged)


def outside_runs(paths: list[str], prefix: str = "") -> list[str]:
    """The paths that are not under ``<prefix>/runs/``: a commit holding any of them is refused."""
    runs = f"{prefix}/{RUNS}/" if prefix else f"{RUNS}/"
    return [p for p in paths if not p.startswith(runs) or "/../" in f"/{p}/"]


# --- the public seam ---------------------------------------------------------


def publish_runs(
    root: Path,
    *,
    message: str,
    branch: str | None = None,
    remote: str = "origin",
    attempts: int = 4,
    backoff: float = 1.0,
) -> bool:
    """Commit and push what this step changed under ``runs/``; True when a commit was pushed."""
    if not message.strip():
        raise ValueError("publish_runs needs a commit message that says what the step did")
    from mlr_action.core.markup import unlinked
    from mlr_action.core.redaction import redact

    message = unlinked(redact(message))  # it may quote a job: no token, and no @mention or "fixes #1" for GitHub
    repo = GitRepo.open(Path(root), remote)
    target, base, ledger_mode = _target(repo, branch)
    with refusing_unsafe(target, ledger=ledger_mode, remote=remote):
        return _publish(repo, target, base, ledger_mode, message=message, attempts=attempts, backoff=backoff)


def _publish(repo: GitRepo, target: str, base: str | None, ledger_mode: bool, *, message: str, attempts: int,
             backoff: float) -> bool:
    remote = repo.remote
    repo.check_worktree_runs()
    ours = repo.worktree_runs()
    base_files = repo.tree_runs(base)
    changed = sorted(p for p in ours.keys() | base_files.keys() if ours.get(p) != base_files.get(p)
                     and not (p == repo.ledger and p not in ours))  # the ledger is never deleted
    if not changed:
        return False
    our_ledger = (repo.top / repo.ledger).read_text(encoding="utf-8") if repo.ledger in ours else ""
    # Build on what the remote had when last seen (never on local commits of someone's own); a stale view
    # only costs a rejected push and a fetch.
    tip = (base if ledger_mode else repo.rev(f"refs/remotes/{remote}/{target}")) or repo.fetch(target)
    for attempt in range(1, max(attempts, 1) + 1):
        commit = _build_commit(repo, tip, ours=ours, changed=changed, our_ledger=our_ledger, message=message)
        if commit is None:  # the remote already holds exactly what this step wrote
            repo.checkout_runs(tip)
            return False
        if repo.push(commit, target):
            _advance(repo, base=base, commit=commit, target=target, ledger_mode=ledger_mode)
            return True
        if attempt == attempts:
            break
        time.sleep(backoff * 2 ** (attempt - 1))
        tip = repo.fetch(target)
    raise PushRejected(
        f"the push of runs/ to {remote}/{target} was rejected {attempts} times because others kept pushing; "
        "nothing is lost: the next tick re-reads the ledger and adopts any job submitted here by its labels"
    )


def prepare_runs(root: Path, *, branch: str | None, remote: str = "origin") -> bool:
    """Bring ``runs/`` from the ledger branch into the work tree; False when the branch does not exist yet."""
    if not branch:
        return False
    repo = GitRepo.open(Path(root), remote)
    repo.check_branch_name(branch)
    with refusing_unsafe(branch, ledger=True, remote=remote):
        repo.check_worktree_runs()
        tip = repo.fetch(branch)
        if tip is None:
            repo.git("update-ref", "-d", BASE_REF, check=False)
            return False
        repo.checkout_runs(tip, mirror=True)
    repo.git("update-ref", BASE_REF, tip)
    return True


def check_runs(root: Path, *, remote: str = "origin") -> None:
    """Before a step writes runs/: it must be a real folder of the checkout with no symlink in it (GitError)."""
    repo = GitRepo.open(Path(root), remote)
    with refusing_unsafe("", ledger=False, remote=remote):
        repo.check_worktree_runs()


@contextlib.contextmanager
def refusing_unsafe(branch: str, *, ledger: bool, remote: str = "origin") -> Iterator[None]:
    """Turn :class:`UnsafeTree` into a :class:`GitError` that names the branch (or the work tree) and the fix."""
    try:
        yield
    except UnsafeWorktree as exc:
        raise GitError(
            f"refusing to write runs/: {'; '.join(exc.problems)}. The bot writes only regular files inside "
            "runs/, never through a symlink. Fix: make runs/ a plain folder of the checkout (remove the symlink, "
            "and the commit that added it), then run again; nothing was written") from None
    except UnsafeTree as exc:
        which = f"ledger branch {branch}" if ledger else f"branch {branch}"
        raise GitError(
            f"refusing the {which}: {'; '.join(exc.problems)}. The bot takes only regular files at plain "
            f"paths under runs/ from it, so it wrote nothing. Fix: restore {branch} to its last good commit "
            f"(`git log {remote}/{branch}`, then `git push --force {remote} <good commit>:{branch}`), and let only "
            "the bot and people you trust push to it") from None


def ledger_branch_from_env() -> str | None:
    return os.environ.get(LEDGER_BRANCH_ENV, "").strip() or None


# --- the decisions ---------------------------------------------------------------


def _target(repo: GitRepo, branch: str | None) -> tuple[str, str | None, bool]:
    """(branch to push, base of this step's changes, ledger-branch mode)."""
    wanted = ledger_branch_from_env() if branch is None else (branch.strip() or None)
    current = repo.current_branch()
    if wanted is None or wanted == current:
        if current is None:
            raise GitError("the checkout is on a detached HEAD, so there is no branch to push runs/ to; "
                           "check out the default branch, or set ledger-branch")
        return current, repo.rev("HEAD"), False
    repo.check_branch_name(wanted)
    return wanted, repo.rev(BASE_REF), True


def _build_commit(repo: GitRepo, tip: str | None, *, ours: dict[str, str], changed: list[str],
                  our_ledger: str, message: str) -> str | None:
    """A commit on ``tip`` with this step's changes to runs/; None when it would change nothing."""
    remote = repo.tree_runs(tip)
    lines = []
    for path in changed:
        oid = ours.get(path)
        if path == repo.ledger and oid is not None:
            theirs = repo.blob(remote[path]).decode("utf-8") if path in remote else ""
            merged = merge_ledger(theirs, our_ledger).encode()
            write_file(repo.runs_file(path), merged)
            oid = repo.write_blob(merged)
        lines.append(f"100644 {oid}\t{path}" if oid else f"0 {ZERO}\t{path}")
    tree, parent_tree = repo.write_tree(tip, lines), repo.tree_of(tip)
    if tree == parent_tree:
        return None
    strays = outside_runs(repo.changed_paths(parent_tree, tree), repo.prefix)
    if strays:
        raise GitError(f"refusing to commit {', '.join(strays)}: the bot commits only runs/ "
                       "(program.md on the default branch is written by people, never by the bot)")
    return repo.commit_tree(tree, tip, message, BOT_IDENTITY)


def _advance(repo: GitRepo, *, base: str | None, commit: str, target: str, ledger_mode: bool) -> None:
    """Make the local refs, index and runs/ match what was pushed."""
    repo.git("update-ref", f"refs/remotes/{repo.remote}/{target}", commit)
    if ledger_mode:
        repo.git("update-ref", BASE_REF, commit)
    elif base is None or repo.is_ancestor(base, commit):  # a fast-forward of the checkout, as in Actions
        repo.git("update-ref", "-m", "mlr: publish runs/", f"refs/heads/{target}", commit)
        repo.move_checkout(base, commit)
    # else the checkout has commits of its own: it is left for its owner to pull.
    repo.checkout_runs(commit)


# --- reading other branches (for the action's safety checks) -----------------------


def checkout_branch(root: Path) -> str | None:
    """The branch checked out at ``root``; None on a detached HEAD."""
    return GitRepo.open(Path(root), "origin").current_branch()


def remote_default_branch(root: Path, *, remote: str = "origin") -> str | None:
    """The remote's default branch, asked of the remote itself (``git ls-remote --symref``)."""
    repo = GitRepo.open(Path(root), remote)
    proc = repo.git("ls-remote", "--symref", remote, "HEAD", check=False)
    for line in proc.stdout.decode(errors="replace").splitlines():
        if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
            return line.removeprefix("ref: refs/heads/").removesuffix("\tHEAD")
    return None


def show_file(root: Path, *, branch: str, path: Path, remote: str = "origin") -> str | None:
    """The text of ``path`` (in the work tree at ``root``) on the remote's ``branch``; None when it has none.

    Raises :class:`GitError` or :class:`TransientError` when the branch cannot be fetched.
    """
    repo = GitRepo.open(Path(root), remote)
    repo.check_branch_name(branch)
    tip = repo.fetch(branch)
    if tip is None:
        raise GitError(f"the branch {branch} does not exist on {remote}")
    path = Path(path)
    rel = (path.parent.resolve() / path.name).relative_to(repo.top).as_posix()
    proc = repo.git("show", f"{tip}:{rel}", check=False)
    return proc.stdout.decode("utf-8") if proc.returncode == 0 else None
