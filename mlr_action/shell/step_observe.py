"""What the backend reports, read right: the campaign's jobs observed and reconciled into ledger rows.

A mixin of :class:`~mlr_action.shell.step.Step`. It relies on the Step's
``root``, ``backend``, ``clock``, ``ts()``, ``_campaign`` and ``_append``,
and sets ``_listed`` (what the backend listed under the campaign's labels
this tick, which the Step's ``_usage`` counts) and ``_reconciled``.

Guarantees:

- The campaign id is the step's own: a ledger whose ``started`` row names
  another campaign is noted in a row, never obeyed.
- Every job the backend lists under the campaign's labels is observed, the
  ledger's in-flight jobs too, so a job whose id was never written is
  adopted and a duplicate is canceled (:func:`mlr_action.core.reconcile.reconcile`).
- A job waiting to start longer than ``scheduling_timeout`` is canceled and
  recorded as an error with what it was charged (a final repeat: canceled,
  so it runs again once); it holds no slot afterwards.
- A finished job whose log is not proven whole is read again on later
  ticks, then recorded as an error that says so
  (:func:`mlr_action.core.observe.log_verdict`); logs are redacted, with
  bytes that are not text replaced, before they are read.
- ``runs/backend-cache.json`` is data anyone who can push may write: it is
  handed to the backend, which alone vouches for it; one too big, too
  deeply nested or not JSON is ignored with one line.
"""

from __future__ import annotations

import contextlib
import json

from mlr_action.core import observe, reconcile
from mlr_action.core.jobs import BackendError, JobStage, JobView, LogIncomplete
from mlr_action.core.ledger import EventRow
from mlr_action.core.program import Program
from mlr_action.core.redaction import redact
from mlr_action.core.state import CampaignState
from mlr_action.forges.files import write_atomic
from mlr_action.render.views import describe_row
from mlr_action.shell.step_result import BACKEND_CACHE_PATH, StepResult, clean

BACKEND_CACHE_MAX_BYTES = 1_000_000  # a real one is a few kB; more is not read


class Observing:
    """The reconcile half of a step: observe the backend, read the logs, record what happened."""

    def _identify(self, program: Program, state: CampaignState, result: StepResult) -> CampaignState:
        """The campaign id is ours; a ledger whose ``started`` row names another is noted once, never obeyed."""
        if state.ledger_campaign == self._campaign:
            return state
        row = EventRow(event="started", ts=self.ts(), campaign=self._campaign, program=program.fingerprint)
        if state.ledger_campaign is None:
            result.events.append(f"campaign {self._campaign} started")
        else:
            row.reason = "campaign-id"
            row.detail = (f"the ledger named the campaign {state.ledger_campaign!r}; its id is {self._campaign!r}, from "
                          "program.md's name or the folder, and a ledger row never changes it")
            result.events.append(f"noted: {row.detail}")
        return self._append(state, [row])

    def _reconcile(self, program: Program, state: CampaignState, prices, result: StepResult) -> CampaignState:
        listed, observed, stuck = self._observe(program, state, result)
        wanted = {e.job_id for e in state.in_flight if e.job_id} | {v.job_id for v in listed if v.job_id not in state.known_jobs}
        finished = [j for j in wanted - stuck if observed[j].stage.terminal and observed[j].stage is not JobStage.DELETED]
        logs, pending, unreadable = self._finished_logs(observed, finished, result)
        rows = reconcile.reconcile(program, state, observed=observed, listed=listed, logs=logs, ts=self.ts(), prices=prices,
                                   pending=pending, unreadable=unreadable)
        for row in rows:
            if isinstance(row, EventRow) and row.reason == "duplicate-job":
                with contextlib.suppress(BackendError):
                    self.backend.cancel(job_id=str(getattr(row, "job_id")))
        result.events += [describe_row(program, r) for r in rows]
        return self._append(state, rows)

    def _observe(self, program: Program, state: CampaignState,
                 result: StepResult) -> tuple[list[JobView], dict[str, JobView], set[str]]:
        """The campaign's jobs as the backend lists them and each in flight as it reports it, after canceling
        those that waited too long to start (their ids: recorded as errors, with no log to read)."""
        listed = self.backend.list_jobs(campaign=self._campaign or "")
        observed: dict[str, JobView] = {v.job_id: v for v in listed}
        for exp in state.in_flight:
            if exp.job_id and exp.job_id not in observed:
                observed[exp.job_id] = self.backend.inspect(job_id=exp.job_id)
        stuck = observe.stuck_jobs(program, state.in_flight, observed)
        repeats = {e.job_id for e in state.in_flight if e.final_of is not None}
        for job_id, why in stuck.items():
            self.backend.cancel(job_id=job_id)
            # A search job that never started is an error (three in a row stop the campaign); a final repeat is
            # canceled, which runs it again once (mlr_action.core.final.to_run).
            stage = JobStage.CANCELED if job_id in repeats else JobStage.ERROR
            observed[job_id] = observed[job_id].model_copy(update={"stage": stage, "message": why})
            result.events.append(f"iter {observed[job_id].iter}: {why}")
        self._listed = [observed[v.job_id] if v.job_id in stuck else v for v in listed]  # canceled: no slot held
        self._reconciled = True
        result.observed = self._listed
        return listed, observed, set(stuck)

    def _finished_logs(self, observed: dict[str, JobView], job_ids: list[str],
                       result: StepResult) -> tuple[dict[str, str], frozenset[str], dict[str, str]]:
        """Logs read whole; jobs whose log is read again next tick; and why the others' never could be."""
        logs, incomplete = self._read_logs(job_ids)
        pending, unreadable = set(), {}
        for job_id, why in incomplete.items():
            wait, text = observe.log_verdict(observed[job_id], why, now=self.clock())
            if wait:
                pending.add(job_id)
                result.events.append(text)
            else:
                unreadable[job_id] = text
        return logs, frozenset(pending), unreadable

    def _read_logs(self, job_ids: list[str]) -> tuple[dict[str, str], dict[str, str]]:
        """The logs of finished jobs that were read whole, and why the others were not (see observe.log_verdict)."""
        logs, incomplete = {}, {}
        for job_id in job_ids:
            try:
                logs[job_id] = clean(self.backend.logs(job_id=job_id))
            except LogIncomplete as exc:
                incomplete[job_id] = redact(str(exc))
        return logs, incomplete

    def _load_backend_cache(self, result: StepResult) -> None:
        """Hand the backend what it looked up on an earlier tick; it checks it is its own (anything else: ignored).

        The file is data anyone who can push may write: one too big, too deeply nested or not JSON is ignored
        with one line, and the backend looks things up again.
        """
        use = getattr(self.backend, "use_cache", None)
        path = self.root / BACKEND_CACHE_PATH
        if use is None or not path.is_file():
            return
        try:
            with path.open("rb") as handle:
                raw = handle.read(BACKEND_CACHE_MAX_BYTES + 1)
            if len(raw) > BACKEND_CACHE_MAX_BYTES:
                raise ValueError(f"over {BACKEND_CACHE_MAX_BYTES // 1_000_000} MB")
            use(json.loads(raw.decode("utf-8")))
        except (OSError, ValueError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else redact(str(exc))[:200]
            result.events.append(f"{BACKEND_CACHE_PATH} ignored ({why}); the backend looks things up again")

    def _save_backend_cache(self) -> None:
        data = self.backend.cache() if hasattr(self.backend, "cache") else None  # type: ignore[attr-defined]
        if data is not None:
            write_atomic(self.root / BACKEND_CACHE_PATH, json.dumps(data, indent=1) + "\n", root=self.root)
