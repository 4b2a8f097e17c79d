"""Linger: a tick that finds a job about to end follows it, and takes the next step in the same tick.

A cron tick leaves the GPU idle from a job's end to the next tick (up to a
whole interval). With ``linger`` (the action's input, ``mlr step --linger``),
a tick whose step left a job in flight that should end soon waits for it,
then runs the step again: the job is evaluated and the next experiment
submitted at once.

Guarantees:

- The prediction is pure (:func:`predict_end`, :func:`due`): what the backend
  says each job has run so far, the durations of finished jobs (those of the
  same flavor and config first, then the same flavor, then all), the job's
  timeout (the backend ends it by then) and the time, all passed in.
- Off the path of a tick with nothing to do: the first decision uses only what
  the step already observed (its reconcile's listing and the ledger); no
  request is made and nothing sleeps unless a job is predicted to end before
  ``until``.
- Time is passed in (``clock`` and ``sleep``): :func:`follow` never sleeps
  past ``until`` and never starts a step after it, so a tick lasts at most
  ``linger`` plus one step. A job whose prediction moves past ``until`` is let
  go; a backend error while following ends the linger (the next tick
  retries), never the tick.
- Every step after a linger is a whole step (``run_step``): the same
  authority snapshot, admission, publish-before-spend and labels as the
  first. ``may_go_on`` is asked before each (GitHub mode: the default
  branch moved only in ``runs/``); any reason it gives ends the linger.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterable

from mlr_action.core.jobs import BackendError, JobStage, JobView
from mlr_action.core.durations import format_duration

if TYPE_CHECKING:
    from mlr_action.core.state import CampaignState
    from mlr_action.shell.step_result import StepResult

MAX_LINGER_S = 5 * 3600  # GitHub ends a job after 6 hours; a tick needs time after its linger
POLL_MIN_S = 10.0  # never ask the backend more often than this (1 s for jobs of seconds: see poll_floor)
POLL_MAX_S = 60.0
OVERDUE = 1.5  # a job that ran up to this many times the longest finished one is still expected to end soon  # a job that ends earlier than predicted is seen within this


@dataclass(frozen=True)
class Seen:
    """A job in flight as the backend last saw it."""

    job_id: str
    iter: int
    ran_s: float = 0.0  # seconds it has run so far
    started: bool = False  # False: still scheduling (its timeout has not started to run)
    flavor: str | None = None
    config: tuple = ()  # the config's items, sorted: comparable and hashable
    timeout_s: int | None = None


@dataclass(frozen=True)
class Done:
    """How long a finished job ran."""

    flavor: str | None
    config: tuple
    duration_s: float


def parse_linger(text: str) -> int:
    """A linger in seconds: a duration (``10m``), or ``0``/``off`` for never; ValueError saying what is wrong."""
    from mlr_action.core.durations import parse_duration

    text = text.strip()
    if text.lower() in ("0", "off", "false", "none", ""):
        return 0
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration") from None
    if seconds > MAX_LINGER_S:
        raise ValueError(f"{text} is over 5h (GitHub ends a job after 6 hours)")
    return seconds


# -- the prediction (pure) --------------------------------------------------------------------------------------


def _tiers(history: Iterable[Done], flavor: str | None, config: tuple) -> tuple[list[Done], ...]:
    done = list(history)
    return [d for d in done if d.flavor == flavor and d.config == config], [d for d in done if d.flavor == flavor], done


def expected_total(ran_s: float, history: Iterable[Done], *, flavor: str | None, config: tuple) -> float | None:
    """How long a job that has run ``ran_s`` should run in all: the median of the finished jobs' durations
    longer than ``ran_s``, from the first of these that has one: the same flavor and config, the same flavor,
    any job. A job that ran longer than all of them but at most :data:`OVERDUE` times the longest is
    expected to end within a tenth of a typical one. None otherwise (nothing says)."""
    tiers = _tiers(history, flavor, config)
    for tier in tiers:
        longer = [d.duration_s for d in tier if d.duration_s > ran_s]
        if longer:
            return float(statistics.median(longer))
    typical = next((statistics.median(d.duration_s for d in tier) for tier in tiers if tier), None)
    if typical is None or ran_s > OVERDUE * max(d.duration_s for d in tiers[-1]):
        return None
    return ran_s + typical / 10


def predict_end(job: Seen, history: Iterable[Done], now: float) -> float | None:
    """When ``job`` should end (on the clock of ``now``); None when nothing says.

    A started job ends by its timeout at the latest; a job still scheduling is predicted as if it started now.
    """
    left = []
    total = expected_total(job.ran_s, history, flavor=job.flavor, config=job.config)
    if total is not None:
        left.append(total - job.ran_s)
    if job.started and job.timeout_s:
        left.append(job.timeout_s - job.ran_s)
    return now + max(0.0, min(left)) if left else None


def due(jobs: Iterable[Seen], history: Iterable[Done], now: float, until: float) -> list[Seen]:
    """The jobs predicted to end by ``until``, soonest first."""
    done = list(history)
    ends = [(end, job) for job in jobs if (end := predict_end(job, done, now)) is not None and end <= until]
    return [job for _, job in sorted(ends, key=lambda pair: pair[0])]


def poll_floor(history: Iterable[Done]) -> float:
    """The shortest wait between two looks: a tenth of a typical job, from 1 s to :data:`POLL_MIN_S`."""
    durations = [d.duration_s for d in history]
    return min(POLL_MIN_S, max(1.0, statistics.median(durations) / 10)) if durations else POLL_MIN_S


def next_check(end: float, now: float, until: float, *, floor: float = POLL_MIN_S) -> float | None:
    """When to look again for a job predicted to end at ``end``; None when ``until`` has passed."""
    if now >= until:
        return None
    return min(max(end, now + floor), now + POLL_MAX_S, until)


# -- what a step left (pure) ------------------------------------------------------------------------------------


def history_of(state: CampaignState) -> list[Done]:
    """The finished jobs' durations, search and final repeats."""
    rows = (*state.experiments.values(), *state.finals.values())
    return [Done(r.flavor, _items(r.config), float(r.duration_s)) for r in rows
            if r.status == "completed" and r.duration_s]


def seen_after(state: CampaignState, observed: Iterable[JobView]) -> list[Seen]:
    """The jobs in flight after a step, with what its reconcile observed (a job it submitted has not started)."""
    views = {v.job_id: v for v in observed}
    seen = []
    for row in state.in_flight:
        if not row.job_id:
            continue
        view = views.get(row.job_id)
        seen.append(_seen(Seen(row.job_id, row.iter, flavor=row.flavor, config=_items(row.config),
                               timeout_s=row.timeout_s), view))
    return seen


def _seen(job: Seen, view: JobView | None) -> Seen:
    started = view is not None and view.stage is JobStage.RUNNING and view.duration_s is not None
    return replace(job, started=started, ran_s=float(view.duration_s) if started else 0.0)  # type: ignore[union-attr]


def _items(config: dict) -> tuple:
    return tuple(sorted((str(k), repr(v)) for k, v in (config or {}).items()))


# -- the loop (time and the backend passed in) -------------------------------------------------------------------


@dataclass
class Linger:
    """How long a tick may follow jobs: until ``until`` on ``clock``, sleeping with ``sleep``."""

    until: float
    clock: Callable[[], float]
    sleep: Callable[[float], None]


def follow(first: StepResult, *, run_step: Callable[[], StepResult], inspect: Callable[[str], JobView],
           linger: Linger, may_go_on: Callable[[], str | None] = lambda: None,
           say: Callable[[str], None] = lambda line: None) -> list[StepResult]:
    """The steps after ``first`` this tick takes while a job is due before ``linger.until`` (``first`` not
    included). Stops at the first step that does not end in 0, or once nothing is due."""
    results: list[StepResult] = []
    result = first
    while result.exit_code == 0 and result.state is not None and not result.finished:
        history = history_of(result.state)
        jobs = due(seen_after(result.state, result.observed), history, linger.clock(), linger.until)
        if not jobs:
            break
        say(_following(jobs, history, linger))
        ended = _wait(jobs, history, inspect=inspect, linger=linger, say=say)
        if ended is None:
            break
        why = may_go_on()
        if why:
            say(f"linger: stopped ({why}); the next tick goes on")
            break
        result = run_step()
        results.append(result)
    return results


def _following(jobs: list[Seen], history: list[Done], linger: Linger) -> str:
    now = linger.clock()
    said = ", ".join(f"iter {j.iter} ({j.job_id}) in about {format_duration(predict_end(j, history, now) - now)}"  # type: ignore[operator]
                     for j in jobs)
    return f"linger: following {said} (at most {format_duration(linger.until - now)} more)"


def _wait(jobs: list[Seen], history: list[Done], *, inspect: Callable[[str], JobView], linger: Linger,
          say: Callable[[str], None]) -> JobView | None:
    """The first of ``jobs`` to end; None when none is due any more or ``until`` has passed."""
    following = {j.job_id: j for j in jobs}
    started_at = linger.clock()
    while following:
        now = linger.clock()
        soonest = min(predict_end(j, history, now) or linger.until for j in following.values())
        wake = next_check(soonest, now, linger.until, floor=poll_floor(history))
        if wake is None:
            break
        linger.sleep(wake - now)
        try:
            views = [inspect(job_id) for job_id in following]
        except BackendError as exc:
            say(f"linger: stopped, the backend could not be asked ({exc})")
            return None
        for view in views:
            if view.stage.terminal:
                say(f"linger: iter {following[view.job_id].iter} ({view.job_id}) ended after "
                    f"{format_duration(linger.clock() - started_at)} of lingering; the next step follows")
                return view
        updated = [_seen(following[v.job_id], v) for v in views]
        following = {j.job_id: j for j in due(updated, history, linger.clock(), linger.until)}
    say("linger: no job in flight is due before the linger ends; the next tick goes on")
    return None
