"""What a job receives, in words: the lines ``mlr validate``, the pull request check and ``mlr reproduce`` show.

Guarantees: pure; the command shown is the one the backends run
(:mod:`mlr_action.job.runner`), word for word, with the args as ``--name=value``
(the searched ones as ``--name=<name>`` when no experiment gives them).
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from mlr_action.job.runner import MOUNT, UV_IMAGE, Recipe
from mlr_action.job.shipped import ShippedFolder


def job_args(program: Any, config: dict[str, Any] | None = None) -> list[str]:
    """The args of a job: ``config`` (or ``--name=<name>`` for each searched param) and the fixed values."""
    values = {**({k: f"<{k}>" for k in program.campaign.params} if config is None else config), **program.campaign.fixed}
    return [f"--{name}={value}" for name, value in values.items()]


def command_line(plan: Recipe, script: str, args: list[str], *, uv: bool = True) -> str:
    """``uv run ... script args`` (``python script args`` without ``uv``) as a shell would take it.

    A placeholder (``--lr=<lr>``) is shown as it is: it stands for a value, it is not one.
    """
    words = ["uv", "run", *plan.uv_args()] if uv else ["python"]
    shown = [shlex.quote(w) for w in [*words, script]]
    shown += [a if re.fullmatch(r"--[A-Za-z_][A-Za-z0-9_]*=<[A-Za-z0-9_]+>", a) else shlex.quote(a) for a in args]
    return " ".join(shown)


def receives_lines(program: Any, folder: ShippedFolder, plan: Recipe, script: str, *,
                   code_repo: str | None = None) -> list[str]:
    """One line per thing a job receives: its folder, dependencies, command, environment and, on HF, where from."""
    image = plan.image or UV_IMAGE
    where = code_repo or "<namespace>/mlr-code-<campaign>"
    lines = [
        f"folder        the campaign folder as committed: {len(folder.files)} files from {folder.source}",
        f"dependencies  {plan.describe()}",
        f"command       {command_line(plan, script, job_args(program))}",
        "environment   MLR_CAMPAIGN, MLR_ITER, MLR_OUTPUT_REPO; HF_TOKEN as a secret (HF)",
        f"on HF         image {image}; the folder uploaded once to the private model repo {where} and mounted "
        f"read-only at {MOUNT}, then copied to a writable folder the job runs in"
        + ("" if not plan.image else "; without uv in the image: pip install, then python"),
        "locally       a fresh copy of the folder under .mlr/jobs/; uv run when uv is installed, else this Python",
    ]
    return lines
