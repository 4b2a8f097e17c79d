"""``command: validate``: check a pull request's program.md and comment the envelope and worst case.

Guarantees: spends nothing and needs no secret. The program.md checked is the
one in the checkout (the pull request's); the approved one it is compared with
is read from the base branch. On a pull request the result is one comment,
edited in place on every push; a token that cannot comment (a fork's) only
costs a warning. The result is always in the step summary. Exit 0 valid, 2 not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from mlr_action import ghenv
from mlr_action.action import BAD_INPUT, OK, Inputs


def run_validate(inputs: Inputs, env: Mapping[str, str]) -> int:
    from mlr_action.pr_comment import CommentError, render_validation, upsert_comment
    from mlr_action.program import ProgramError, load_program

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
    base = ctx.pr_base or ctx.default_branch
    approved, compared = _approved(root, path, base) if program is not None and base else (None, False)
    head = ctx.event.get("pull_request", {}).get("head", {}).get("sha") if isinstance(ctx.event.get("pull_request"), dict) else None
    body = render_validation(path=inputs.program, program=program, problems=problems, approved=approved,
                             base=base if compared else None, sha=head or ctx.sha)
    with ghenv.stop_commands():
        ghenv.log(body)
    ghenv.append_summary(body, env)
    ghenv.set_outputs({"state": "", "iter": "", "best-metric": "", "jobs-used": "", "dry-run": "true",
                       "valid": str(program is not None).lower()}, env)
    if ctx.is_pull_request and ctx.pr_number:
        try:
            done = upsert_comment(api_url=ctx.api_url, repo=ctx.repository, number=ctx.pr_number,
                                  token=inputs.github_token, body=body)
            ghenv.emit("notice", f"pull request #{ctx.pr_number}: validation comment {done}")
        except CommentError as exc:
            ghenv.emit("warning", str(exc), title="no comment on the pull request")
    if program is None:
        ghenv.emit("error", f"{inputs.program} is not valid: " + "; ".join(problems or []), title="program.md")
        return BAD_INPUT
    return OK


def _approved(root: Path, path: Path, base: str):
    """(the program approved on ``base`` or None, whether ``base`` could be read at all)."""
    from mlr_action import gitsync
    from mlr_action.backends.base import BackendError
    from mlr_action.program import ProgramError, parse_program

    try:
        text = gitsync.show_file(root, branch=base, path=path)
    except (gitsync.GitError, BackendError):
        return None, False
    if text is None:
        return None, True
    try:  # no script check: only the envelope is compared
        return parse_program(text, root=None, path=f"{base}:{path.name}"), True
    except ProgramError:
        return None, False
