"""Which Hub repos of discarded runs may be deleted at the stop (``allow_deletes``), decided without I/O.

Guarantees:

- Nothing is ever listed unless the envelope says ``allow_deletes: true`` and
  the campaign has stopped.
- Only the ``output_repo`` the bot itself gave a finished, *discarded*
  experiment (its ``MLR_OUTPUT_REPO``), and only when it matches an
  ``output_repos`` glob. Never a repo of a kept experiment (the best one
  included), even when a discarded experiment names the same repo.
- Idempotent: a repo recorded on an earlier ``deleted`` event row (deleted,
  already missing, or refused) is not listed again.
"""

from __future__ import annotations

import fnmatch

from mlr_action.ledger import FINISHED, EventRow
from mlr_action.program import Program
from mlr_action.state import CampaignState

DELETED_EVENT = "deleted"
RECORD_KEYS = ("repos_deleted", "repos_missing", "repos_refused")


def repos_to_delete(program: Program, state: CampaignState) -> list[str]:
    """The repos to delete now, in iter order."""
    envelope = program.envelope
    if not envelope.allow_deletes or state.stopped is None:
        return []
    kept = {e.output_repo for e in state.experiments.values() if e.decision == "keep" and e.output_repo}
    if state.best is not None and state.best.output_repo:
        kept.add(state.best.output_repo)
    handled = handled_repos(state)
    out: list[str] = []
    for exp in state.experiments.values():
        repo = exp.output_repo
        if not repo or exp.status not in FINISHED or exp.decision != "discard":
            continue
        if repo in kept or repo in handled or repo in out:
            continue
        if any(fnmatch.fnmatchcase(repo, glob) for glob in envelope.output_repos):
            out.append(repo)
    return out


def handled_repos(state: CampaignState) -> set[str]:
    """Every repo an earlier deleted event row recorded."""
    done: set[str] = set()
    for event in state.events:
        if event.event == DELETED_EVENT:
            for key in RECORD_KEYS:
                value = getattr(event, key, None) or []
                done.update(value if isinstance(value, list) else list(value))
    return done


def deleted_row(*, ts: str, deleted: list[str], missing: list[str], refused: dict[str, str]) -> EventRow:
    """The event row that records one round of deletions."""
    parts = []
    if deleted:
        parts.append(f"deleted {len(deleted)} Hub repo(s) of discarded runs: {', '.join(deleted)}")
    if missing:
        parts.append(f"{len(missing)} did not exist: {', '.join(missing)}")
    if refused:
        parts.append("refused: " + "; ".join(f"{repo} ({why})" for repo, why in refused.items()))
    return EventRow(event=DELETED_EVENT, ts=ts, reason="allow_deletes", detail="; ".join(parts),  # type: ignore[arg-type]
                    repos_deleted=deleted, repos_missing=missing, repos_refused=refused)
