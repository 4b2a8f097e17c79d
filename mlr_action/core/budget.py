"""Budget accounting: what has been spent and what one more job may spend.

Guarantees (DESIGN.md sections 3 and 9):

- Spend is what the backend says the campaign's jobs used; the ledger can only
  add to it. :func:`usage` takes the jobs the backend listed under the
  campaign's labels (``listed``, passed in by the step: this module stays
  pure) and charges the union by job id: every job the ledger or the backend
  knows, each charged the larger of its two charges, plus every intent not yet
  on the backend. No edit of the ledger (rows deleted, durations, costs or
  timeouts lowered, job ids or statuses changed) lowers a charge, a count or
  the jobs in flight below what the backend reports. Without ``listed`` (``mlr
  guard``, ``mlr status``, which call no backend) it is the ledger's view.
- A listed job is charged what the backend says: a finished job its duration
  (none: it never ran), a job in flight its full timeout or its duration so
  far, whichever is larger; when the backend does not say a job's timeout or
  flavor, the envelope's ``max_timeout`` and its priciest allowed flavor.
- Jobs are counted over **distinct** job ids, plus every intent (a
  ``proposed`` row) that may already have been submitted.
- Walltime charges the actual duration of finished jobs and the *full*
  timeout of jobs in flight (or their duration so far, if that is larger).
  A finished job with no recorded duration is charged its full timeout.
- A backend that bills the time a job takes to start (HF Jobs bills
  "Starting" as well as "Running") passes ``starting_s``, the most a job may
  spend starting (the Campaign block's ``scheduling_timeout``): a job in
  flight is then charged its timeout plus ``starting_s``, and
  :func:`budget_problems` asks room for the same before a submit. A job
  the backend reports to have taken longer than ``starting_s`` to start
  (``started_after_s``; or still waiting, ``waiting_s``) is charged that
  instead, plus its timeout, until its end is known: what it may still
  bill, since the starting time is billed and the timeout still to come. What a
  finished job is charged is its duration as the backend reports it, which
  for HF covers starting too (see mlr_action.backends.hf). ``starting_s`` is
  kept on :class:`Usage`, so every check made with a ``used`` counts it.
- Dollars are walltime, in started minutes (as HF Jobs bills), times the
  flavor's price; a row's recorded ``cost_usd`` wins for finished jobs.
- LLM dollars come from the ledger's rows alone (no backend knows them): every
  row's ``llm_usd``, where a reservation (an ``llm`` row with reason
  ``reserved``, written before the calls it covers) counts in full until a
  later ``llm`` row ``settles`` it; the rows of the actual spend count then.
- :func:`budget_problems` is the one check before every submit, shared by the
  step and by ``mlr guard``. The step keeps :data:`RESERVE` of walltime and
  dollars back for the final evaluation and writeup, as the seed did; the
  job count is a hard count, of which the search keeps the final
  evaluation's repeats back (``keep_jobs``). The final evaluation
  (:mod:`mlr_action.core.final`) checks with ``reserve=0``: it may spend the
  reserve, never more than the envelope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable

from mlr_action.core.jobs import JobView
from mlr_action.core.durations import format_duration
from mlr_action.core.flavors import price_per_hour
from mlr_action.core.ledger import FINISHED, IN_FLIGHT, ExperimentRow
from mlr_action.core.program import Envelope
from mlr_action.core.state import CampaignState

RESERVE = 0.10
RESERVED, SETTLED = "reserved", "settled"  # the reasons of the llm rows that reserve and settle LLM spend


@dataclass(frozen=True)
class Usage:
    jobs: int = 0
    walltime_s: float = 0.0
    cost_usd: float = 0.0
    llm_usd: float = 0.0
    in_flight: int = 0  # jobs live as the ledger or the backend says (intents aside): what max_parallel counts
    starting_s: float = 0.0  # what each job in flight, and each further submit, reserves for starting (see above)


def charged_seconds(row: ExperimentRow, starting_s: float = 0.0) -> float:
    timeout = row.charged_timeout_s
    if row.status in FINISHED:
        return row.duration_s if row.duration_s is not None else float(timeout + starting_s)
    return max(float(timeout) + starting_s, row.duration_s or 0.0)


def billed_hours(seconds: float) -> float:
    """HF Jobs bill every started minute: a reservation must cover the last, partly used one too."""
    return math.ceil(seconds / 60 - 1e-9) / 60


def charged_cost(row: ExperimentRow, prices: dict[str, float] | None = None, starting_s: float = 0.0) -> float:
    if row.status in FINISHED and row.cost_usd is not None:
        return row.cost_usd
    return price_per_hour(row.flavor or "", prices) * billed_hours(charged_seconds(row, starting_s))


def priciest_flavor(envelope: Envelope, prices: dict[str, float] | None = None) -> str:
    return max(envelope.allowed_flavors, key=lambda f: price_per_hour(f, prices))


def observed_charge(view: JobView, envelope: Envelope, prices: dict[str, float] | None = None,
                    starting_s: float = 0.0) -> tuple[float, float]:
    """(seconds, dollars) the backend's record of one job charges; what it does not say is the envelope's worst."""
    flavor = view.flavor or priciest_flavor(envelope, prices)
    if view.stage.terminal:
        seconds = view.duration_s or 0.0
    else:
        start = max(starting_s, view.started_after_s or 0.0, view.waiting_s or 0.0) if starting_s else 0.0
        seconds = max(float(view.timeout_s or envelope.max_timeout) + start, view.duration_s or 0.0)
    return seconds, price_per_hour(flavor, prices) * billed_hours(seconds)


def llm_spent(state: CampaignState) -> float:
    """LLM dollars on the ledger: every row's ``llm_usd``, a reservation in full until a later row settles it."""
    total, open_reservations = 0.0, {}
    for row in (*state.experiments.values(), *state.finals.values()):
        total += float(getattr(row, "llm_usd", 0) or 0)
    for event in state.events:
        spent = float(getattr(event, "llm_usd", 0) or 0)
        if event.event == "llm" and event.reason == RESERVED:
            open_reservations[str(getattr(event, "reservation", ""))] = spent
            continue
        settles = getattr(event, "settles", None)
        if event.event == "llm" and event.reason == SETTLED and settles is not None:
            open_reservations.pop(str(settles), None)  # only a reservation written before it
        total += spent
    return total + sum(open_reservations.values())


def usage(
    state: CampaignState,
    prices: dict[str, float] | None = None,
    *,
    listed: Iterable[JobView] = (),
    envelope: Envelope | None = None,
    starting_s: float = 0.0,
) -> Usage:
    """What the campaign has used: the union of the ledger and the backend's ``listed`` jobs (see the module doc).

    ``envelope`` is needed with ``listed``: it prices what the backend does not say. ``starting_s``: what a job
    may be billed while it starts, for a backend that bills it (0 otherwise).
    """
    charges: dict[str, tuple[float, float, bool]] = {
        job_id: (charged_seconds(row, starting_s), charged_cost(row, prices, starting_s), row.status in IN_FLIGHT)
        for job_id, row in state.job_rows.items()
    }
    for view in listed:
        if envelope is None:
            raise ValueError("usage(listed=...) needs the envelope to charge what the backend does not say")
        seconds, dollars = observed_charge(view, envelope, prices, starting_s)
        live = not view.stage.terminal
        if view.job_id in charges:
            old_s, old_d, old_live = charges[view.job_id]
            seconds, dollars, live = max(old_s, seconds), max(old_d, dollars), old_live or live
        charges[view.job_id] = (seconds, dollars, live)
    # An intent that may have reached the backend is charged as a job in flight.
    intents = [e for e in state.in_flight if e.status == "proposed" and not e.job_id]
    return Usage(
        jobs=len(charges) + len(intents),
        walltime_s=sum(c[0] for c in charges.values()) + sum(charged_seconds(r, starting_s) for r in intents),
        cost_usd=sum(c[1] for c in charges.values()) + sum(charged_cost(r, prices, starting_s) for r in intents),
        llm_usd=llm_spent(state),
        in_flight=sum(1 for c in charges.values() if c[2]),
        starting_s=starting_s,
    )


def plus_intents(used: Usage, intents: Iterable[ExperimentRow], prices: dict[str, float] | None = None) -> Usage:
    """``used`` with ``intents`` (admitted, not yet submitted) charged as :func:`usage` charges an intent.

    So a proposer filling several slots checks each one against the step's ``used`` (the ledger and the
    backend's listing) plus its own earlier proposals, as the step will admit them.
    """
    intents = list(intents)
    return replace(
        used,
        jobs=used.jobs + len(intents),
        walltime_s=used.walltime_s + sum(charged_seconds(r, used.starting_s) for r in intents),
        cost_usd=used.cost_usd + sum(charged_cost(r, prices, used.starting_s) for r in intents),
    )


def budget_problems(
    envelope: Envelope,
    used: Usage,
    *,
    flavor: str,
    timeout_s: int,
    prices: dict[str, float] | None = None,
    reserve: float = RESERVE,
    keep_jobs: int = 0,
) -> list[str]:
    """Why one more job of ``flavor`` and ``timeout_s`` (plus ``used.starting_s`` to start) would not fit; empty when it fits.

    ``reserve``: the share of walltime and dollars kept back (the final evaluation spends it with 0);
    ``keep_jobs``: jobs of ``max_jobs`` kept back (the search keeps the final evaluation's repeats).
    """
    problems = []
    if used.jobs + 1 > envelope.max_jobs - keep_jobs:
        kept = f"; {keep_jobs} kept for the final evaluation" if keep_jobs else ""
        problems.append(f"max_jobs={envelope.max_jobs} reached ({used.jobs} already submitted{kept})")
    wall_cap = envelope.max_walltime * (1 - reserve)
    job_s = timeout_s + used.starting_s
    if used.walltime_s + job_s > wall_cap + 1e-9:
        kept = f" with {reserve:.0%} kept in reserve" if reserve else ""
        starting = f" + {format_duration(used.starting_s)} to start" if used.starting_s else ""
        problems.append(
            f"walltime: {format_duration(used.walltime_s)} used + {format_duration(timeout_s)} timeout{starting} "
            f"is over max_walltime {format_duration(envelope.max_walltime)}{kept}"
        )
    if envelope.max_cost_usd is not None:
        cost = price_per_hour(flavor, prices) * billed_hours(job_s)
        cap = envelope.max_cost_usd * (1 - reserve)
        if used.cost_usd + cost > cap + 1e-9:
            problems.append(
                f"cost: ${used.cost_usd:.2f} used + ${cost:.2f} for this job is over "
                f"max_cost_usd ${envelope.max_cost_usd:.2f}" + (f" with {reserve:.0%} kept in reserve" if reserve else "")
            )
    return problems


def worst_case(envelope: Envelope, prices: dict[str, float] | None = None,
               starting_s: float = 0.0) -> tuple[int, float]:
    """Worst-case walltime (s) and dollars the envelope authorizes.

    ``starting_s``: what each job may also bill while it starts (HF bills "Starting"; the Campaign block's
    ``scheduling_timeout`` bounds it), so that every job's worst case is its timeout plus that; 0 for the local backend.
    """
    walltime = min(int(envelope.max_jobs * (envelope.max_timeout + starting_s)), envelope.max_walltime)
    priciest = price_per_hour(priciest_flavor(envelope, prices), prices)
    dollars = priciest * walltime / 3600
    if envelope.max_cost_usd is not None:
        dollars = min(dollars, envelope.max_cost_usd)
    return walltime, dollars
