"""What a step makes of the backend's report before anything is recorded: pure rules, no I/O, time passed in.

Guarantees:

- :func:`stuck_jobs`: a job of the ledger still in flight that the backend
  reports waiting to start (SCHEDULING) for longer than the Campaign block's
  ``scheduling_timeout`` is to be canceled, with the text its row records
  (how long it waited, the limit, what it was charged). Scarce hardware then
  cannot hold a ``max_parallel`` slot and its reservation forever. Only
  ``waiting_s`` as the backend reports it counts, never a ledger row.
- :func:`log_verdict`: a finished job whose log could not be proven whole is
  read again on later ticks, until :data:`LOG_PATIENCE_S` after the backend
  says it finished (at once when it does not say when); then it is recorded
  as an error that says its log could not be read whole. A result is never
  read from a cut-off log.
- :func:`starting_allowance`: what each job reserves for starting, on top of
  its timeout: the ``scheduling_timeout`` for a backend that bills a job
  while it starts (``bills_starting``), else nothing.
"""

from __future__ import annotations

from datetime import datetime

from mlr_action.core.jobs import JobStage, JobView
from mlr_action.core.durations import format_duration
from mlr_action.core.ledger import ExperimentRow
from mlr_action.core.program import Program

LOG_PATIENCE_S = 3600  # how long after a job's end its log is read again before giving up


def starting_allowance(program: Program, backend: object) -> float:
    return float(program.campaign.scheduling_timeout) if getattr(backend, "bills_starting", False) else 0.0


def stuck_jobs(program: Program, in_flight: list[ExperimentRow], observed: dict[str, JobView]) -> dict[str, str]:
    """Job id -> the error its row records, for every job in flight that waited too long to start."""
    limit = program.campaign.scheduling_timeout
    stuck = {}
    for exp in in_flight:
        view = observed.get(exp.job_id or "")
        if view is None or view.stage is not JobStage.SCHEDULING or view.waiting_s is None or view.waiting_s <= limit:
            continue
        charged = f"; charged {format_duration(view.duration_s)} (HF bills a job while it starts)" if view.duration_s else ""
        stuck[view.job_id] = (
            f"canceled by the bot: still waiting to start (SCHEDULING) after {format_duration(view.waiting_s)}, over "
            f"scheduling_timeout {format_duration(limit)}; HF could not give it {view.flavor or exp.flavor} in time"
            f"{charged}. Raise scheduling_timeout or allow another flavor if this repeats"
        )
    return stuck


def log_verdict(view: JobView, why: str, *, now: datetime, patience_s: float = LOG_PATIENCE_S) -> tuple[bool, str]:
    """(wait, text) for a finished job whose log is not proven whole: wait and read again, or give up and say so."""
    if view.finished_at is not None:
        waited = (now - view.finished_at).total_seconds()
        if waited < patience_s:
            return True, (f"iter {view.iter}: {why}; no result is read from a cut-off log: it is read again on the next "
                          f"tick (for up to {format_duration(patience_s)} after the job ended)")
        how_long = f"within {format_duration(patience_s)} of the job's end"
    else:
        how_long = "(the backend does not say when the job ended, so it is not waited for)"
    return False, (f"its log could not be read whole {how_long}: {why}. No result is taken from a cut-off log; read "
                   f"the job's log yourself (for HF: hf jobs logs {view.job_id})")
