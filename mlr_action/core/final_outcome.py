"""What the final evaluation found and what it may cost, as the writeup and ``mlr validate`` show it.

Guarantees (pure: no I/O and no clock):

- :func:`outcome` reads the final evaluation as it stands from the state alone: the search result it runs
  again (the one its ``final`` row names once it ended, the best until then), the last attempt of each
  repeat and every attempt (a canceled repeat's rerun too), the metric's :class:`~mlr_action.core.final.Spread`
  over the repeats that gave one, what every attempt is charged, and, after a stop on the target, whether
  the repeats' mean reached it too. None without a ``final`` block.
- :func:`reserve_note` states the final evaluation's worst case before a campaign starts (each repeat at
  its full timeout plus the time HF Jobs may bill while it starts) and says so when the reserve alone may
  not pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlr_action.core.budget import RESERVE, billed_hours, charged_cost, charged_seconds
from mlr_action.core.durations import format_duration
from mlr_action.core.final import Spread, not_run_because, phase
from mlr_action.core.flavors import price_per_hour
from mlr_action.core.ledger import FINISHED, EventRow, ExperimentRow
from mlr_action.core.program import Program
from mlr_action.core.state import CampaignState


@dataclass(frozen=True)
class Outcome:
    """The final evaluation as the writeup shows it."""

    of: ExperimentRow | None  # the search result run again
    rows: tuple[ExperimentRow, ...]  # its repeats, by repeat (the last attempt of each)
    attempts: tuple[ExperimentRow, ...]  # every attempt, by iter: a canceled repeat's rerun too
    spread: Spread | None
    phase: str
    not_run: str | None  # why it does not run, when it does not
    event: EventRow | None  # the row that ended it
    walltime_s: float
    cost_usd: float
    confirmed: bool | None  # after a stop on the target: did the repeats' mean reach it too?
    reached: int  # how many repeats reached the target

    @property
    def in_flight(self) -> int:
        return sum(1 for r in self.rows if r.status not in FINISHED)


def outcome(program: Program, state: CampaignState, prices: dict[str, float] | None = None) -> Outcome | None:
    """The final evaluation of this campaign as it stands; None without a ``final`` block."""
    if program.campaign.final is None:
        return None
    event = state.final_event
    of_iter = getattr(event, "final_of", None) if event is not None else None
    of = state.experiments.get(of_iter) if isinstance(of_iter, int) else state.best
    rows = tuple(r for _, r in sorted(state.repeats_of(of.iter).items())) if of is not None else ()
    attempts = tuple(r for r in state.finals.values() if of is not None and r.final_of == of.iter)
    spread = Spread.of(rows)
    stop = state.stopped
    confirmed = None
    if stop is not None and stop.reason == "target" and event is not None:
        confirmed = spread is not None and program.reached_target(spread.mean)
    return Outcome(of=of, rows=rows, attempts=attempts, spread=spread, phase=phase(program, state),
                   not_run=not_run_because(program, state) if stop is not None else None, event=event,
                   walltime_s=sum(charged_seconds(r) for r in attempts),
                   cost_usd=sum(charged_cost(r, prices) for r in attempts),
                   confirmed=confirmed, reached=sum(map(program.reached_target, spread.values if spread else ())))


def reserve_note(program: Program, prices: dict[str, float] | None = None) -> str | None:
    """For ``mlr validate``: the final evaluation's worst case, and whether the reserve alone pays for it."""
    final = program.campaign.final
    if final is None:
        return None
    env = program.envelope
    flavor = final.flavor or program.default_flavor
    timeout_s = final.timeout or program.default_timeout_s
    starting_s = program.campaign.scheduling_timeout  # what HF Jobs may bill while each starts (budget.py)
    walltime = final.repeats * (timeout_s + starting_s)
    cost = final.repeats * price_per_hour(flavor, prices) * billed_hours(timeout_s + starting_s)
    note = (f"{final.repeats} repeat(s) of the best config, {format_duration(timeout_s)} each on {flavor} (+ up to "
            f"{format_duration(starting_s)} each to start on HF Jobs, scheduling_timeout): at most "
            f"{format_duration(walltime)} and ${cost:.2f}; the search keeps {final.repeats} of max_jobs back")
    short = walltime > env.max_walltime * RESERVE or (env.max_cost_usd is not None and cost > env.max_cost_usd * RESERVE)
    if short:
        note += (f". The {RESERVE:.0%} reserve ({format_duration(env.max_walltime * RESERVE)}"
                 + (f", ${env.max_cost_usd * RESERVE:.2f}" if env.max_cost_usd is not None else "")
                 + ") may not pay for all of it: what the search leaves unspent does too, and the writeup says what "
                 "could not run")
    return note
