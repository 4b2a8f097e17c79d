"""What next: after reconciling, whether the campaign stops, waits, resubmits or asks for more (DESIGN.md section 4).

A step reconciles (:mod:`mlr_action.core.reconcile`), decides here, and passes
each proposal through admission (:mod:`mlr_action.core.admission`).

Guarantees, all without I/O or a clock of its own (given the same inputs, the same plan):

- :func:`plan_next` decides whether the campaign stops (target, budget with the
  reserve kept, and the final evaluation's repeats kept out of ``max_jobs``;
  patience, repeated errors), waits, resubmits a search intent whose
  job never reached the backend, or asks the proposer for more. The budget and
  the jobs in flight it counts are ``used`` (:func:`mlr_action.core.budget.usage`:
  at least what the backend reports), never the ledger's word alone. An intent
  that may already be a job is resolved before anything else is decided, and a
  stop that holds while jobs are in flight waits for them to end.
- It never asks for a job the budget cannot pay for (:func:`default_jobs_that_fit`).
- :func:`resumption`: after a stop, a changed program.md (say, a raised budget)
  resumes the campaign; a stop by a person stays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mlr_action.core.admission import search_budget_problems
from mlr_action.core.budget import Usage, billed_hours
from mlr_action.core.flavors import price_per_hour
from mlr_action.core.ledger import EventRow, ExperimentRow
from mlr_action.core.program import Program
from mlr_action.core.state import CampaignState

ERROR_STREAK_LIMIT = 3


@dataclass(frozen=True)
class Plan:
    """What the step does after reconciling. At most one of ``stop`` and work is set."""

    stop: str | None = None  # a stop reason, see mlr_action.render.stop_reasons.STOP_REASONS
    detail: str = ""
    resubmit: tuple[ExperimentRow, ...] = ()  # intents whose job never reached the backend
    propose: int = 0  # how many new proposals to ask for
    waiting: str = ""  # why nothing is submitted this tick


def stop_condition(program: Program, state: CampaignState, used: Usage, prices: dict[str, float] | None) -> tuple[str, str] | None:
    """The first stop condition that holds, as (reason, detail)."""
    best = state.best
    if best is not None and program.reached_target(best.metric):
        return "target", f"{program.campaign.metric}={best.metric:g} at iter {best.iter} reached the target {program.campaign.target:g}"
    errors = state.error_streak()
    if errors >= ERROR_STREAK_LIMIT:
        return "errors", f"the last {errors} experiments all failed; the last error: {state.finished[-1].error or 'unknown'}"
    patience = program.campaign.patience
    streak = state.streak_without_improvement()
    if patience is not None and streak >= patience:
        return "patience", f"{streak} experiments in a row without improvement (patience {patience})"
    problems = search_budget_problems(program, used, flavor=program.default_flavor, timeout_s=program.default_timeout_s,
                                      prices=prices)
    if problems:
        return "budget", "; ".join(problems)
    return None


def plan_next(program: Program, state: CampaignState, *, used: Usage, prices: dict[str, float] | None = None) -> Plan:
    if state.stopped is not None:
        return Plan(waiting="the campaign has stopped")
    # Jobs in flight as the ledger or the backend says (``used``): a row that marks a live job finished frees no slot.
    in_flight = max(sum(1 for e in state.in_flight if e.job_id), used.in_flight)
    # A final evaluation's intent is the final evaluation's to resubmit (mlr_action.core.final), never the search's.
    intents = tuple(e for e in state.in_flight if not e.job_id and e.final_of is None)
    if state.paused:
        return Plan(waiting="paused by a person")
    # An intent may already be a job (its submit's answer was lost); it must be
    # resolved before anything else is decided.
    stop = stop_condition(program, state, used, prices) if not intents else None
    if stop is not None:
        if in_flight:
            return Plan(waiting=_stop_after(program, used, stop, in_flight))
        return Plan(stop=stop[0], detail=stop[1])
    free = program.envelope.max_parallel - in_flight
    if free <= 0:
        return Plan(waiting=f"{in_flight} job(s) in flight, max_parallel {program.envelope.max_parallel}")
    resubmit = intents[:free]
    room = default_jobs_that_fit(program, used, prices, limit=free - len(resubmit))
    if not resubmit and not room:
        return Plan(waiting=f"{in_flight} job(s) in flight; the budget has room for no other until they finish")
    return Plan(resubmit=resubmit, propose=room)


# What may still keep the campaign going when the jobs in flight end, by stop reason (None: nothing can).
_UNLESS = {"patience": "one of them improves on the best", "errors": "one of them succeeds",
           "budget": "what they end up charged leaves room for another"}


def _stop_after(program: Program, used: Usage, stop: tuple[str, str], in_flight: int) -> str:
    """What a stop condition that holds while jobs are in flight means: "stopping" only when their end cannot undo it.

    A reached target stays reached and a spent ``max_jobs`` stays spent; but a job in flight is charged its
    full timeout until it ends, may improve on the best, or may succeed after failures.
    """
    reason, detail = stop
    jobs_spent = used.jobs + 1 > program.envelope.max_jobs - program.final_jobs
    unless = None if reason == "target" or reason == "budget" and jobs_spent else _UNLESS.get(reason)
    if unless is None:
        return f"stopping ({reason}): waiting for {in_flight} job(s) in flight"
    return f"{in_flight} job(s) in flight; {detail}: the campaign stops when they end unless {unless}"


def default_jobs_that_fit(program: Program, used: Usage, prices: dict[str, float] | None, *, limit: int) -> int:
    """How many more jobs of the default flavor and timeout fit the budget, up to ``limit``.

    A free ``max_parallel`` slot the budget cannot pay for is not filled: asking for it would only have its
    proposal refused as a breach of the envelope, when the campaign is simply near the end of its budget.
    """
    flavor, timeout_s = program.default_flavor, program.default_timeout_s
    job_s = timeout_s + used.starting_s
    one = Usage(jobs=1, walltime_s=job_s, cost_usd=price_per_hour(flavor, prices) * billed_hours(job_s))
    count = 0
    while count < limit:
        planned = replace(used, jobs=used.jobs + count * one.jobs, walltime_s=used.walltime_s + count * one.walltime_s,
                          cost_usd=used.cost_usd + count * one.cost_usd)
        if search_budget_problems(program, planned, flavor=flavor, timeout_s=timeout_s, prices=prices):
            break
        count += 1
    return count


def resumption(program: Program, state: CampaignState, *, ts: str) -> EventRow | None:
    """After a stop, a changed program.md (say, a raised budget) resumes the campaign."""
    stopped = state.stopped
    if stopped is None or stopped.reason == "human" or stopped.program in (None, *program.fingerprints):
        return None
    return EventRow(event="resumed", ts=ts, reason="program-changed",
                    detail="program.md changed after the stop; the new envelope is the approval", program=program.fingerprint)
