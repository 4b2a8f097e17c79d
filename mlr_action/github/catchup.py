"""A run whose commit is behind the tip only by commits to ``runs/`` is at the tip: runs/ is brought there first.

Without ``ledger-branch`` the bot pushes ``runs/`` to the default branch, so a
run queued in the workflow's concurrency group (a job's wake-up dispatched
during a tick, a cron tick behind a lingering one) starts at a commit the bot
has since moved past. :func:`runs_only_between` tells such a run from a stale
one; :func:`catch_up` then moves the checkout to the tip before the step.

Guarantees:

- A run is at the tip only when its commit is an ancestor of the tip, at
  most :data:`MAX_COMMITS` commits behind, no commit between them is a merge,
  every one of them changes only paths under the campaign's ``runs/``, and the
  two trees differ only there. Anything else (a different ``program.md``,
  script, module, workflow file or action, even one changed and changed back;
  another campaign's ``runs/``; a rewritten history) keeps the run stale, so a
  re-run of an old workflow run still spends nothing
  (:func:`mlr_action.shell.authority.stale_reasons`).
- :func:`catch_up` fast-forwards the checked-out branch and rewrites only
  ``runs/`` in the work tree (through :mod:`mlr_action.github.gitrepo`'s checks: no
  symlink, nothing outside runs/). It is called only on a run that is stale by
  its commit, so a tick with nothing to catch up makes no extra request.
- :func:`moved_outside_runs` (before each step a lingering tick takes): the
  tip has moved other than in ``runs/``, so the tick's authority is old.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mlr_action.github.gitrepo import GitRepo
from mlr_action.github.gitsync import outside_runs

if TYPE_CHECKING:
    from mlr_action.shell.authority import Snapshot

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
MAX_COMMITS = 100  # a tick pushes a few commits; this bounds what a queued run may be behind


def runs_only_between(repo: GitRepo, old: str, new: str, *, branch: str) -> list[str]:
    """Why ``old`` is not ``new`` up to ``runs/``; empty when every commit between them touches only runs/."""
    if not repo.is_ancestor(old, new) and repo.out("rev-parse", "--is-shallow-repository") == "true":
        repo.git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", f"--depth={MAX_COMMITS + 1}", repo.remote,
                 f"+refs/heads/{branch}:refs/remotes/{repo.remote}/{branch}", check=False)
    if repo.rev(old) is None or not repo.is_ancestor(old, new):
        return [f"{old[:12]} is not in the history of {branch} ({new[:12]})"]
    lines = repo.out("rev-list", "--parents", f"--max-count={MAX_COMMITS + 1}", f"{old}..{new}").splitlines()
    if len(lines) > MAX_COMMITS:
        return [f"{branch} is more than {MAX_COMMITS} commits ahead of {old[:12]}"]
    reasons = []
    for line in lines:
        commit, *parents = line.split()
        if len(parents) != 1:
            reasons.append(f"commit {commit[:12]} is a merge")
            continue
        strays = outside_runs(repo.changed_paths(repo.tree_of(parents[0]), repo.tree_of(commit) or ""), repo.prefix)
        if strays:
            reasons.append(f"commit {commit[:12]} changes {_few(strays)}")
    strays = outside_runs(repo.changed_paths(repo.tree_of(old), repo.tree_of(new) or ""), repo.prefix)
    if strays and not reasons:
        reasons.append(f"{old[:12]} and {new[:12]} differ in {_few(strays)}")
    return reasons


def behind_in_runs_only(snapshot: Snapshot, sha: str, *, remote: str = "origin") -> bool:
    """The run for ``sha``, whose checkout is at ``sha`` or at the tip, differs from the tip only in runs/."""
    repo = GitRepo.open(snapshot.root, remote)
    if repo.rev("HEAD") not in (sha, snapshot.commit):
        return False
    return not runs_only_between(repo, sha, snapshot.commit, branch=snapshot.branch)


def catch_up(snapshot: Snapshot, *, remote: str = "origin") -> None:
    """Fast-forward the checked-out branch to the tip and bring runs/ there (only runs/ differs)."""
    repo = GitRepo.open(snapshot.root, remote)
    head, branch = repo.rev("HEAD"), repo.current_branch()
    if head == snapshot.commit:
        repo.checkout_runs(snapshot.commit, mirror=True)
        return
    if branch is not None:
        repo.git("update-ref", "-m", "mlr: catch up with runs/ at the tip", f"refs/heads/{branch}", snapshot.commit)
    else:
        repo.git("update-ref", "--no-deref", "HEAD", snapshot.commit)
    repo.move_checkout(head, snapshot.commit)
    repo.checkout_runs(snapshot.commit, mirror=True)


def caught_up(snapshot: Snapshot, sha: str | None, *, remote: str = "origin") -> bool:
    """The run for ``sha`` (None: the checkout's HEAD) is behind the tip only in runs/, and now at the tip."""
    sha = sha or GitRepo.open(snapshot.root, remote).rev("HEAD")
    if not sha or not _SHA.match(sha) or sha == snapshot.commit or not behind_in_runs_only(snapshot, sha, remote=remote):
        return False
    catch_up(snapshot, remote=remote)
    return True


def moved_outside_runs(snapshot: Snapshot, *, remote: str = "origin") -> str | None:
    """Why the tick's authority is old: the default branch moved other than in runs/ since it was read."""
    repo = GitRepo.open(snapshot.root, remote)
    tip = repo.fetch(snapshot.branch)
    if tip is None or tip == snapshot.commit:
        return None if tip else f"{snapshot.branch} is gone from {remote}"
    reasons = runs_only_between(repo, snapshot.commit, tip, branch=snapshot.branch)
    return f"{snapshot.branch} moved outside runs/ since this tick read it: {reasons[0]}" if reasons else None


def _few(paths: list[str]) -> str:
    shown = ", ".join(paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
