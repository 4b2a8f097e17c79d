"""What an HF job is given: its image, the launcher command, the environment and the folder to mount.

Guarantees:

- :func:`ship` builds the job from the spec alone, the same way for every
  submit: the folder is ``spec.folder`` (a spec built without one ships its
  script alone: the authorized bytes, ``spec.script_bytes``, or else the file
  at ``spec.script``); a script that is missing is a :class:`PermanentError`
  before any request (:func:`mlr_action.backends._common.job_folder`).
- The command is ``bash -c <launcher> mlr-job <args...>``: the launcher of
  :mod:`mlr_action.job.runner`, then the spec's args after the ``mlr-job``
  marker, which is how the backend reads them back from a listed job.
- The environment is the ``MLR_*`` environment every backend gives
  (:func:`mlr_action.backends._common.job_env`) and, with the job wake-up,
  where to dispatch the next tick. No code travels in it, and the wake-up
  adds no token to it: the tokens go as job secrets, in ``HfBackend.submit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlr_action.backends._common import job_env, job_folder
from mlr_action.core.jobs import JobSpec
from mlr_action.job import runner
from mlr_action.job.shipped import ShippedFolder
from mlr_action.job.wakeup import Wake


@dataclass(frozen=True)
class Shipment:
    """What the container gets: its image, the launcher command, the environment, and the folder to mount."""

    image: str
    command: list[str]
    env: dict[str, str]
    folder: ShippedFolder


def ship(spec: JobSpec, *, image: str = runner.UV_IMAGE, wake: Wake | None = None) -> Shipment:
    """The job for ``spec``: its folder and a command that runs the script there; PermanentError when it cannot.

    The folder is ``spec.folder``; a spec built without one ships its script alone (the authorized bytes,
    ``spec.script_bytes``, or else the file at ``spec.script``). With ``wake``, the launcher dispatches the
    workflow when the script exits, and the environment says where (the token goes as a secret, in submit).
    """
    folder, script, plan = job_folder(spec)
    command = ["bash", "-c", runner.launcher(plan, script, wake=wake is not None), "mlr-job", *spec.args]
    env = {**job_env(spec), **(wake.env() if wake else {})}
    return Shipment(image=plan.image or image, command=command, env=env, folder=folder)


def args_of(info: Any) -> list[str]:
    """The spec's args of a listed job: what follows the launcher's ``mlr-job`` marker (see :func:`ship`)."""
    words = [str(w) for w in [*(info.command or []), *(getattr(info, "arguments", None) or [])]]
    return words[words.index("mlr-job") + 1:] if "mlr-job" in words else []
