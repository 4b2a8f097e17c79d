"""What a job sees (DESIGN.md section 7), and the campaign id its labels carry.

Guarantees: pure. The job runs ``script`` with every param and fixed value as
``--name=value`` (one argv element each, never through a shell) and the
environment ``MLR_CAMPAIGN``, ``MLR_ITER`` and ``MLR_OUTPUT_REPO``; it carries
the labels ``mlr-campaign`` and ``mlr-iter`` that reconciliation finds it by.
A repeat of the final evaluation (a row with ``final_of``) also gets the
final block's ``fixed`` and its own seed (:func:`mlr_action.core.final.job_values`)
and the labels ``mlr-final-of`` and ``mlr-repeat``.
In GitHub mode the spec also carries the script's bytes and the commit that
authorized them (:class:`mlr_action.shell.authority.Snapshot`): those bytes are what
runs, and the job is labelled ``mlr-commit`` with that commit.

Only program.md decides what a job may touch, never a ledger row: the row
gives the config, flavor and timeout (checked against the envelope before a
submit), but ``MLR_OUTPUT_REPO`` is always
:func:`~mlr_action.core.program_paths.output_repo_for` of the envelope, the campaign id
and the iter, so it always matches an ``output_repos`` glob whatever the row
says. The script's path is absolute but not resolved, so a backend can see
(and refuse) a script that is a symlink.

The job runs in the campaign folder as shipped (:mod:`mlr_action.job.shipped`):
the snapshot's commit in GitHub mode, the work tree's files locally (given by
the step). The spec carries it, the script's path in it, its digest (the
row's ``folder_hash``) and the dependency recipe (:mod:`mlr_action.job.runner`),
so every backend runs the same files the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from mlr_action.core.jobs import COMMIT_LABEL, FINAL_OF_LABEL, REPEAT_LABEL, JobSpec, labels_for
from mlr_action.core.final import job_values
from mlr_action.core.ledger import ExperimentRow
from mlr_action.core.program import Program
from mlr_action.core.program_paths import output_repo_for, script_path
from mlr_action.job.runner import recipe

if TYPE_CHECKING:
    from mlr_action.shell.authority import Snapshot
    from mlr_action.job.shipped import ShippedFolder


def job_spec(program: Program, campaign_id: str, row: ExperimentRow, root: Path,
             snapshot: Snapshot | None = None, shipped: ShippedFolder | None = None) -> JobSpec:
    """What the job sees (DESIGN.md section 7): --name=value args and the MLR_* environment.

    With a ``snapshot`` (GitHub mode) the spec carries the authorized script's bytes and commit, and the
    commit's campaign folder; else ``shipped`` (the work tree's, read by the step) is the one the job runs in.
    """
    if snapshot is not None and snapshot.shipped is not None:
        shipped = snapshot.shipped
    script_rel = script_path(program.campaign.script)[0] or program.campaign.script
    final = row.final_of is not None
    folder = Path(program.root) if program.root not in ("", ".") else root  # script: is relative to program.md's
    labels = labels_for(campaign_id, row.iter)
    if snapshot:
        labels[COMMIT_LABEL] = snapshot.commit[:40]
    if final:
        labels.update({FINAL_OF_LABEL: str(row.final_of), REPEAT_LABEL: str(row.repeat)})
    return JobSpec(
        campaign=campaign_id,
        iter=row.iter,
        script=str((folder / program.campaign.script).absolute()),  # not resolved: a link stays visible
        script_bytes=snapshot.script if snapshot else None,
        commit=snapshot.commit if snapshot else None,
        folder=shipped,
        recipe=recipe(shipped, script_rel, program.campaign) if shipped is not None else None,
        script_rel=script_rel if shipped is not None else None,
        folder_hash=shipped.code_digest() if shipped is not None else None,
        args=args_of(program, row),
        env={"MLR_CAMPAIGN": campaign_id, "MLR_ITER": str(row.iter),
             "MLR_OUTPUT_REPO": output_repo_for(program.envelope, campaign_id, row.iter)},
        flavor=row.flavor or program.default_flavor,
        timeout_s=row.charged_timeout_s,
        labels=labels,
    )


def args_of(program: Program, row: ExperimentRow) -> list[str]:
    """The job's ``--name=value`` args: the row's config, then ``fixed``; a final evaluation's repeat also gets
    the final block's ``fixed`` and its seed (:func:`mlr_action.core.final.job_values`)."""
    values = job_values(program, row) if row.final_of is not None else {**row.config, **program.campaign.fixed}
    return [f"--{name}={value}" for name, value in values.items()]


def campaign_id_for(program: Program, root: Path) -> str:
    if program.campaign.name:
        return program.campaign.name
    slug = re.sub(r"[^a-z0-9-]+", "-", root.resolve().name.lower()).strip("-")
    return slug[:40] or "campaign"
