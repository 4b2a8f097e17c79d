"""``command: validate``: check a pull request's program.md and comment what merging it would approve.

Guarantees: spends nothing and needs no secret. The program.md checked is the
one in the checkout (the pull request's). It is compared with the program
approved on the default branch (the pull request's base when the event does
not name one), read from git objects after a fetch of that branch, and so are
the files of the campaign folder: the comment says when the training script
or any other file the jobs run with changed (see
:mod:`mlr_action.github.pr_comment` for everything it shows). When the approved
program cannot be read, the comment says so. On a pull request the result is
one comment, edited in place on every push, and not created for a pull
request that changes nothing the check reports; a token that cannot comment
(a fork's) only costs a warning. The result is always in the step summary.
It also says what each job would receive from the pull request's commit (the
campaign folder, its dependencies, the exact command, the private repo it is
shipped through) and runs the preflight (:mod:`mlr_action.job.preflight`: local
imports committed, dependencies declared, size; with ``backend: hf`` the
allowed flavors against HF's public hardware catalog, read without a token).
Exit 0 valid, 2 not valid or a preflight problem (every job would fail).
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Mapping

from mlr_action.github import ghenv
from mlr_action.github.inputs import BAD_INPUT, OK, Inputs


def run_validate(inputs: Inputs, env: Mapping[str, str]) -> int:
    from mlr_action.github.pr_comment import CommentError, upsert_comment
    from mlr_action.github.pr_comment_body import program_changes, render_validation
    from mlr_action.core.program import ProgramError, load_program

    ctx = ghenv.RunContext.from_env(env)
    root = (ctx.workspace / inputs.working_directory).resolve()
    path = root / inputs.program
    program, problems = None, None
    try:
        program = load_program(path)
    except FileNotFoundError:
        problems = [f"{inputs.program} does not exist in this checkout; add it (`mlr init` drafts one)"]
    except ProgramError as exc:
        problems = exc.problems
    approved_on = ctx.default_branch or ctx.pr_base
    baseline, files = (None, None)
    if program is not None and approved_on:
        baseline, files = _compare(root, inputs.program, approved_on, program)
    pr = ctx.event.get("pull_request") if isinstance(ctx.event.get("pull_request"), dict) else {}
    head = (pr.get("head") or {}).get("sha") if isinstance(pr.get("head"), dict) else None
    checks = preflight_for(root, inputs.program, program, backend=inputs.backend) if program is not None else None
    body = render_validation(path=inputs.program, program=program, problems=problems, baseline=baseline, files=files,
                             target=ctx.pr_base if ctx.is_pull_request else None, sha=head or ctx.sha, preflight=checks)
    with ghenv.stop_commands():
        ghenv.log(body)
    ghenv.append_summary(body, env)
    ghenv.set_outputs({"state": "", "iter": "", "best-metric": "", "jobs-used": "", "dry-run": "true",
                       "valid": str(program is not None).lower()}, env)
    failing = [line for line in (checks or []) if line.startswith("problem: ")]
    if ctx.is_pull_request and ctx.pr_number:
        nothing = (program is not None and baseline is not None and baseline.state == "approved"
                   and not program_changes(baseline.program, program, files) and not failing)
        try:
            done = upsert_comment(api_url=ctx.api_url, repo=ctx.repository, number=ctx.pr_number,
                                  token=inputs.github_token, body=body, create=not nothing)
            ghenv.emit("notice", f"pull request #{ctx.pr_number}: validation comment {done}")
        except CommentError as exc:
            ghenv.emit("warning", str(exc), title="no comment on the pull request")
    if program is None:
        ghenv.emit("error", f"{inputs.program} is not valid: " + "; ".join(problems or []), title="program.md")
        return BAD_INPUT
    if failing:
        ghenv.emit("error", f"{inputs.program}: every job would fail: " + "; ".join(failing), title="preflight")
        return BAD_INPUT
    return OK


def preflight_for(root: Path, program_name: str, program, *, backend: str) -> list[str]:
    """What each job would receive from this checkout's commit, and the preflight's findings, one line each.

    The folder is read from git objects at HEAD (the pull request's commit), else from the work tree. With
    ``backend: hf`` the allowed flavors are checked against the live hardware catalog (no token is needed,
    and none is used: the check has no secrets).
    """
    from mlr_action.job.preflight_report import checked
    from mlr_action.job.shipped import ShipError

    try:
        shipped = _head_folder(root, program_name)
    except ShipError as exc:
        return [f"problem: {exc}"]
    receives, findings, _ = checked(program, shipped, work_tree=(root / program_name).parent, repo=root)
    if backend == "hf":
        findings += _catalog(program)
    return receives + [str(f) for f in findings]


def _head_folder(root: Path, program_name: str):
    from mlr_action.shell.authority import campaign_folder
    from mlr_action.core.jobs import BackendError
    from mlr_action.github.gitrepo import GitRepo
    from mlr_action.job.shipped import from_commit, from_work_tree

    try:
        repo = GitRepo.open(root, "origin")
        head = repo.rev("HEAD")
        if head is not None:
            return from_commit(repo.git, head, campaign_folder(repo, program_name))
    except BackendError:
        pass
    return from_work_tree((root / program_name).parent)


def _catalog(program):
    """The allowed flavors against HF's live hardware catalog; a warning when it cannot be read."""
    from mlr_action.job.preflight import WARNING, Finding
    from mlr_action.job.preflight_hf import flavor_findings

    try:
        from mlr_action.backends import _hf_http
        from mlr_action.backends.hf import HfBackend
    except ImportError:
        return [Finding(WARNING, "huggingface_hub is not installed here: flavors not checked against HF's catalog")]
    # token=False: the catalog is public, and this check never sends a token (it has none, by design)
    backend = HfBackend(namespace="-", token=False, policy=_hf_http.Policy(retries=0, timeout_s=10.0))  # type: ignore[arg-type]
    return flavor_findings(backend, program)


def _compare(root: Path, program_name: str, branch: str, program):
    """(:class:`~mlr_action.github.pr_comment_body.Baseline` on ``branch``, :class:`~mlr_action.github.pr_comment_body.FileChanges` or None).

    ``program_name`` is program.md's path relative to ``root``; the campaign folder is the one that holds it,
    as the step computes it (:func:`mlr_action.shell.authority.campaign_folder`).
    """
    from mlr_action.shell.authority import campaign_folder, in_folder
    from mlr_action.core.jobs import BackendError
    from mlr_action.github.gitrepo import GitRepo
    from mlr_action.github.gitruns import GitError
    from mlr_action.github.pr_comment_body import Baseline
    from mlr_action.core.program import ProgramError, parse_program

    try:
        repo = GitRepo.open(root, "origin")
        if repo.git("check-ref-format", "--branch", branch, check=False).returncode != 0:
            return Baseline(branch, "unreadable", detail="not a branch name"), None
        tip = repo.fetch(branch)
        if tip is None:
            return Baseline(branch, "unreadable", detail=f"there is no branch {branch} on origin"), None
        folder = campaign_folder(repo, program_name)
        rel = in_folder(folder, posixpath.basename(program_name))
        shown = repo.git("show", f"{tip}:{rel}", check=False)
        files = _files(repo, tip, folder, rel, program.campaign.script)
    except (GitError, BackendError, ValueError) as exc:
        return Baseline(branch, "unreadable", detail=str(exc)), None
    if shown.returncode != 0:
        return Baseline(branch, "none"), files
    try:  # no script check: the script is compared below, from git objects
        approved = parse_program(shown.stdout.decode("utf-8"), root=None, path=f"{branch}:{rel}")
    except UnicodeDecodeError:
        return Baseline(branch, "invalid", detail="not UTF-8 text"), files
    except ProgramError as exc:
        return Baseline(branch, "invalid", detail=exc.problems[0] if exc.problems else ""), files
    return Baseline(branch, "approved", approved), files


def _files(repo, tip: str, folder: str, program_rel: str, script: str):
    """What changed in the campaign ``folder`` (a tree path) between ``tip`` and the checkout's commit, from git objects.

    The script is ``script`` in that folder, as the step reads it; the other paths are given relative to it.
    """
    from mlr_action.shell.authority import in_folder
    from mlr_action.github.pr_comment_body import FileChanges
    from mlr_action.core.program_paths import script_path

    head = repo.rev("HEAD")
    if head is None:
        return None
    changed = repo.changed_paths(repo.tree_of(tip), repo.tree_of(head))
    inside = [p for p in changed if folder == "." or p.startswith(folder + "/")]
    script_rel = in_folder(folder, script_path(script)[0] or script)  # a valid program's script is clean
    status = "unchanged"
    if script_rel in changed:
        was_there = repo.git("cat-file", "-e", f"{tip}:{script_rel}", check=False).returncode == 0
        status = "changed" if was_there else "added"
    cut = 0 if folder == "." else len(folder) + 1
    others = tuple(p[cut:] for p in inside if p not in (program_rel, script_rel))
    return FileChanges(script=script, script_status=status, others=others)
