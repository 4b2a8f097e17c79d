"""Checks and derivations every backend applies to a :class:`JobSpec` the same way.

Guarantees: a spec whose labels disagree with its own campaign or iter, or
whose timeout is not positive, is refused with :class:`PermanentError` before
anything is submitted; the labels a job carries always include
``mlr-campaign`` and ``mlr-iter``, which is what idempotent submit keys on,
and ``mlr-timeout`` (seconds), which a backend that does not report a job's
timeout reads back. Every backend runs the same folder with the same
dependency recipe (:func:`job_folder`) and gives a job the same environment
(:func:`job_env`), so a local run predicts an HF one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from mlr_action.core.jobs import CAMPAIGN_LABEL, ITER_LABEL, TIMEOUT_LABEL, JobSpec, PermanentError, labels_for

if TYPE_CHECKING:
    from mlr_action.job.runner import Recipe
    from mlr_action.job.shipped import ShippedFolder

_NO_KEYS = type("NoCampaignKeys", (), {"dependencies": (), "python": None, "image": None})()


def job_labels(spec: JobSpec) -> dict[str, str]:
    """The labels to submit ``spec`` with: its own, plus campaign and iter if missing."""
    if spec.timeout_s <= 0:
        raise PermanentError(f"job timeout must be positive, got {spec.timeout_s}s; set `timeout` in program.md")
    labels = dict(spec.labels)
    for key, value in {**labels_for(spec.campaign, spec.iter), TIMEOUT_LABEL: str(spec.timeout_s)}.items():
        if labels.setdefault(key, value) != value:
            raise PermanentError(
                f"label {key}={labels[key]!r} disagrees with the spec ({value!r}); "
                "build the labels with labels_for(campaign, iter)"
            )
    return labels


def job_key(labels: dict[str, str]) -> tuple[str | None, str | None]:
    """What makes two submits the same job: the campaign and iter labels."""
    return labels.get(CAMPAIGN_LABEL), labels.get(ITER_LABEL)


# What every job runs with unless its spec says otherwise: Python output reaches the log as it is printed (a job
# killed for its memory loses no buffered line, and a replay stops nowhere mid-line), and no progress bars, whose
# redraws flood a log that is not a terminal and push the metric line out of the tail that is read.
JOB_ENV_DEFAULTS = {
    "PYTHONUNBUFFERED": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # huggingface_hub downloads and uploads (datasets, transformers use it too)
    "TQDM_DISABLE": "1",  # every tqdm bar (tqdm reads TQDM_* for its defaults)
    "TQDM_MININTERVAL": "60",  # and at most a line a minute from a bar a script turns back on
    "UV_NO_PROGRESS": "1",
    "PIP_PROGRESS_BAR": "off",
}


def job_env(spec: JobSpec) -> dict[str, str]:
    """The variables the job sees on top of the environment (DESIGN.md section 7), hygiene defaults first."""
    return {**JOB_ENV_DEFAULTS, "MLR_CAMPAIGN": spec.campaign, "MLR_ITER": str(spec.iter), **spec.env}


def job_folder(spec: JobSpec) -> tuple[ShippedFolder, str, Recipe]:
    """The folder the job runs in, the script's path in it, and its dependency recipe.

    A spec built without a folder (older callers) runs its script alone: the authorized bytes
    (``spec.script_bytes``), or else the file at ``spec.script``, read without following a symlink.
    """
    from mlr_action.job import runner, shipped

    folder, script, plan = spec.folder, spec.script_rel, spec.recipe
    if folder is None or script is None:
        path = Path(spec.script)
        data = spec.script_bytes if spec.script_bytes is not None else _read_script(path)
        script = re.sub(r"[^A-Za-z0-9_.-]", "_", path.name).lstrip(".") or "train.py"
        script = script if script.endswith(".py") else script + ".py"
        folder = shipped.one_file(script, data)
    return folder, script, plan if plan is not None else runner.recipe(folder, script, _NO_KEYS)


def _read_script(path: Path) -> bytes:
    from mlr_action.job.shipped import read_nofollow

    try:
        return read_nofollow(path.parent, path.name)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise PermanentError(f"the job script {path} does not exist; set `script:` in program.md's Campaign block to a "
                             "file in the repository; this job was not submitted") from None
    except OSError as exc:
        raise PermanentError(f"cannot read the job script {path} ({exc.strerror or exc}; a symlink is never "
                             "followed); fix it; this job was not submitted") from None
