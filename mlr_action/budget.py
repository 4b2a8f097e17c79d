"""Budget accounting over the ledger: what has been spent and what one more job may spend.

Guarantees (DESIGN.md section 3):

- Jobs are counted over **distinct** job ids, plus every intent (a
  ``proposed`` row) that may already have been submitted.
- Walltime charges the actual duration of finished jobs and the *full*
  timeout of jobs in flight (or their duration so far, if that is larger).
  A finished job with no recorded duration is charged its full timeout.
- Dollars are walltime, in started minutes (as HF Jobs bills), times the
  flavor's price; a row's recorded ``cost_usd`` wins for finished jobs.
- :func:`budget_problems` is the one check before every submit, shared by the
  step and by ``mlr guard``. The step keeps :data:`RESERVE` of walltime and
  dollars back for the final evaluation and writeup, as the seed did; the
  job count is a hard count with no reserve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlr_action.durations import format_duration
from mlr_action.flavors import price_per_hour
from mlr_action.ledger import FINISHED, ExperimentRow
from mlr_action.program import Envelope
from mlr_action.state import CampaignState

RESERVE = 0.10


@dataclass(frozen=True)
class Usage:
    jobs: int = 0
    walltime_s: float = 0.0
    cost_usd: float = 0.0
    llm_usd: float = 0.0


def charged_seconds(row: ExperimentRow) -> float:
    timeout = row.charged_timeout_s
    if row.status in FINISHED:
        return row.duration_s if row.duration_s is not None else float(timeout)
    return max(float(timeout), row.duration_s or 0.0)


def billed_hours(seconds: float) -> float:
    """HF Jobs bill every started minute: a reservation must cover the last, partly used one too."""
    return math.ceil(seconds / 60 - 1e-9) / 60


def charged_cost(row: ExperimentRow, prices: dict[str, float] | None = None) -> float:
    if row.status in FINISHED and row.cost_usd is not None:
        return row.cost_usd
    return price_per_hour(row.flavor or "", prices) * billed_hours(charged_seconds(row))


def usage(state: CampaignState, prices: dict[str, float] | None = None) -> Usage:
    rows = list(state.job_rows.values())
    # An intent that may have reached the backend is charged as a job in flight.
    rows += [e for e in state.experiments.values() if e.status == "proposed" and not e.job_id]
    llm = sum(float(getattr(r, "llm_usd", 0) or 0) for r in state.experiments.values())
    llm += sum(float(getattr(r, "llm_usd", 0) or 0) for r in state.events)
    return Usage(
        jobs=len(rows),
        walltime_s=sum(charged_seconds(r) for r in rows),
        cost_usd=sum(charged_cost(r, prices) for r in rows),
        llm_usd=llm,
    )


def budget_problems(
    envelope: Envelope,
    used: Usage,
    *,
    flavor: str,
    timeout_s: int,
    prices: dict[str, float] | None = None,
    reserve: float = RESERVE,
) -> list[str]:
    """Why one more job of ``flavor`` and ``timeout_s`` would not fit; empty when it fits."""
    problems = []
    if used.jobs + 1 > envelope.max_jobs:
        problems.append(f"max_jobs={envelope.max_jobs} reached ({used.jobs} already submitted)")
    wall_cap = envelope.max_walltime * (1 - reserve)
    if used.walltime_s + timeout_s > wall_cap + 1e-9:
        kept = f" with {reserve:.0%} kept in reserve" if reserve else ""
        problems.append(
            f"walltime: {format_duration(used.walltime_s)} used + {format_duration(timeout_s)} timeout "
            f"is over max_walltime {format_duration(envelope.max_walltime)}{kept}"
        )
    if envelope.max_cost_usd is not None:
        cost = price_per_hour(flavor, prices) * billed_hours(timeout_s)
        cap = envelope.max_cost_usd * (1 - reserve)
        if used.cost_usd + cost > cap + 1e-9:
            problems.append(
                f"cost: ${used.cost_usd:.2f} used + ${cost:.2f} for this job is over "
                f"max_cost_usd ${envelope.max_cost_usd:.2f}" + (f" with {reserve:.0%} kept in reserve" if reserve else "")
            )
    return problems


def worst_case(envelope: Envelope, prices: dict[str, float] | None = None) -> tuple[int, float]:
    """Worst-case walltime (s) and dollars the envelope authorizes."""
    walltime = min(envelope.max_jobs * envelope.max_timeout, envelope.max_walltime)
    priciest = max(price_per_hour(f, prices) for f in envelope.allowed_flavors)
    dollars = priciest * walltime / 3600
    if envelope.max_cost_usd is not None:
        dollars = min(dollars, envelope.max_cost_usd)
    return walltime, dollars
