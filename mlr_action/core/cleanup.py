"""Which Hub repos of discarded runs may be deleted at the stop (``allow_deletes``), decided without I/O.

A ledger row is data (DESIGN.md section 9): a ledger-branch writer can flip
the best run to ``discard``, or plant a discarded row that names any repo an
``output_repos`` glob matches. So the ledger only proposes; the backend's own
record decides.

Guarantees:

- Nothing is ever listed unless the envelope says ``allow_deletes: true`` and
  the campaign has stopped.
- A repo is deleted only when all of these hold for its iter: the backend
  lists exactly one job of the campaign (by its labels) for the iter, and it
  finished; replaying the metrics in those jobs' own logs, in iter order,
  the bot's rule (keep only when better than the running best by more than
  ``min_delta``) makes it a discard; the ledger recorded it finished and discarded; and the
  repo is :func:`~mlr_action.core.program_paths.output_repo_for` that iter (what the
  job was given as ``MLR_OUTPUT_REPO``), the one its row names, matching an
  ``output_repos`` glob. Never a repo of a kept run (the best included), by
  the ledger's word or the backend's, and never one of the final
  evaluation's repeats (its jobs are left out of the replay too).
- When unsure (no job listed, two jobs for one iter, a job not finished, a
  row that names another repo, a metric the logs do not give), nothing is
  deleted: the repo is recorded as kept, with why.
- Idempotent: a repo recorded on an earlier ``deleted`` event row (deleted,
  already missing, refused or kept) is not considered again.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from mlr_action.core.jobs import JobStage, JobView
from mlr_action.core.ledger import FINISHED, EventRow
from mlr_action.core.metric import read_metric
from mlr_action.core.program import Program
from mlr_action.core.program_paths import output_repo_for
from mlr_action.core.state import CampaignState

DELETED_EVENT = "deleted"
RECORD_KEYS = ("repos_deleted", "repos_missing", "repos_refused", "repos_kept")


@dataclass(frozen=True)
class Cleanup:
    """What to delete now, and what to keep (with why) though the ledger called it discarded."""

    delete: list[str] = field(default_factory=list)
    keep: dict[str, str] = field(default_factory=dict)


def candidates(program: Program, state: CampaignState) -> dict[int, str]:
    """The ledger's discarded, finished runs not handled yet, as {iter: the repo program.md gives it}."""
    envelope = program.envelope
    if not envelope.allow_deletes or state.stopped is None:
        return {}
    handled = handled_repos(state)
    out: dict[int, str] = {}
    for exp in state.experiments.values():
        if exp.status not in FINISHED or exp.decision != "discard":
            continue
        repo = output_repo_for(envelope, state.campaign_id or "", exp.iter)
        if repo and repo not in handled and any(fnmatch.fnmatchcase(repo, g) for g in envelope.output_repos):
            out[exp.iter] = repo
    return out


def repos_to_delete(program: Program, state: CampaignState, *, listed: list[JobView],
                    logs: dict[str, str]) -> Cleanup:
    """The repos to delete now (in iter order) and the candidates kept, from the backend's ``listed`` jobs
    of the campaign and their ``logs`` (by job id; a completed job's logs give its metric)."""
    wanted = candidates(program, state)
    if not wanted:
        return Cleanup()
    jobs: dict[int, list[JobView]] = {}
    for view in listed:
        if view.iter is not None and view.final_repeat is None:  # a repeat of the final evaluation is no search result
            jobs.setdefault(view.iter, []).append(view)
    kept = _kept_by_backend(program, jobs, logs) | _kept_by_ledger(state)
    repo_of = {i: output_repo_for(program.envelope, state.campaign_id or "", i) for i in kept}
    kept_repos = {repo for repo in repo_of.values() if repo}
    delete: list[str] = []
    keep: dict[str, str] = {}
    for iteration, repo in wanted.items():
        why = _doubt(iteration, repo, state, jobs, kept, kept_repos)
        if why:
            keep[repo] = why
        elif repo not in delete:
            delete.append(repo)
    return Cleanup(delete=delete, keep=keep)


def _doubt(iteration: int, repo: str, state: CampaignState, jobs: dict[int, list[JobView]], kept: set[int],
           kept_repos: set[str]) -> str | None:
    """Why the repo of ``iteration`` is kept; None when it may be deleted."""
    views = jobs.get(iteration, [])
    if not views:
        return f"the backend lists no job of this campaign for iter {iteration}"
    if len(views) > 1:
        return f"the backend lists {len(views)} jobs for iter {iteration}"
    if not views[0].stage.terminal:
        return f"its job {views[0].job_id} has not finished"
    if iteration in kept or repo in kept_repos:
        return "it is the repo of a kept run"
    named = state.experiments[iteration].output_repo
    if named != repo:
        return f"its ledger row names {named or 'no repo'}, not {repo}, the repo its job was given"
    return None


def _kept_by_backend(program: Program, jobs: dict[int, list[JobView]], logs: dict[str, str]) -> set[int]:
    """Iters the bot's rule keeps, replayed in iter order over the metrics in the listed jobs' own logs.

    An iter whose metric is unknown (two jobs, no logs) counts as kept and leaves the running best as it was:
    a lower running best only keeps more.
    """
    kept: set[int] = set()
    best: float | None = None
    for iteration in sorted(jobs):
        views = jobs[iteration]
        if len(views) != 1:
            kept.add(iteration)
            continue
        view = views[0]
        if view.stage is not JobStage.COMPLETED:
            continue  # an error, a cancel, a vanished job: never kept by the bot
        if view.job_id not in logs:
            kept.add(iteration)
            continue
        value = read_metric(logs[view.job_id], program.campaign.metric).value
        if value is not None and program.improves(value, best):
            best = value
            kept.add(iteration)
    return kept


def _kept_by_ledger(state: CampaignState) -> set[int]:
    kept = {e.iter for e in state.experiments.values() if e.decision == "keep"}
    return kept | ({state.best.iter} if state.best is not None else set())


def handled_repos(state: CampaignState) -> set[str]:
    """Every repo an earlier deleted event row recorded."""
    done: set[str] = set()
    for event in state.events:
        if event.event == DELETED_EVENT:
            for key in RECORD_KEYS:
                value = getattr(event, key, None) or []
                done.update(value if isinstance(value, list) else list(value))
    return done


def deleted_row(*, ts: str, deleted: list[str], missing: list[str], refused: dict[str, str],
                kept: dict[str, str] | None = None) -> EventRow:
    """The event row that records one round of deletions (and the candidates kept, so they are not tried again)."""
    parts = []
    if deleted:
        parts.append(f"deleted {len(deleted)} Hub repo(s) of discarded runs: {', '.join(deleted)}")
    if missing:
        parts.append(f"{len(missing)} did not exist: {', '.join(missing)}")
    if refused:
        parts.append("refused: " + "; ".join(f"{repo} ({why})" for repo, why in refused.items()))
    if kept:
        parts.append("kept, though the ledger calls them discarded: "
                     + "; ".join(f"{repo} ({why})" for repo, why in kept.items()))
    return EventRow(event=DELETED_EVENT, ts=ts, reason="allow_deletes", detail="; ".join(parts),  # type: ignore[arg-type]
                    repos_deleted=deleted, repos_missing=missing, repos_refused=refused, repos_kept=kept or {})
