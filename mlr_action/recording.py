"""Nothing is spent that cannot be recorded: the gate a step passes before each spend (DESIGN.md section 9).

Guarantees:

- :func:`record_before` hands every row written so far to the step's
  ``publish`` (in GitHub Actions: a commit of ``runs/`` pushed to the remote),
  with a commit message that says what the step did and what it is about to
  do. When ``publish`` is None (a local step) the appended, fsynced rows are
  the record and nothing is done.
- A publish that fails raises :class:`Unrecorded`; the caller then spends
  nothing more in this tick. :func:`exit_code` is 2 when a person must act (a
  protected branch, a missing permission: a
  :class:`~mlr_action.backends.base.PermanentError`) and 1 otherwise (the
  next tick retries).
- Pure apart from the ``publish`` call it is given.
"""

from __future__ import annotations

from typing import Callable

from mlr_action.backends.base import BackendError, PermanentError

Publish = Callable[[str], object]


class Unrecorded(Exception):
    """The rows before a spend could not be published, so the spend does not happen."""

    def __init__(self, what: str, error: BackendError) -> None:
        super().__init__(what)
        self.what, self.error = what, error

    @property
    def exit_code(self) -> int:
        return 2 if isinstance(self.error, PermanentError) else 1


def commit_message(events: list[str], what: str) -> str:
    """The commit of a publish in the middle of a step: what the step did so far, and what comes next."""
    lines = [" ".join(e.split()) for e in events if e.strip()]
    subject = "mlr: " + ("; ".join(lines) or "record runs/")
    subject = subject if len(subject) <= 100 else subject[:99] + "…"
    body = "\n".join(f"- {line}" for line in lines)
    return f"{subject}\n\n{body}\n\n(recorded before {what})\n"


def record_before(publish: Publish | None, events: list[str], what: str) -> None:
    """Publish every row so far before ``what``; raise :class:`Unrecorded` when that fails."""
    if publish is None:
        return
    try:
        publish(commit_message(events, what))
    except BackendError as exc:
        raise Unrecorded(what, exc) from None
