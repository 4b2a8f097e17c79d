"""The fold of the ledger into campaign state: what happened so far, nothing more.

Guarantees: :func:`fold` is pure and total over valid rows; the state depends
only on the rows and their order (and the campaign id the caller passes). For
each ``iter`` the last row wins, except a ``proposed`` row with no job id after
a row that has one: an intent is written only before its iter has a job, so a
later one is stale (a raced run's rows merged after the winner's, or planted)
and never undoes the job. A state is never changed after the fold, so
what is derived from it is computed once (``cached_property``): a step over
thousands of rows stays linear.

Search rows and the final evaluation's rows (``final_of`` set, see
:mod:`mlr_action.core.final`) share one sequence of iters, so their labels never
collide, but are kept apart: ``experiments`` and everything derived from it
(the best, keep/discard, patience, the error streak, the configs tried) is
the search alone; ``finals`` holds the repeats. The budget (``job_rows``) and
the jobs in flight count both.

The campaign id is the caller's (the step passes the one program.md or the
folder gives, see :func:`mlr_action.job.jobspec.campaign_id_for`), never a ledger
row's: what the ledger's last ``started`` row names is kept apart as
``ledger_campaign``, to be noted when it differs, never obeyed. Only readers
that spend nothing (a status or a dry run with no program) fall back to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from mlr_action.core.ledger import FINISHED, IN_FLIGHT, EventRow, ExperimentRow, Row


def config_key(config: dict[str, Any]) -> str:
    """A canonical form of a config, so two equal configs compare equal."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class CampaignState:
    campaign_id: str | None = None
    ledger_campaign: str | None = None  # what the ledger's last ``started`` row names: data, never the labels
    experiments: dict[int, ExperimentRow] = field(default_factory=dict)  # latest search row per iter, by iter
    job_rows: dict[str, ExperimentRow] = field(default_factory=dict)  # latest row per distinct job id (final ones too)
    events: tuple[EventRow, ...] = ()
    stopped: EventRow | None = None
    paused: bool = False
    finals: dict[int, ExperimentRow] = field(default_factory=dict)  # latest final-evaluation row per iter, by iter
    final_event: EventRow | None = None  # the ``final`` row that ended the final evaluation after the last stop

    @property
    def final_running(self) -> bool:
        """Stopped (not by a person) with the final evaluation's repeats in flight: a person may still stop those."""
        return (self.stopped is not None and self.stopped.reason != "human" and self.final_event is None
                and any(e.final_of is not None for e in self.in_flight))

    def row(self, iteration: int) -> ExperimentRow | None:
        """The latest row of ``iteration``, search or final."""
        return self.experiments.get(iteration) or self.finals.get(iteration)

    def repeats_of(self, iteration: int) -> dict[int, ExperimentRow]:
        """The final evaluation's rows of the search result ``iteration``, by repeat (the last row of a repeat wins)."""
        return {e.repeat or 0: e for e in self.finals.values() if e.final_of == iteration}

    @cached_property
    def known_jobs(self) -> set[str]:
        """Every job id the ledger mentions, on an experiment or an event row."""
        on_events = {str(getattr(e, "job_id", "")) for e in self.events if getattr(e, "job_id", None)}
        return set(self.job_rows) | on_events

    @property
    def next_iter(self) -> int:
        return max(max(self.experiments, default=0), max(self.finals, default=0)) + 1

    @cached_property
    def in_flight(self) -> list[ExperimentRow]:
        """Every row in flight, search and final, by iter: what ``max_parallel`` and the budget count."""
        rows = {**self.experiments, **self.finals}
        return [rows[i] for i in sorted(rows) if rows[i].status in IN_FLIGHT]

    @cached_property
    def finished(self) -> list[ExperimentRow]:
        return [e for e in self.experiments.values() if e.status in FINISHED]

    @cached_property
    def best(self) -> ExperimentRow | None:
        """The kept experiment whose metric is the running best (the last keep wins)."""
        kept = [e for e in self.experiments.values() if e.decision == "keep" and e.metric is not None]
        return kept[-1] if kept else None

    @property
    def best_metric(self) -> float | None:
        best = self.best
        return best.metric if best else None

    @cached_property
    def failed_configs(self) -> set[str]:
        return {config_key(e.config) for e in self.experiments.values() if e.status == "error"}

    @cached_property
    def tried_configs(self) -> set[str]:
        return {config_key(e.config) for e in self.experiments.values()}

    def streak_without_improvement(self) -> int:
        """Finished experiments since the last keep (errors count), in iter order."""
        streak = 0
        for e in self.experiments.values():
            if e.status not in FINISHED or e.status == "canceled":
                continue
            streak = 0 if e.decision == "keep" else streak + 1
        return streak

    def error_streak(self) -> int:
        """Finished experiments in a row, most recent first, that ended in error."""
        streak = 0
        for e in reversed(self.finished):
            if e.status != "error":
                break
            streak += 1
        return streak


def fold(rows: list[Row], campaign_id: str | None = None) -> CampaignState:
    """The state the rows describe; ``campaign_id`` is the caller's (None: the ledger's, for readers only)."""
    experiments: dict[int, ExperimentRow] = {}
    job_rows: dict[str, ExperimentRow] = {}
    events: list[EventRow] = []
    ledger_campaign = None
    stopped = final_event = None
    paused = False
    for row in rows:
        if isinstance(row, EventRow):
            events.append(row)
            if row.event == "started" and row.campaign:
                ledger_campaign = row.campaign
            elif row.event == "stopped":
                stopped, final_event = row, None
            elif row.event == "paused":
                paused = True
            elif row.event == "resumed":
                # A person resumed, or program.md changed after a stop (a raised budget).
                paused = False
                stopped = final_event = None
            elif row.event == "final" and stopped is not None:
                final_event = row
            continue
        earlier = experiments.get(row.iter)
        if earlier is not None and earlier.job_id and not row.job_id and row.status == "proposed":
            # A stale intent: a raced run's, merged after the job's row when its push was retried, or a planted
            # one. An intent is only ever written before its iter has a job, so it never undoes the job.
            continue
        experiments[row.iter] = row
        if row.job_id:
            job_rows[row.job_id] = row
    ordered = sorted(experiments.items())
    return CampaignState(
        campaign_id=ledger_campaign if campaign_id is None else campaign_id,
        ledger_campaign=ledger_campaign,
        experiments={i: e for i, e in ordered if e.final_of is None},
        finals={i: e for i, e in ordered if e.final_of is not None},
        job_rows=job_rows,
        events=tuple(events),
        stopped=stopped,
        paused=paused,
        final_event=final_event,
    )
