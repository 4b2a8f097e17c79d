"""Nothing is spent that cannot be recorded: the gate a step passes before each spend (DESIGN.md section 9).

Guarantees:

- :func:`record_before` hands every row written so far to the step's
  ``publish`` (in GitHub Actions: a commit of ``runs/`` pushed to the remote),
  with a commit message that says what the step is about to do and what it
  did since its last publish. When ``publish`` is None (a local step) the
  appended, fsynced rows are the record and nothing is done.
- :func:`commit_message` is the one builder of every commit message of
  ``runs/`` (mid-step here, at the end of a step in the action and the github
  forge): its subject (at most :data:`SUBJECT_CHARS`) says what this commit
  adds, the events after the ones an earlier publish of the step committed,
  and the body lists them in full.
- A publish that fails raises :class:`Unrecorded`; the caller then spends
  nothing more in this tick. :func:`exit_code` is 2 when a person must act (a
  protected branch, a missing permission: a
  :class:`~mlr_action.core.jobs.PermanentError`) and 1 otherwise (the
  next tick retries).
- Pure apart from the ``publish`` call it is given.
"""

from __future__ import annotations

import re
from typing import Callable

from mlr_action.core.jobs import BackendError, PermanentError

Publish = Callable[[str], object]


class Unrecorded(Exception):
    """The rows before a spend could not be published, so the spend does not happen."""

    def __init__(self, what: str, error: BackendError) -> None:
        super().__init__(what)
        self.what, self.error = what, error

    @property
    def exit_code(self) -> int:
        return 2 if isinstance(self.error, PermanentError) else 1


SUBJECT_CHARS = 72
_JOB_ID = re.compile(r"\b([0-9a-f]{4})[0-9a-f]{8,}\b")


def commit_message(events: list[str], *, since: int = 0, before: str | None = None) -> str:
    """A commit of ``runs/``: ``mlr: <what this commit adds>``, each added event in full below.

    ``since`` is how many of the step's ``events`` an earlier publish of the same step committed: the
    subject and the body name the ones after them. ``before`` is what the step is about to do, for a publish
    in the middle of a step (``mlr: record before submitting 2 job(s): ...``).
    """
    added = [" ".join(e.split()) for e in events[since:] if e.strip()]
    head = f"mlr: record before {' '.join(before.split())}" if before else "mlr"
    subject = _subject(head, added) if added else (head if before else "mlr: update runs/")
    shown_whole = len(added) == 1 and subject == f"{head}: {added[0]}"
    body = [] if shown_whole or not added else [f"- {line}" for line in added]
    if before:
        body += ["", f"(recorded before {before})"] if body else [f"(recorded before {before})"]
    return subject + "\n" + ("\n" + "\n".join(body) + "\n" if body else "")


def _subject(head: str, lines: list[str]) -> str:
    """``head: first; second`` with what matters most first, as many as fit, then ``(+N more)``."""
    lines = sorted((_JOB_ID.sub(r"\1…", line) for line in lines), key=_weight)  # stable
    subject, shown = f"{head}: {lines[0]}", 1
    for line in lines[1:]:
        if len(subject) + 2 + len(line) > SUBJECT_CHARS:
            break
        subject, shown = f"{subject}; {line}", shown + 1
    more = f" (+{len(lines) - shown} more)" if shown < len(lines) else ""
    room = SUBJECT_CHARS - len(more)
    if len(subject) > room:
        subject = subject[: room - 1].rstrip() + "…"
    return subject + more


def _weight(event: str) -> int:
    """Stops and human controls first, then experiments, then the rest."""
    if event.startswith(("stopped", "paused", "resumed", "program.md changed")):
        return 0
    if event.startswith("iter "):
        return 1
    return 2


def record_before(publish: Publish | None, events: list[str], what: str, *, since: int = 0) -> int:
    """Publish every row so far before ``what``; raise :class:`Unrecorded` when that fails.

    ``since`` is how many of ``events`` the step's last publish covered; returns how many this one covers.
    """
    if publish is None:
        return since
    try:
        publish(commit_message(events, since=since, before=what))
    except BackendError as exc:
        raise Unrecorded(what, exc) from None
    return len(events)
