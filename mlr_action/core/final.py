"""The clean final evaluation (the seed's reserve): the best search config run again after the stop.

A campaign with a ``final`` block goes searching -> stopped (searching done) -> final evaluation in flight ->
finished (:func:`phase`); without one, the stop is the end, as before.

Guarantees (pure: no I/O and no clock):

- It runs only after a stop for the target, patience, the budget or an exhausted search space, and only when
  the search kept a result (:func:`not_run_because` says why not): never after a stop by a person, who may be
  saving the money, nor after repeated errors, where the reserve would be spent on the same failure.
- Never past the envelope: a repeat is planned (:func:`plan`) or resubmitted
  (:func:`mlr_action.core.admission.readmit_problems`) only when it fits the whole envelope counted with
  ``used`` (the ledger and the backend's listing, jobs in flight and intents at their full timeout) with no
  reserve: the final evaluation spends the reserve, nothing past ``max_jobs``, ``max_walltime`` or
  ``max_cost_usd``; and ``max_parallel`` holds.
- Each attempt at a repeat of a search result is one iter, so one job: a repeat that completed, failed or is
  in flight is never planned again; one whose job was canceled before it finished (by a person on the backend,
  or by the bot after ``scheduling_timeout``) runs again once (:data:`RERUNS`), as a new iter, and a second
  cancel is final: the ``final`` row and the writeup then say how many repeats ran of how many. An attempt's
  iter is the next of the campaign's one sequence (never a search iter's), and its job carries the labels
  ``mlr-final-of`` and ``mlr-repeat`` besides ``mlr-campaign`` and ``mlr-iter``, so a job whose rows were lost
  is adopted as that attempt (:func:`mlr_action.core.reconcile.reconcile`), never as a search result.
- What a repeat runs comes from program.md (:func:`job_values`): the search result's config, checked against
  the search space, then ``fixed``, then the final block's ``fixed``, then that repeat's seed.
- It ends with one ``final`` event row (``plan(...).done``): ``finished`` (every repeat ran), ``unaffordable``
  (nothing in flight and the next repeat does not fit; the row says what the rest would cost and what is
  left) or ``refused`` (the result cannot be run again as program.md stands).

What it found and what it may cost, as the writeup shows it, is :mod:`mlr_action.core.final_outcome`.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

from mlr_action.core.budget import Usage, billed_hours, budget_problems, plus_intents
from mlr_action.core.durations import format_duration
from mlr_action.core.flavors import price_per_hour
from mlr_action.core.ledger import FINISHED, EventRow, ExperimentRow, experiment_row
from mlr_action.core.program import Program
from mlr_action.core.program_paths import output_repo_for
from mlr_action.core.state import CampaignState

ELIGIBLE = frozenset({"target", "patience", "budget", "exhausted"})  # the stops after which it runs
PROPOSER = "final"
SEARCHING, FINAL, FINISHED_PHASE = "searching", "final_evaluation", "finished"
RERUNS = 1  # how many times a repeat canceled before it finished runs again


def seeds(program: Program) -> list[int]:
    """The seed of each repeat: the final block's ``seeds``, or the ones after the search's own (0 when unset)."""
    final = program.campaign.final
    if final is None or final.seed_param is None:
        return []
    if final.seeds:
        return list(final.seeds)
    own = program.campaign.fixed.get(final.seed_param)
    start = own if isinstance(own, int) and not isinstance(own, bool) else 0
    return [start + k for k in range(1, final.repeats + 1)]


def not_run_because(program: Program, state: CampaignState) -> str | None:
    """Why no final evaluation runs after this stop; None when it runs (or ran)."""
    stop = state.stopped
    if program.campaign.final is None:
        return "program.md has no `final` block"
    if stop is None:
        return "the campaign has not stopped"
    if stop.reason == "human":
        return "a person stopped the campaign (a stop by a person spends nothing more)"
    if stop.reason not in ELIGIBLE:
        return ("the campaign stopped on repeated errors, which the same runs would likely repeat; fix the cause and "
                "merge a change to program.md: the campaign resumes, and its next stop runs the final evaluation")
    if state.best is None:
        return "the search kept no result to evaluate"
    return None


def pending(program: Program, state: CampaignState) -> bool:
    """Stopped, the final evaluation is to run, and it has not ended yet."""
    return state.stopped is not None and state.final_event is None and not_run_because(program, state) is None


def phase(program: Program, state: CampaignState) -> str:
    """``searching`` (running or paused), ``final_evaluation`` (stopped, repeats to run) or ``finished``."""
    if state.stopped is None:
        return SEARCHING
    return FINAL if pending(program, state) else FINISHED_PHASE


def flavor_timeout(program: Program, best: ExperimentRow) -> tuple[str, int]:
    """The flavor and timeout of each repeat: the final block's, else the search result's, else the defaults."""
    final = program.campaign.final
    assert final is not None
    flavor = final.flavor or (best.flavor if best.flavor in program.envelope.allowed_flavors else program.default_flavor)
    return flavor, final.timeout or best.charged_timeout_s or program.default_timeout_s


def target_problems(program: Program, best: ExperimentRow) -> list[str]:
    """Why the search result ``best`` cannot be run again as program.md stands; empty when it can."""
    from mlr_action.core.admission import space_problems

    problems = [f"iter {best.iter}'s config: {p}" for p in space_problems(program, best.config)]
    _, timeout_s = flavor_timeout(program, best)
    if timeout_s > program.envelope.max_timeout:
        problems.append(f"its timeout {format_duration(timeout_s)} is over max_timeout "
                        f"{format_duration(program.envelope.max_timeout)} (set final.timeout)")
    return problems


def job_values(program: Program, row: ExperimentRow) -> dict[str, Any]:
    """The ``--name=value`` arguments of a repeat, in the order they win: config, fixed, final fixed, seed."""
    final = program.campaign.final
    values = {**row.config, **program.campaign.fixed, **(final.fixed if final else {})}
    chosen = seeds(program)
    if final is not None and final.seed_param and row.repeat is not None and row.repeat <= len(chosen):
        values[final.seed_param] = chosen[row.repeat - 1]
    return values


# --- What next ----------------------------------------------------------------


def tries(state: CampaignState, of_iter: int) -> Counter[int]:
    """How many times each repeat of the search result ``of_iter`` was attempted (its iters)."""
    return Counter(r.repeat or 0 for r in state.finals.values() if r.final_of == of_iter)


def to_run(program: Program, state: CampaignState, of_iter: int) -> list[int]:
    """The repeats to submit: those never attempted, and those canceled before they finished with a rerun left."""
    final = program.campaign.final
    assert final is not None
    rows, attempted = state.repeats_of(of_iter), tries(state, of_iter)
    return [k for k in range(1, final.repeats + 1)
            if k not in rows or rows[k].status == "canceled" and attempted[k] <= RERUNS]


def given_up(state: CampaignState, of_iter: int) -> list[int]:
    """Repeats canceled again after their rerun: they do not run any more."""
    attempted = tries(state, of_iter)
    return [k for k, r in sorted(state.repeats_of(of_iter).items()) if r.status == "canceled" and attempted[k] > RERUNS]


def ran(rows: dict[int, ExperimentRow]) -> int:
    """How many repeats ran (completed or failed): a canceled one did not."""
    return sum(1 for r in rows.values() if r.status in FINISHED and r.status != "canceled")


def canceled_words(repeats: list[int]) -> str:
    """``repeat 2 was canceled twice and is not run again`` (empty for none)."""
    if not repeats:
        return ""
    which = ", ".join(map(str, repeats))
    one = len(repeats) == 1
    return (f"repeat{'' if one else 's'} {which} {'was' if one else 'were'} canceled twice and "
            f"{'is' if one else 'are'} not run again")


@dataclass(frozen=True)
class FinalPlan:
    """What the final evaluation does this step: end (``done``), or resubmit and submit repeats, or wait."""

    done: EventRow | None = None
    resubmit: tuple[ExperimentRow, ...] = ()  # intents whose job never reached the backend
    new: tuple[ExperimentRow, ...] = ()  # intent rows to append, then submit
    waiting: str = ""


def plan(program: Program, state: CampaignState, *, used: Usage, prices: dict[str, float] | None, ts: str,
         commit: str | None = None) -> FinalPlan:
    """The next move of a pending final evaluation (see :func:`pending`)."""
    final, best = program.campaign.final, state.best
    assert final is not None and best is not None
    rows = state.repeats_of(best.iter)
    live = max(sum(1 for e in state.in_flight if e.job_id), used.in_flight)
    intents = tuple(e for e in state.in_flight if not e.job_id and e.final_of is not None)
    free = max(0, program.envelope.max_parallel - live)
    resubmit = intents[:free]
    refused = target_problems(program, best)
    missing = to_run(program, state, best.iter) if not refused else []
    flavor, timeout_s = flavor_timeout(program, best)
    new: list[ExperimentRow] = []
    planned = used
    for repeat in missing[: free - len(resubmit)]:
        if budget_problems(program.envelope, planned, flavor=flavor, timeout_s=timeout_s, prices=prices, reserve=0):
            break
        new.append(_intent(program, state, best, repeat, iteration=state.next_iter + len(new), flavor=flavor,
                           timeout_s=timeout_s, ts=ts, commit=commit))
        planned = plus_intents(planned, new[-1:], prices)
    if live or intents or new:
        flying = live + len(intents) - len(resubmit)
        waiting = f"final evaluation: {flying} repeat(s) in flight" if flying and not (resubmit or new) else ""
        return FinalPlan(resubmit=resubmit, new=tuple(new), waiting=waiting)
    if refused:
        return FinalPlan(done=_done(program, state, "refused", ts, detail="; ".join(refused)))
    if missing:
        return FinalPlan(done=_unaffordable(program, state, used, len(missing), flavor, timeout_s, prices, ts))
    return FinalPlan(done=_done(program, state, "finished", ts, detail=_finished_detail(program, state, rows)))


def _intent(program: Program, state: CampaignState, best: ExperimentRow, repeat: int, *, iteration: int, flavor: str,
            timeout_s: int, ts: str, commit: str | None) -> ExperimentRow:
    final = program.campaign.final
    assert final is not None
    chosen = seeds(program)
    seed = chosen[repeat - 1] if repeat <= len(chosen) else None
    return experiment_row(
        iter=iteration, ts=ts, status="proposed", config=dict(best.config), timeout_s=timeout_s, flavor=flavor,
        hypothesis=f"final evaluation of iter {best.iter}: repeat {repeat} of {final.repeats}"
        + (f" with {final.seed_param}={seed}" if seed is not None else "")
        + (" (again: its job was canceled before it finished)" if repeat in state.repeats_of(best.iter) else ""),
        proposer=PROPOSER, reason="final evaluation", final_of=best.iter, repeat=repeat, final_seed=seed,
        output_repo=output_repo_for(program.envelope, state.campaign_id or "", iteration) or None, commit=commit,
    )


def _done(program: Program, state: CampaignState, reason: str, ts: str, *, detail: str, **extra: Any) -> EventRow:
    best = state.best
    return EventRow(event="final", ts=ts, reason=reason, detail=detail, program=program.fingerprint,
                    final_of=best.iter if best else None, **extra)


def _finished_detail(program: Program, state: CampaignState, rows: dict[int, ExperimentRow]) -> str:
    asked = program.final_jobs
    spread = Spread.of(rows.values())
    said = f"; {program.final_metric} {spread.text(asked)}" if spread else "; no repeat gave a metric"
    canceled = canceled_words(given_up(state, state.best.iter)) if state.best else ""
    return f"{ran(rows)} of {asked} repeats ran" + (f" ({canceled})" if canceled else "") + said


WORDS = {"finished": "finished", "unaffordable": "ended short", "refused": "not run"}  # a ``final`` row's reason


def _unaffordable(program: Program, state: CampaignState, used: Usage, missing: int, flavor: str, timeout_s: int,
                  prices: dict[str, float] | None, ts: str) -> EventRow:
    """The final evaluation ends short: what the repeats not run would cost, and what the envelope has left."""
    env = program.envelope
    job_s = timeout_s + used.starting_s  # as budget_problems reserves it: the timeout and, on HF, starting too
    cost = missing * price_per_hour(flavor, prices) * billed_hours(job_s)
    left_cost = max(0.0, env.max_cost_usd - used.cost_usd) if env.max_cost_usd is not None else None
    left = dict(left_jobs=max(0, env.max_jobs - used.jobs), left_walltime_s=max(0.0, env.max_walltime - used.walltime_s),
                left_cost_usd=None if left_cost is None else round(left_cost, 6))
    done = ran(state.repeats_of(state.best.iter)) if state.best else 0
    each = f"{format_duration(timeout_s)} each on {flavor}" + (
        f", + {format_duration(used.starting_s)} each to start" if used.starting_s else "")
    detail = (f"the envelope cannot pay for {missing} more repeat(s) ({done} ran): they would need {missing} job(s), "
              f"{format_duration(missing * job_s)} of walltime and ${cost:.2f} ({each}); left: "
              f"{left['left_jobs']} job(s), {format_duration(left['left_walltime_s'])}"
              + (f", ${left_cost:.2f}" if left_cost is not None else ""))
    return _done(program, state, "unaffordable", ts, detail=detail, missing=missing, would_jobs=missing,
                 would_walltime_s=missing * job_s, would_cost_usd=round(cost, 6), **left)


# --- What it found (the ``finished`` row says it; :mod:`mlr_action.core.final_outcome` shows the rest) ----------


@dataclass(frozen=True)
class Spread:
    """The metric over the repeats that gave one: mean, sample standard deviation (n > 1), range."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, rows: Any) -> Spread | None:
        values = tuple(r.metric for r in rows if r.status == "completed" and r.metric is not None
                       and math.isfinite(r.metric))
        return cls(values) if values else None

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float | None:
        return statistics.stdev(self.values) if self.n > 1 else None

    def short(self) -> str:
        """``0.9621 ± 0.0042``: the mean, and the standard deviation to two significant digits (none with n=1)."""
        from mlr_action.core.metric import format_metric

        if self.sd is None:
            return format_metric(self.mean)
        sd = float(f"{self.sd:.2g}")
        return f"{format_metric(self.mean)} ± {format_metric(sd)}"

    def text(self, asked: int | None = None) -> str:
        """``0.9621 ± 0.0042 (mean ± sd over 3 repeats, range 0.957 to 0.966)``, or one value with n=1.

        ``asked``: how many repeats the final block asks for; said (``over 2 repeats of 3``) when fewer gave one.
        """
        from mlr_action.core.metric import format_metric

        of = f" of {asked}" if asked and asked != self.n else ""
        if self.sd is None:
            return f"{self.short()} (1 repeat{of}, no spread)"
        return (f"{self.short()} (mean ± sd over {self.n} repeats{of}, range {format_metric(min(self.values))} to "
                f"{format_metric(max(self.values))})")
