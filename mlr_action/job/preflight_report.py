"""The preflight as people read it: what a job receives, and every finding, for ``mlr validate`` and the PR check.

Guarantees: :func:`checked` is the one core both share (what a job receives
from the shipped folder, one line each; the folder's findings; the campaign
id); :func:`report` adds, given the hf backend, the HF checks of
:mod:`mlr_action.job.preflight_hf`, and says whether no ``problem`` was
found. A folder that cannot be shipped is one problem line, never a
traceback. Nothing here writes or spends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlr_action.job.preflight import Finding, folder_findings, problems
from mlr_action.job.preflight_hf import hf_findings
from mlr_action.job.shipped import ShippedFolder


def checked(program: Any, shipped: ShippedFolder, *, work_tree: Path, repo: Path) -> tuple[list[str], list[Finding], str]:
    """What a job receives from ``shipped`` (one line each), the folder's findings, and the campaign id.

    The one core of ``mlr validate`` (:func:`report`) and the pull request check
    (:func:`mlr_action.github.action_validate.preflight_for`); each adds its own HF checks.
    """
    from mlr_action.job.jobspec import campaign_id_for
    from mlr_action.core.program_paths import script_path
    from mlr_action.job.receives import receives_lines
    from mlr_action.job.runner import code_repo, recipe

    script = script_path(program.campaign.script)[0] or program.campaign.script
    plan = recipe(shipped, script, program.campaign)
    findings = folder_findings(shipped, script, plan, work_tree=work_tree)
    campaign = campaign_id_for(program, repo)
    repo_id = code_repo(program.campaign.namespace or "<the token's user>", campaign)
    return receives_lines(program, shipped, plan, script, code_repo=repo_id), findings, campaign


def report(program: Any, *, folder: Path, repo: Path, backend: Any = None) -> tuple[list[str], bool]:
    """The lines of ``mlr validate``'s "What a job receives" and "Preflight" sections, and whether no problem.

    ``folder`` holds program.md (the work tree's files are read as git would commit them); ``backend``, the hf
    backend, adds the token, namespace and flavor checks.
    """
    from mlr_action.job.shipped import ShipError, from_work_tree

    try:
        shipped = from_work_tree(folder)
    except ShipError as exc:
        return ["Preflight", f"  problem: {exc}"], False
    receives, findings, campaign = checked(program, shipped, work_tree=folder, repo=repo)
    if backend is not None:
        findings += hf_findings(backend, program, campaign)
    lines = ["What a job receives", *(f"  {line}" for line in receives)]
    lines += ["", "Preflight", *(f"  {f}" for f in findings)]
    bad = problems(findings)
    lines.append(f"  {len(bad)} problem{'s' * (len(bad) != 1)}: fix each before approving" if bad
                 else "  no problem found")
    return lines, not bad
