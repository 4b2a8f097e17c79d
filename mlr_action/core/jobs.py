"""What every job backend guarantees, and the typed records that cross the seam.

A backend runs one experiment as one job and reports on it. Nothing past a
backend sees an SDK object or raw JSON: only :class:`JobSpec` goes in and
:class:`JobView` comes out.

Every backend guarantees:

- ``submit`` starts the job without waiting for it and returns its id. It
  labels the job with ``spec.labels`` (at least ``mlr-campaign`` and
  ``mlr-iter``, and ``mlr-timeout``, its timeout in seconds) so :meth:`JobBackend.list_jobs` can find it again after a crash.
- ``list_jobs(campaign=...)`` returns every job ever submitted with that
  campaign label, in any stage, including ones the caller has forgotten.
- ``inspect`` returns the job's stage and, once it has started, the walltime
  charged so far (``duration_s``); a job the backend no longer knows is
  reported as ``DELETED``, never as an exception.
- ``logs`` returns the job's output so far (stdout and stderr, as text). A
  backend that cannot prove it read a finished job's whole log raises
  :class:`LogIncomplete` (a :class:`TransientError`) instead of returning part
  of it: a result is never read from a cut-off log.
- Transient failures (network, rate limits, 5xx) raise :class:`TransientError`;
  anything that will fail the same way again raises :class:`PermanentError`.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

CAMPAIGN_LABEL = "mlr-campaign"
ITER_LABEL = "mlr-iter"
# The job's timeout in seconds: HF Jobs does not report it, and the budget charges a job in flight its full
# timeout, so a job whose ledger rows were lost is charged what it may really run, not the envelope's worst.
TIMEOUT_LABEL = "mlr-timeout"
# GitHub mode: the commit at the tip of the default branch that authorized the job (its first 40 hex digits:
# the whole sha of a SHA-1 repository, within the length a label value may have).
COMMIT_LABEL = "mlr-commit"
# A repeat of the final evaluation (mlr_action.core.final): the search iter whose config it runs again, and which
# repeat it is, so a job whose ledger rows were lost is adopted as that repeat, never as a search result.
FINAL_OF_LABEL = "mlr-final-of"
REPEAT_LABEL = "mlr-repeat"


class JobStage(str, enum.Enum):
    SCHEDULING = "SCHEDULING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    CANCELED = "CANCELED"
    DELETED = "DELETED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STAGES


TERMINAL_STAGES = frozenset({JobStage.COMPLETED, JobStage.ERROR, JobStage.CANCELED, JobStage.DELETED})


class JobSpec(BaseModel):
    """Everything needed to run one experiment (DESIGN.md section 7)."""

    model_config = ConfigDict(frozen=True)

    campaign: str
    iter: int
    script: str  # absolute path of the script on this machine / in the checkout
    args: list[str]  # --name=value for every param and fixed value
    env: dict[str, str]  # MLR_CAMPAIGN, MLR_ITER, MLR_OUTPUT_REPO
    flavor: str
    timeout_s: int
    labels: dict[str, str]
    # GitHub mode: the script's bytes as committed at ``commit``, the tip of the default branch that
    # authorized the spend. A backend runs these bytes (hf ships them; local refuses a work tree that
    # differs). None in local mode: the file at ``script`` is what runs.
    script_bytes: bytes | None = Field(None, repr=False)
    commit: str | None = None
    # The campaign folder the job runs in (a mlr_action.job.shipped.ShippedFolder: the commit's folder in GitHub
    # mode, the work tree's locally) and how its Python gets its dependencies (a mlr_action.job.runner.Recipe).
    # None for a spec built without them (older callers): the backend ships the script alone.
    folder: Any = Field(None, repr=False, exclude=True)
    recipe: Any = Field(None, repr=False, exclude=True)
    script_rel: str | None = None  # the script's path in the folder, POSIX
    folder_hash: str | None = None  # the folder's digest (recorded on the ledger row)


class JobView(BaseModel):
    """What a backend observed of one job."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    stage: JobStage
    labels: dict[str, str] = Field(default_factory=dict)
    duration_s: float | None = None
    message: str | None = None  # the backend's own status message, e.g. "OOMKilled"
    url: str | None = None
    # What the job was submitted with, when the backend can tell: a job adopted after its ledger rows were
    # lost (a crash, a rejected push) is recorded with its real config, flavor and timeout.
    args: list[str] = Field(default_factory=list)  # the spec's --name=value args
    flavor: str | None = None
    timeout_s: int | None = None
    # Seconds the job has waited to start (SCHEDULING), when the backend says; what a scheduling limit is read on.
    waiting_s: float | None = None
    # Seconds the job took to start, once it has started (None before, or when the backend does not say): a job that
    # waited longer than its starting reservation may still bill that wait plus its whole timeout.
    started_after_s: float | None = None
    finished_at: datetime | None = None  # when it reached its terminal stage, when the backend says

    @property
    def iter(self) -> int | None:
        return _label_int(self.labels, ITER_LABEL)

    @property
    def final_repeat(self) -> tuple[int, int] | None:
        """``(final_of, repeat)`` of a final evaluation's job, from its labels; None for a search job."""
        of, repeat = _label_int(self.labels, FINAL_OF_LABEL), _label_int(self.labels, REPEAT_LABEL)
        return (of, repeat) if of is not None and repeat is not None and of >= 1 and repeat >= 1 else None


def _label_int(labels: dict[str, str], key: str) -> int | None:
    try:
        return int(labels[key])
    except (KeyError, ValueError):
        return None


class BackendError(Exception):
    """A backend call failed; ``str(exc)`` says what happened and what to do."""


class TransientError(BackendError):
    """Try again on the next tick (network, 429, 5xx). Nothing was charged."""


class PermanentError(BackendError):
    """Retrying will fail the same way (bad token, no credits, bad namespace)."""


class LogIncomplete(TransientError):
    """The log of a finished job could not be proven whole (the replay stalled or broke off): read it again later.

    ``text`` is what was read (never to be evaluated as the result); ``str(exc)`` says why it is not whole.
    """

    def __init__(self, message: str, *, text: str = "") -> None:
        super().__init__(message)
        self.text = text


class JobBackend(Protocol):
    name: str

    def submit(self, *, spec: JobSpec) -> str: ...

    def inspect(self, *, job_id: str) -> JobView: ...

    def list_jobs(self, *, campaign: str) -> list[JobView]: ...

    def logs(self, *, job_id: str) -> str: ...

    def cancel(self, *, job_id: str) -> None: ...

    def prices(self) -> dict[str, float] | None:
        """Live USD-per-hour prices by flavor, or None when the backend has none."""
        ...


def labels_for(campaign: str, iteration: int) -> dict[str, str]:
    return {CAMPAIGN_LABEL: campaign, ITER_LABEL: str(iteration)}
