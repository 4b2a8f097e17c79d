"""Whether ``mlr reproduce ITER --run`` may run the commit a ledger row names (DESIGN.md section 9).

A ledger row is data that anyone with push access can write: its ``commit`` may name any object, such as a
commit on a branch nobody merged that holds a malicious script. So, before anything is read or run:

- :func:`commit_problem`: the field must be a full object name (40 lowercase hexadecimal digits, 64 in a
  SHA-256 repository), never a ref, a revision expression or an option git would read;
- :func:`unmerged_reason`: ``--run`` runs a commit only when it is an ancestor of the default branch's tip
  (``origin/<default>`` when the checkout has the remote ``origin``, else ``HEAD``): code that was merged,
  which is what authorized the spend. The reason says how to proceed by hand.

Pure but for read-only git commands on the local clone (no fetch: a stale tracking ref is said, not updated).
"""

from __future__ import annotations

import re

from mlr_action.github.gitrepo import GitRepo

_OBJECT_NAME = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def commit_problem(commit: object) -> str | None:
    """Why the row's ``commit`` is not an object name; None when it is one."""
    if isinstance(commit, str) and _OBJECT_NAME.fullmatch(commit):
        return None
    shown = repr(commit)[:60]
    return (f"the row's commit {shown} is not a commit id (40 hexadecimal digits, 64 in a SHA-256 repository); a "
            "ledger row is data and this one was not written by the bot: nothing is read or run from it")


def default_tip(repo: GitRepo) -> tuple[str, str | None]:
    """(name, commit) of what counts as merged: ``origin/<default>`` with a remote ``origin``, else ``HEAD``."""
    if "origin" not in repo.out("remote", check=False).split():
        return "HEAD", repo.rev("HEAD")
    ref = repo.out("symbolic-ref", "--quiet", "refs/remotes/origin/HEAD", check=False)
    if not ref.startswith("refs/remotes/origin/"):
        from mlr_action.github.gitsync import remote_default_branch

        branch = remote_default_branch(repo.top)
        ref = f"refs/remotes/origin/{branch}" if branch else ""
    if not ref:
        return "origin's default branch", None
    return ref.removeprefix("refs/remotes/"), repo.rev(ref)


def unmerged_reason(repo: GitRepo, commit: str) -> str | None:
    """Why ``--run`` must not run ``commit`` (not on the default branch); None when it may."""
    name, tip = default_tip(repo)
    if tip is None:
        return (f"{name} is not known in this clone, so commit {commit[:12]} cannot be shown to be merged code; "
                "`git fetch origin` (and `git remote set-head origin --auto`), then run this again")
    if repo.is_ancestor(commit, tip):
        return None
    return (f"commit {commit[:12]} is not on {name} (tip {tip[:12]}): `--run` runs only merged code, since a "
            "ledger row is data anyone with push access can write. If it was merged since, `git fetch origin`. "
            f"Otherwise review it (`git log -p {name}..{commit}`) and, if you trust it, run the command above "
            f"yourself in a checkout of it (`git worktree add DIR {commit}`)")
