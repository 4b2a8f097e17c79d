"""Reconciling: what the backend observed, turned into the ledger rows that bring it up to date (DESIGN.md section 4).

Guarantees, all without I/O or a clock of its own (given the same inputs, the same rows):

- :func:`reconcile` adopts jobs that carry the campaign's labels but are
  missing from the ledger (a crash between submit and commit), records stage
  changes, and evaluates finished jobs in iter order: the metric from the logs
  (none means error, never zero), keep only when better than the running best
  by more than ``min_delta`` (strictly better when it is 0).
- A final evaluation's row (``final_of``) is evaluated on the final metric and
  never kept, discarded or made the best; a job of ours whose rows were lost is
  adopted as what its labels say, a search iter or a repeat of the final
  evaluation, and what its labels do not say is charged as the most expensive
  job the envelope allows. A second job for an iter that has one is escalated,
  never counted as a result.
- A finished job whose log is not proven whole yet (``pending``) is left in
  flight; one whose log could not be read whole in time (``unreadable``) is an
  error that says so, never a result from part of its log. Cost is charged in
  whole started minutes, and a job that vanished without a duration is charged
  its full timeout.
"""

from __future__ import annotations

import math
from typing import Any

from mlr_action.core.durations import format_duration
from mlr_action.core.flavors import price_per_hour
from mlr_action.core.jobs import COMMIT_LABEL, JobStage, JobView
from mlr_action.core.ledger import EventRow, ExperimentRow, Row
from mlr_action.core.metric import log_tail, read_metric
from mlr_action.core.program import Program
from mlr_action.core.program_paths import output_repo_for
from mlr_action.core.state import CampaignState

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
