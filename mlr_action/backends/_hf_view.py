"""An HF ``JobInfo`` as the :class:`~mlr_action.core.jobs.JobView` the step reads: stage, charge, waiting.

Guarantees:

- ``duration_s`` is the most HF may bill for the job so far. HF bills a job
  while it is *Starting* or *Running* (https://huggingface.co/docs/hub/jobs-pricing),
  and its API reports only SCHEDULING (which covers starting, and any wait
  for hardware, without saying which is which) and RUNNING. So the charge is
  the upper bound: every second from the job's creation to its end (or to
  now), as HF counts it (``durations.total_secs``, or scheduling plus
  running seconds when that is larger); by the clock only when HF gives no
  count, since the two clocks may disagree.
- ``waiting_s`` is how long a job in SCHEDULING has waited since it was
  created (None in any other stage): what a scheduling limit is read on.
- ``started_after_s`` is how long a job that has left SCHEDULING took to
  start: HF's ``scheduling_secs``, else its start time less its creation,
  else (running, neither said) everything charged so far, which bounds it.
  While the job is live the budget holds that plus its whole timeout
  (:func:`mlr_action.core.budget.observed_charge`): a job that waited past its
  starting reservation (no tick came to cancel it) may still bill it all.
- ``finished_at`` is when a finished job ended, as HF says (None while it is
  live): how long its log has been waited for is counted from it.
- A stage this version does not know is RUNNING: not finished, so charged in
  full; the timeout comes from the ``mlr-timeout`` label (HF does not report it).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from mlr_action.core.jobs import TIMEOUT_LABEL, JobStage, JobView


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def gone(job_id: str, why: str) -> JobView:
    return JobView(job_id=job_id, stage=JobStage.DELETED, message=why)


def stage(info: Any) -> JobStage:
    raw = getattr(info.status.stage, "value", info.status.stage)
    try:
        return JobStage(str(raw).upper())
    except ValueError:  # a stage this version does not know: not finished, so charged in full
        return JobStage.RUNNING


def job_view(info: Any, now: datetime, *, args: list[str]) -> JobView:
    """``info`` as a JobView; ``args`` are the spec's args as the backend reads them back from the command."""
    current = stage(info)
    message = info.status.message
    if current is JobStage.ERROR and not message:
        message = "the job failed (HF gave no status message)"
    return JobView(job_id=str(info.id), stage=current, labels=dict(info.labels or {}), duration_s=billed(info, current, now),
                   message=message, url=getattr(info, "url", None), args=args, flavor=info.flavor,
                   timeout_s=timeout(info.labels or {}), waiting_s=waiting(info, current, now),
                   started_after_s=started_after(info, current, now),
                   finished_at=info.finished_at if current.terminal else None)


def billed(info: Any, current: JobStage, now: datetime) -> float | None:
    """The most HF may bill for the job so far (see the module docstring)."""
    durations = info.durations
    known = [float(v) for v in (getattr(durations, "total_secs", None),) if v is not None]
    running, scheduling = getattr(durations, "running_secs", None), getattr(durations, "scheduling_secs", None)
    if running is not None:
        known.append(float(running) + float(scheduling or 0))
    end, start = (info.finished_at if current.terminal else now), (info.created_at or info.started_at)
    if not known and start is not None and end is not None:  # HF's own count first: our clock may be skewed
        known.append((end - start).total_seconds())
    return max(0.0, *known) if known else None


def waiting(info: Any, current: JobStage, now: datetime) -> float | None:
    """How long a job in SCHEDULING has waited: since its creation, as HF counts it (or by the clock)."""
    if current is not JobStage.SCHEDULING:
        return None
    total = getattr(info.durations, "total_secs", None)
    if total is not None:
        return float(total)
    return max(0.0, (now - info.created_at).total_seconds()) if info.created_at is not None else None


def started_after(info: Any, current: JobStage, now: datetime) -> float | None:
    """How long a job that has left SCHEDULING took to start (see the module docstring); None before."""
    if current in (JobStage.SCHEDULING, JobStage.DELETED):
        return None
    scheduling = getattr(info.durations, "scheduling_secs", None)
    if scheduling is not None:
        return max(0.0, float(scheduling))
    if info.started_at is not None and info.created_at is not None:
        return max(0.0, (info.started_at - info.created_at).total_seconds())
    return billed(info, current, now) if current is JobStage.RUNNING else None


def timeout(labels: dict[str, str]) -> int | None:
    """The timeout the job was submitted with, from its label (HF does not report it); None when unreadable."""
    text = str(labels.get(TIMEOUT_LABEL, ""))
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) < 10**7 else None
