"""An in-memory job backend: the fake that tests and simulations drive by hand.

Guarantees (besides those of :mod:`mlr_action.core.jobs`):

- Nothing runs. A submitted job stays in ``SCHEDULING`` until the test moves
  it with :meth:`InMemoryBackend.advance`; ``cancel`` moves a live job to
  ``CANCELED``.
- Time comes from the ``clock`` given to the constructor, so a test can jump
  ahead: ``duration_s`` is ``now - started`` while running and frozen when the
  job reaches a terminal stage (unless ``advance`` fixed it explicitly).
- ``submit`` is idempotent by the ``mlr-campaign`` and ``mlr-iter`` labels: a
  second submit of the same pair returns the first job's id.
- :meth:`InMemoryBackend.fail_next` makes the next call of a method raise the
  given exception, before the call has any effect or (``after=True``) after it
  (a lost response: the job exists but the caller never learned its id).
- :attr:`InMemoryBackend.jobs` is a read-only, live view of every job ever
  submitted, with its :class:`JobSpec`.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

from mlr_action.backends._common import job_key, job_labels
from mlr_action.core.jobs import CAMPAIGN_LABEL, JobSpec, JobStage, JobView

Clock = Callable[[], float]
METHODS = ("submit", "inspect", "list_jobs", "logs", "cancel", "prices")


@dataclass(frozen=True)
class MemoryJob:
    """One submitted job as the fake holds it."""

    job_id: str
    spec: JobSpec
    labels: dict[str, str]
    stage: JobStage = JobStage.SCHEDULING
    logs: str = ""
    message: str | None = None
    submitted_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    fixed_duration_s: float | None = None  # set by advance(duration_s=...)

    def duration_s(self, now: float) -> float | None:
        if self.fixed_duration_s is not None:
            return self.fixed_duration_s
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else now
        return max(0.0, end - self.started_at)


class InMemoryBackend:
    name = "memory"

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._jobs: dict[str, MemoryJob] = {}
        self._failures: dict[str, deque[tuple[BaseException, bool]]] = defaultdict(deque)

    # -- test controls -------------------------------------------------------

    @property
    def jobs(self) -> Mapping[str, MemoryJob]:
        """Every job ever submitted, by id, in submission order (read-only, live)."""
        return MappingProxyType(self._jobs)

    def advance(
        self,
        job_id: str,
        stage: JobStage | str,
        *,
        duration_s: float | None = None,
        logs: str | None = None,
        message: str | None = None,
    ) -> MemoryJob:
        """Move a job to ``stage``; ``logs`` is appended to its output, ``message`` replaces its own."""
        job = self._job(job_id)
        stage = JobStage(stage)
        now = self._clock()
        changes: dict[str, object] = {"stage": stage}
        if job.started_at is None and stage is not JobStage.SCHEDULING:
            changes["started_at"] = now
        if stage.terminal and job.finished_at is None:
            changes["finished_at"] = now
        if duration_s is not None:
            changes["fixed_duration_s"] = float(duration_s)
        if logs is not None:
            changes["logs"] = job.logs + logs
        if message is not None:
            changes["message"] = message
        return self._replace(job, **changes)

    def fail_next(self, method: str, exc: BaseException, *, after: bool = False) -> None:
        """Make the next call of ``method`` raise ``exc`` (queued: call twice to fail twice)."""
        if method not in METHODS:
            raise ValueError(f"fail_next: unknown method {method!r}; choose one of {', '.join(METHODS)}")
        self._failures[method].append((exc, after))

    # -- JobBackend ----------------------------------------------------------

    def submit(self, *, spec: JobSpec) -> str:
        after = self._fail_before("submit")
        labels = job_labels(spec)
        job_id = self._find(labels) or self._create(spec, labels)
        self._fail_after(after)
        return job_id

    def inspect(self, *, job_id: str) -> JobView:
        after = self._fail_before("inspect")
        job = self._jobs.get(job_id)
        view = self._view(job) if job else JobView(job_id=job_id, stage=JobStage.DELETED, message="no such job")
        self._fail_after(after)
        return view

    def list_jobs(self, *, campaign: str) -> list[JobView]:
        after = self._fail_before("list_jobs")
        views = [self._view(j) for j in self._jobs.values() if j.labels.get(CAMPAIGN_LABEL) == campaign]
        self._fail_after(after)
        return views

    def logs(self, *, job_id: str) -> str:
        after = self._fail_before("logs")
        job = self._jobs.get(job_id)
        self._fail_after(after)
        return job.logs if job else ""

    def cancel(self, *, job_id: str) -> None:
        """Cancel a live job; a finished or unknown job is left as it is."""
        after = self._fail_before("cancel")
        job = self._jobs.get(job_id)
        if job and not job.stage.terminal:
            self.advance(job_id, JobStage.CANCELED, message="canceled")
        self._fail_after(after)

    def prices(self) -> dict[str, float] | None:
        self._fail_after(self._fail_before("prices"))
        return None

    # -- internals -----------------------------------------------------------

    def _job(self, job_id: str) -> MemoryJob:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise KeyError(f"no job {job_id!r} in this InMemoryBackend; known: {', '.join(self._jobs) or 'none'}")

    def _replace(self, job: MemoryJob, **changes: object) -> MemoryJob:
        self._jobs[job.job_id] = new = dataclasses.replace(job, **changes)
        return new

    def _find(self, labels: dict[str, str]) -> str | None:
        key = job_key(labels)
        return next((j.job_id for j in self._jobs.values() if job_key(j.labels) == key), None)

    def _create(self, spec: JobSpec, labels: dict[str, str]) -> str:
        job_id = f"mem-{len(self._jobs) + 1:04d}"
        self._jobs[job_id] = MemoryJob(job_id=job_id, spec=spec, labels=labels, submitted_at=self._clock())
        return job_id

    def _view(self, job: MemoryJob) -> JobView:
        return JobView(job_id=job.job_id, stage=job.stage, labels=dict(job.labels),
                       duration_s=job.duration_s(self._clock()), message=job.message,
                       args=list(job.spec.args), flavor=job.spec.flavor, timeout_s=job.spec.timeout_s)

    def _fail_before(self, method: str) -> BaseException | None:
        """Raise a failure queued for ``method`` now, or return one due after the call."""
        if not self._failures[method]:
            return None
        exc, after = self._failures[method].popleft()
        if not after:
            raise exc
        return exc

    @staticmethod
    def _fail_after(exc: BaseException | None) -> None:
        if exc is not None:
            raise exc
