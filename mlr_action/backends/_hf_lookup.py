"""The campaign's jobs on HF, found by their labels: what exactly-once submit and the listing rest on.

Guarantees:

- :meth:`JobLookup._find` returns the job already submitted for a campaign
  and iter (the earliest created, by creation time then id), so a submit
  whose earlier outcome was unknown never creates a second job.
- :meth:`JobLookup._settle`: when two steps raced past ``_find`` and both
  created a job, both keep the earliest created, and the step that created a
  later one cancels it at once, before it can start. When the listing fails
  it keeps its own; the next step's reconcile cancels the duplicate.
- :meth:`JobLookup._list` asks HF for the jobs with the given labels and
  returns them as :class:`JobView` rows sorted by iter then id; each view
  remembers how its job ends (whether its launcher prints its last line, and
  its stage), which ``HfBackend.logs`` needs to prove a log whole.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, Callable

from mlr_action.backends import _hf_view
from mlr_action.backends._common import job_key
from mlr_action.backends._hf_calls import HfCalls
from mlr_action.backends._hf_ship import args_of
from mlr_action.core.jobs import CAMPAIGN_LABEL, ITER_LABEL, BackendError, JobStage, JobView
from mlr_action.job import runner


class JobLookup(HfCalls):
    """The lookup half of :class:`mlr_action.backends.hf.HfBackend`; it provides ``namespace()`` and ``clock``."""

    clock: Callable[[], datetime]
    namespace: Callable[[], str]
    _ends: dict[str, tuple[bool, JobStage]]  # job id -> (its launcher prints SENTINEL, its stage)

    def _list(self, labels: dict[str, str]) -> list[JobView]:
        infos = self._call("listing the campaign's jobs",
                           lambda: list(self.api.list_jobs(labels=labels, namespace=self.namespace())))
        now = self.clock()
        return sorted((self._view(i, now) for i in infos), key=lambda v: (v.iter if v.iter is not None else -1, v.job_id))

    def _view(self, info: Any, now: datetime) -> JobView:
        """``info`` as a JobView, remembering what ``logs`` needs to know of how the job ends."""
        view = _hf_view.job_view(info, now, args=args_of(info))
        self._ends[view.job_id] = (runner.prints_sentinel(list(info.command or [])), view.stage)
        return view

    def _settle(self, labels: dict[str, str], created: str) -> str:
        """The job for these labels once two steps raced past :meth:`_find` and both created one.

        Both keep the earliest created (a step that saw only its own job created the earliest), and the
        step that created a later one cancels it at once, before it can start. Unsettled (the listing
        failed), a duplicate is canceled by the next step's reconcile (a ``duplicate-job`` row).
        """
        try:
            same = [i for i in self._same_iter(labels, "checking for a concurrent submit of the same iter")
                    if _hf_view.stage(i) is not JobStage.CANCELED]
        except BackendError:
            return created
        if len(same) < 2:
            return created
        first = str(same[0].id)
        if first != created:
            with contextlib.suppress(BackendError):
                self._call(f"canceling job {created}, a duplicate of {first}",
                           lambda: self.api.cancel_job(job_id=created, namespace=self.namespace()), writes=True)
        return first

    def _find(self, labels: dict[str, str]) -> str | None:
        """The job already submitted for these labels (the earliest created), if any."""
        same = self._same_iter(labels, "looking for a job already submitted for this iter")
        return str(same[0].id) if same else None

    def _same_iter(self, labels: dict[str, str], action: str) -> list[Any]:
        """The jobs HF lists with the campaign and iter of ``labels``, the earliest created first."""
        key = job_key(labels)
        wanted = {CAMPAIGN_LABEL: labels[CAMPAIGN_LABEL], ITER_LABEL: labels[ITER_LABEL]}
        infos = self._call(action, lambda: list(self.api.list_jobs(labels=wanted, namespace=self.namespace())))
        same = [i for i in infos if job_key(dict(i.labels or {})) == key]
        return sorted(same, key=lambda i: (i.created_at.timestamp() if i.created_at else float("inf"), str(i.id)))
