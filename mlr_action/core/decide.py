"""The pure core of a step: given what is known, decide what to record and what to do next.

Guarantees (DESIGN.md section 4), all without I/O or a clock of its own:

- :func:`reconcile` turns what the backend observed into ledger rows: it adopts
  jobs that carry the campaign's labels but are missing from the ledger (a
  crash between submit and commit), records stage changes, and evaluates
  finished jobs in iter order: the metric from the logs (none means error,
  never zero), keep only when better than the running best by more than
  ``min_delta`` (strictly better when it is 0). A final evaluation's row
  (``final_of``) is evaluated on the final metric and never kept, discarded
  or made the best; a job of ours whose rows were lost is adopted as what
  its labels say, a search iter or a repeat of the final evaluation. A
  finished job whose log is not proven whole yet (``pending``) is left in
  flight; one whose log could not be read whole in time (``unreadable``) is
  an error that says so, never a result from part of its log.
- :func:`plan_next` decides whether the campaign stops (target, budget with the
  reserve kept, and the final evaluation's repeats kept out of ``max_jobs``;
  patience, repeated errors), waits, resubmits a search intent whose
  job never reached the backend, or asks the proposer for more. The budget and
  the jobs in flight it counts are ``used`` (:func:`mlr_action.core.budget.usage`:
  at least what the backend reports), never the ledger's word alone.
- :func:`admit` is the gate from proposal to submission: it validates the
  proposal against the envelope (``max_parallel`` too) and the search space
  and returns either the intent row to write before submitting, or every
  reason it was refused. :func:`readmitted` gives an intent read back from
  the ledger the output repo program.md gives its iter, whatever the row
  named: a ledger row never decides where a job writes.
- Given the same inputs these functions give the same outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from mlr_action.core.jobs import COMMIT_LABEL, JobStage, JobView
from mlr_action.core.budget import Usage, billed_hours, budget_problems, charged_cost, charged_seconds
from mlr_action.core.durations import format_duration
from mlr_action.core.flavors import price_per_hour
from mlr_action.core.ledger import EventRow, ExperimentRow, Row
from mlr_action.core.metric import log_tail, read_metric
from mlr_action.core.program import Program, output_repo_for
from mlr_action.core.proposal import Proposal
from mlr_action.core.state import CampaignState, config_key

ERROR_STREAK_LIMIT = 3

_STATUS_OF_STAGE = {JobStage.SCHEDULING: "submitted", JobStage.RUNNING: "running"}


def _job_row(row: ExperimentRow, ts: str, **update: Any) -> ExperimentRow:
    return row.model_copy(update={"ts": ts, **update})


def _adopt(program: Program, state: CampaignState, view: JobView, ts: str) -> Row:
    """A job of ours that the ledger does not know: attach it to its intent, or record it."""
    intent = state.row(view.iter) if view.iter is not None else None
    status = _STATUS_OF_STAGE.get(view.stage, "submitted")
    commit = view.labels.get(COMMIT_LABEL)  # the commit that authorized the job, as the bot labelled it
    if intent is not None and intent.status == "proposed" and not intent.job_id:
        return _job_row(intent, ts, job_id=view.job_id, status=status, commit=commit or intent.commit,
                        output_repo=output_repo_for(program.envelope, state.campaign_id or "", view.iter) or None)
    if intent is None and view.iter is not None:
        # Its rows were lost (a crash or a rejected push before they reached the remote): the job itself
        # says what it runs; what it does not say is charged as the most expensive job the envelope allows.
        timeout_s = view.timeout_s or program.envelope.max_timeout
        final_of, repeat = view.final_repeat or (None, None)
        return ExperimentRow(
            iter=view.iter, ts=ts, status=status, job_id=view.job_id, config=_config_of(program, view.args),
            timeout=format_duration(timeout_s), timeout_s=timeout_s,
            flavor=view.flavor or max(program.envelope.allowed_flavors, key=lambda f: price_per_hour(f)),
            output_repo=output_repo_for(program.envelope, state.campaign_id or "", view.iter) or None, commit=commit,
            hypothesis="(adopted: a job of this campaign that was missing from the ledger)", final_of=final_of,
            repeat=repeat,
        )
    return EventRow(
        event="escalated", ts=ts, reason="duplicate-job",
        detail=f"job {view.job_id} carries this campaign's labels for iter {view.iter}, "
        "which already has a job; it is being canceled and is not counted as a result",
        job_id=view.job_id,
    )


def _config_of(program: Program, args: list[str]) -> dict[str, Any]:
    """The search-space values among a job's ``--name=value`` args (DESIGN.md section 7), typed as the space says."""
    space, config = program.campaign.params, {}
    for arg in args:
        name, sep, text = arg.removeprefix("--").partition("=")
        spec = space.get(name) if arg.startswith("--") and sep else None
        if spec is None:
            continue
        if spec.choices is not None:
            value = next((c for c in spec.choices if str(c) == text), None)
        else:
            try:
                value = int(text) if spec.type == "int" else float(text)
            except ValueError:
                value = None
        if value is not None and spec.contains(value):
            config[name] = value
    return config


def _finish(
    program: Program, row: ExperimentRow, view: JobView, logs: str, best: float | None, ts: str,
    prices: dict[str, float] | None, unreadable: str | None = None,
) -> ExperimentRow:
    duration = view.duration_s if view.duration_s is not None else 0.0
    # HF Jobs bill every started minute: the cost is charged in whole minutes, never less than was billed.
    cost = price_per_hour(row.flavor or "", prices) * math.ceil(duration / 60) / 60
    base = {"duration_s": duration, "cost_usd": round(cost, 6), "best_so_far": best, "decision": "discard"}
    if view.stage == JobStage.DELETED and view.duration_s is None:
        # How long a vanished job ran is unknown: no duration, so the budget charges its full timeout.
        base.update(duration_s=None, cost_usd=None)
    final = row.final_of is not None
    if final:  # a repeat of the final evaluation: measured, never kept, discarded or made the best
        base.update(decision=None)
    if unreadable is not None:
        said = f"{view.message}; " if view.message and view.stage != JobStage.COMPLETED else ""
        return _job_row(row, ts, status="error", error=f"{said}the job {view.stage.value.lower()}, but {unreadable}", **base)
    if view.stage == JobStage.COMPLETED:
        reading = read_metric(logs, program.final_metric if final else program.campaign.metric)
        if reading.value is None:
            return _job_row(row, ts, status="error", error=_error_text(reading.problem, logs), **base)
        keep = not final and program.improves(reading.value, best)
        if not final:
            base.update(best_so_far=reading.value if keep else best, decision="keep" if keep else "discard")
        note = {"hub_url_note": reading.hub_url_note} if reading.hub_url_note else {}  # an off-Hub hub_url, dropped
        return _job_row(row, ts, status="completed", metric=reading.value, hub_url=reading.hub_url or row.hub_url, **note, **base)
    if view.stage == JobStage.CANCELED:
        return _job_row(row, ts, status="canceled", error=view.message or "canceled", **base)
    if view.stage == JobStage.DELETED:
        why = "the job no longer exists on the backend (deleted or expired); it is recorded, not retried"
        return _job_row(row, ts, status="error", error=why, **base)
    return _job_row(row, ts, status="error", error=_error_text(view.message or "the job failed", logs), **base)


def _error_text(message: str | None, logs: str) -> str:
    tail = log_tail(logs) if logs else ""
    return f"{message}\n{tail}".strip() if tail else (message or "")


def reconcile(
    program: Program,
    state: CampaignState,
    *,
    observed: dict[str, JobView],
    listed: list[JobView],
    logs: dict[str, str],
    ts: str,
    prices: dict[str, float] | None = None,
    pending: frozenset[str] = frozenset(),
    unreadable: dict[str, str] | None = None,
) -> list[Row]:
    """Rows that bring the ledger up to date with what the backend observed (``pending``, ``unreadable``: logs)."""
    rows: list[Row] = []
    adopted: dict[int, ExperimentRow] = {}
    for view in sorted(listed, key=lambda v: (v.iter or 0, v.job_id)):
        if view.job_id in state.known_jobs:
            continue
        row = _adopt(program, state, view, ts)
        rows.append(row)
        if isinstance(row, ExperimentRow):
            adopted[row.iter] = row
            observed = {view.job_id: view, **observed}
    best = state.best_metric
    for iteration in sorted({*state.experiments, *state.finals, *adopted}):
        exp = adopted.get(iteration) or state.row(iteration)
        if exp is None or exp.status not in ("submitted", "running") or exp.job_id not in observed:
            continue
        view = observed[exp.job_id]
        if view.stage.terminal and exp.job_id in pending:
            continue  # its log is read again next tick
        if view.stage.terminal:
            done = _finish(program, exp, view, logs.get(exp.job_id, ""), best, ts, prices,
                           (unreadable or {}).get(exp.job_id))
            best = best if exp.final_of is not None else done.best_so_far
            rows.append(done)
        elif _STATUS_OF_STAGE[view.stage] != exp.status:
            rows.append(_job_row(exp, ts, status=_STATUS_OF_STAGE[view.stage]))
    return rows


# --- What next --------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What the step does after reconciling. At most one of ``stop`` and work is set."""

    stop: str | None = None  # a stop reason, see reports.STOP_REASONS
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


# --- Admission --------------------------------------------------------------


def _failed(program: Program, state: CampaignState) -> set[tuple[str, str]]:
    """(config, flavor) of every failed experiment: the same config on a larger flavor is another experiment."""
    return {(config_key(e.config), e.flavor or program.default_flavor) for e in state.experiments.values() if e.status == "error"}


def search_budget_problems(program: Program, used: Usage, *, flavor: str, timeout_s: int,
                           prices: dict[str, float] | None) -> list[str]:
    """Why one more search job would not fit: the reserve kept, and the final evaluation's repeats kept out of max_jobs."""
    return budget_problems(program.envelope, used, flavor=flavor, timeout_s=timeout_s, prices=prices,
                           keep_jobs=program.final_jobs)


def space_problems(program: Program, config: dict[str, Any]) -> list[str]:
    """Why ``config`` is not a point of the search space; empty when it is."""
    problems = []
    space = program.campaign.params
    for name in sorted(set(config) - set(space)):
        problems.append(f"{name} is not a param in program.md (the search space is {', '.join(space)})")
    for name, spec in space.items():
        if name not in config:
            problems.append(f"{name} is missing from the config")
        elif not spec.contains(config[name]):
            allowed = spec.choices if spec.choices is not None else f"{spec.type} in [{spec.low:g}, {spec.high:g}]"
            problems.append(f"{name}={config[name]!r} is outside the search space ({allowed})")
    return problems


def proposal_problems(program: Program, state: CampaignState, proposal: Proposal, *, used: Usage,
                      prices: dict[str, float] | None, repeat: bool = False) -> list[str]:
    """Every reason ``proposal`` may not be submitted; empty when it may.

    ``repeat``: a repeat of the final evaluation (:mod:`mlr_action.core.final`), which spends the reserve (checked
    against the whole envelope, no jobs kept back) and runs the best config again (so no failed-config rule).
    """
    config = proposal.config
    problems = space_problems(program, config)
    flavor = proposal.flavor or program.default_flavor
    timeout_s = proposal.timeout_s or program.default_timeout_s
    if flavor not in program.envelope.allowed_flavors:
        problems.append(f"flavor {flavor} is not in allowed_flavors {program.envelope.allowed_flavors}")
    if timeout_s <= 0:
        problems.append(f"timeout {timeout_s}s is not a positive duration")
    elif timeout_s > program.envelope.max_timeout:
        problems.append(f"timeout {format_duration(timeout_s)} is over max_timeout {format_duration(program.envelope.max_timeout)}")
    if not repeat and (config_key(config), flavor) in _failed(program, state):
        problems.append(f"this exact config already failed on {flavor}; the seed's rule: never retry the identical failing thing")
    if repeat:
        problems += budget_problems(program.envelope, used, flavor=flavor, timeout_s=timeout_s, prices=prices, reserve=0)
    else:
        problems += search_budget_problems(program, used, flavor=flavor, timeout_s=timeout_s, prices=prices)
    return problems


def readmit_problems(
    program: Program, state: CampaignState, intent: ExperimentRow, *, used: Usage, prices: dict[str, float] | None
) -> list[str]:
    """Why an intent whose job never reached the backend (a search iter or a final repeat) may not be submitted now.

    The intent is already charged in ``used``; it is checked against the budget
    without itself, so the envelope it was admitted under is not counted twice.
    Its row is data: a timeout that reads as none (the job would run with it,
    charged nothing) or a repeat the final block does not ask for is refused.
    """
    problems = []
    if intent.charged_timeout_s <= 0:
        problems.append(f"timeout {intent.timeout or intent.timeout_s!r} is not a positive duration")
    final, repeat = program.campaign.final, intent.final_of is not None
    if repeat and (final is None or intent.repeat is None or intent.repeat > final.repeats):
        problems.append(f"repeat {intent.repeat} is not one of the final block's {final.repeats if final else 0}")
    proposal = Proposal(config=intent.config, flavor=intent.flavor, timeout_s=intent.charged_timeout_s or None)
    return problems + proposal_problems(program, state, proposal, used=without_intent(used, intent, prices),
                                        prices=prices, repeat=repeat)


def without_intent(used: Usage, intent: ExperimentRow, prices: dict[str, float] | None) -> Usage:
    """``used`` less what it charges ``intent`` (an intent is charged as a job in flight, see budget.usage)."""
    own = Usage(jobs=1, walltime_s=charged_seconds(intent, used.starting_s),
                cost_usd=charged_cost(intent, prices, used.starting_s))
    return replace(used, jobs=used.jobs - own.jobs, walltime_s=used.walltime_s - own.walltime_s,
                   cost_usd=used.cost_usd - own.cost_usd)


def readmitted(program: Program, state: CampaignState, intent: ExperimentRow, *, commit: str | None,
               ts: str) -> tuple[ExperimentRow, str | None]:
    """An intent to resubmit as program.md gives it: its own iter's output repo and this step's ``commit``.

    A ledger row never decides where a job writes: the row is rewritten (the job spec ignores it anyway), and a
    note says so when the row named another repo. Returns the row unchanged when it already agrees.
    """
    repo = output_repo_for(program.envelope, state.campaign_id or "", intent.iter) or None
    if (intent.output_repo, intent.commit) == (repo, commit):
        return intent, None
    note = None
    if intent.output_repo != repo:
        note = (f"iter {intent.iter}: the intent named the output repo {intent.output_repo or 'none'}, which is not the "
                f"one program.md gives this iter ({repo or 'none'}); it is resubmitted with {repo or 'none'}")
    return intent.model_copy(update={"ts": ts, "output_repo": repo, "commit": commit}), note


def admit(
    program: Program, state: CampaignState, proposal: Proposal, *, iteration: int, used: Usage,
    prices: dict[str, float] | None, ts: str, commit: str | None = None,
) -> ExperimentRow | list[str]:
    """The intent row to write before submitting ``proposal``, or why it is refused.

    ``commit``: the commit that authorizes the spend (GitHub mode), recorded on the row.
    """
    problems = proposal_problems(program, state, proposal, used=used, prices=prices)
    intents = sum(1 for e in state.in_flight if not e.job_id)
    live = max(len(state.in_flight), used.in_flight + intents)
    if live >= program.envelope.max_parallel:
        problems.append(f"max_parallel={program.envelope.max_parallel} reached ({live} in flight)")
    if problems:
        return problems
    from mlr_action.core.ledger import experiment_row

    return experiment_row(
        iter=iteration, ts=ts, status="proposed", config=dict(proposal.config),
        timeout_s=proposal.timeout_s or program.default_timeout_s,
        flavor=proposal.flavor or program.default_flavor,
        hypothesis=proposal.hypothesis, reason=proposal.reason, proposer=proposal.proposer,
        output_repo=output_repo_for(program.envelope, state.campaign_id or "", iteration) or None, commit=commit,
    )


def resumption(program: Program, state: CampaignState, *, ts: str) -> EventRow | None:
    """After a stop, a changed program.md (say, a raised budget) resumes the campaign."""
    stopped = state.stopped
    if stopped is None or stopped.reason == "human" or stopped.program in (None, *program.fingerprints):
        return None
    return EventRow(event="resumed", ts=ts, reason="program-changed",
                    detail="program.md changed after the stop; the new envelope is the approval", program=program.fingerprint)
