"""One cron tick in GitHub Actions: decide whether it may spend, run one step, commit, report.

Guarantees (on top of :mod:`mlr_action.action`'s):

- The decision to spend is made before the step, from the event and the refs
  (:func:`mlr_action.ghenv.spend_blockers`); a run that may not spend runs
  :func:`mlr_action.dryrun.dry_run`, which calls no backend, LLM or forge.
- ``program.md`` comes from the default branch: on any other ref it is read
  from the remote's default branch into a temporary file, never from the
  checkout. The bot never writes it.
- A spending step ends with :func:`mlr_action.gitsync.publish_runs`, even when
  the step failed part-way, so rows written before a transient error are kept.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Mapping

from mlr_action import ghenv
from mlr_action.action import (BAD_INPUT, TRANSIENT, ActionError, Inputs, Problem, credential_problems, empty_outputs,
                               report_problems)
from mlr_action.dryrun import HEADLINE as DRY_RUN_HEADLINE

DEFAULT_BRANCH_COPY = ".mlr-default-branch-program.md"  # untracked, removed after the step
NOT_A_CHECKOUT = Problem("the working directory is not a git checkout",
                         "add `- uses: actions/checkout@v4` (pinned) as a step before mlr-action")


def run_step(inputs: Inputs, env: Mapping[str, str]) -> int:
    from mlr_action import gitsync

    ctx = ghenv.RunContext.from_env(env)
    root = (ctx.workspace / inputs.working_directory).resolve()
    try:
        branch = gitsync.checkout_branch(root)
        default = ctx.default_branch or gitsync.remote_default_branch(root)
    except gitsync.GitError:
        raise ActionError(NOT_A_CHECKOUT) from None
    if default is None:
        raise ActionError(Problem("the repository's default branch is unknown, so program.md cannot be read from it",
                                  "run the workflow on schedule, push or workflow_dispatch, with actions/checkout"))
    if inputs.ledger_branch == default:
        raise ActionError(Problem(f"ledger-branch is the default branch {default}",
                                  "use a branch of its own, such as mlr-ledger, or leave ledger-branch empty"))
    blockers = ghenv.spend_blockers(ctx, default_branch=default, checkout_branch=branch)
    program_path = root / inputs.program
    if blockers:  # not the default branch's checkout: read program.md from the default branch itself
        program_path = _program_from_default(root, program_path, default)
    try:
        return _tick(inputs, env, root, program_path, dry=inputs.dry_run or bool(blockers), blockers=blockers)
    finally:
        (program_path.parent / DEFAULT_BRANCH_COPY).unlink(missing_ok=True)


def _tick(inputs: Inputs, env: Mapping[str, str], root: Path, program_path: Path, *, dry: bool,
          blockers: list[str]) -> int:
    from mlr_action import gitsync
    from mlr_action.backends.base import TransientError

    try:
        if inputs.ledger_branch:
            gitsync.prepare_runs(root, branch=inputs.ledger_branch)
    except gitsync.GitError as exc:
        raise ActionError(Problem(f"could not read the ledger branch {inputs.ledger_branch}: {exc}",
                                  "check the ledger-branch input and the workflow's `contents: write` permission"))
    except TransientError as exc:
        raise ActionError(Problem(f"could not read the ledger branch: {exc}", "nothing to do: the next tick retries"),
                          TRANSIENT) from None
    problems = credential_problems(inputs, env, may_spend=not dry, program_exists=program_path.exists())
    if problems:
        report_problems(problems, env, title="missing secret")
        empty_outputs(env, **{"dry-run": str(dry).lower()})
        return BAD_INPUT

    why = blockers or (["the dry-run input is true"] if dry else [])
    for reason in blockers:
        ghenv.emit("notice", f"dry run: {reason}", title="mlr-action spends nothing here")
    if dry:
        from mlr_action.dryrun import dry_run

        report = dry_run(root, program_path, proposer=inputs.proposer)
        events, exit_code = report.lines, report.exit_code
    else:
        try:
            events, exit_code = _spend(inputs, root, program_path)
        except ActionError:
            raise
        except Exception as exc:  # a bug: still commit what the step wrote (a submitted job's row), then say so
            traceback.print_exc()
            events, exit_code = [f"unexpected error: {type(exc).__name__}: {_redact(str(exc))}"], TRANSIENT
    events = [_redact(e) for e in events]  # the log, the commit message and the step summary all quote them
    with ghenv.stop_commands():
        for line in events:
            ghenv.log(line)
    if not dry:
        exit_code = _publish(root, inputs, events, exit_code)
    return _report(root, program_path, events, exit_code, dry=dry, why=why, env=env)


def _redact(text: str) -> str:
    from mlr_action.redaction import redact

    return redact(text)


def _program_from_default(root: Path, program_path: Path, default: str) -> Path:
    from mlr_action import gitsync
    from mlr_action.backends.base import TransientError

    try:
        text = gitsync.show_file(root, branch=default, path=program_path)
    except gitsync.GitError as exc:
        raise ActionError(Problem(f"could not read {program_path.name} from the default branch {default}: {exc}",
                                  "make sure actions/checkout ran and the default branch exists")) from None
    except TransientError as exc:
        raise ActionError(Problem(f"could not fetch the default branch {default}: {exc}", "re-run the workflow"),
                          TRANSIENT) from None
    if text is None:  # none approved yet: the step sees no program.md (onboarding)
        return program_path.parent / ".mlr-no-program-on-default-branch" / program_path.name
    # Next to the checkout's own, because paths in program.md are relative to its folder.
    copy = program_path.parent / DEFAULT_BRANCH_COPY
    copy.write_text(text, encoding="utf-8")
    return copy


def _spend(inputs: Inputs, root: Path, program_path: Path) -> tuple[list[str], int]:
    """One real step, in this process; the forge and gitsync read GITHUB_TOKEN and MLR_LEDGER_BRANCH."""
    from mlr_action.cli import _make_step, build_parser
    from mlr_action.gitsync import LEDGER_BRANCH_ENV

    os.environ[LEDGER_BRANCH_ENV] = inputs.ledger_branch
    argv = ["step", "--repo", str(root), "--program", str(program_path), "--backend", inputs.backend,
            "--proposer", inputs.proposer, "--forge", inputs.forge, *(["--model", inputs.model] if inputs.model else [])]
    try:
        step = _make_step(build_parser().parse_args(argv))
    except (ValueError, ImportError) as exc:
        raise ActionError(Problem(f"the step could not start: {exc}", "check the backend, proposer and forge inputs"))
    result = step.run()
    return list(result.events), result.exit_code


def commit_message(events: list[str]) -> str:
    """``mlr: <what the step did>``: the events in the subject (shortened), each in full in the body."""
    events = [e.strip() for e in events if e.strip()]
    if not events:
        return "mlr: step\n"
    subject = "mlr: " + "; ".join(e.splitlines()[0] for e in events)
    subject = subject if len(subject) <= 100 else subject[:99] + "…"
    body = "\n".join(f"- {e}" for e in events) if len(events) > 1 or subject.endswith("…") else ""
    return f"{subject}\n\n{body}".strip() + "\n"


def _publish(root: Path, inputs: Inputs, events: list[str], exit_code: int) -> int:
    from mlr_action import gitsync
    from mlr_action.backends.base import TransientError

    try:
        if gitsync.publish_runs(root, message=commit_message(events), branch=inputs.ledger_branch):
            ghenv.log(f"committed and pushed runs/ to {inputs.ledger_branch or 'the default branch'}")
    except gitsync.GitError as exc:
        ghenv.emit("error", str(exc), title="mlr-action could not commit runs/")
        return exit_code or BAD_INPUT
    except TransientError as exc:
        ghenv.emit("warning", str(exc), title="mlr-action could not push runs/")
        return exit_code or TRANSIENT
    return exit_code


def _status(root: Path, program_path: Path) -> tuple[dict, int | None]:
    from mlr_action.ledger import LEDGER_PATH, LedgerError, read_ledger
    from mlr_action.program import ProgramError
    from mlr_action.state import fold
    from mlr_action.views import campaign_status

    try:
        status = campaign_status(root, program_path)
        last = max(fold(read_ledger(root / LEDGER_PATH)).experiments, default=None)
    except ProgramError:
        return {"state": "invalid_program"}, None
    except LedgerError:
        return {"state": "invalid_ledger"}, None
    return status, last


def _report(root: Path, program_path: Path, events: list[str], exit_code: int, *, dry: bool, why: list[str],
            env: Mapping[str, str]) -> int:
    status, last_iter = _status(root, program_path)
    best = status.get("best_metric")
    ghenv.set_outputs({
        "state": status.get("state", ""),
        "iter": "" if last_iter is None else last_iter,
        "best-metric": "" if best is None else f"{best:g}",
        "jobs-used": status.get("jobs_used", ""),
        "dry-run": str(dry).lower(),
        "valid": "",
    }, env)
    if exit_code == TRANSIENT:
        ghenv.emit("warning", "a transient failure: " + "; ".join(events[-2:]) + ". The next tick retries.",
                   title="mlr-action")
    elif exit_code == BAD_INPUT:
        ghenv.emit("error", "; ".join(events[-3:]) + ". Fix what is named here; nothing was spent.",
                   title="mlr-action stopped on bad input")
    ghenv.append_summary(render_step_summary(status, events, exit_code, dry=dry, why=why), env)
    return exit_code


def render_step_summary(status: dict, events: list[str], exit_code: int, *, dry: bool, why: list[str]) -> str:
    from mlr_action.durations import format_duration
    from mlr_action.markup import block, code, plain

    state = status.get("state") or "unknown"
    lines = [f"### mlr-action · {state}" + (" · dry run" if dry else "")]
    if dry:
        lines += ["", "> **Dry run:** nothing was submitted, spent, committed or posted, because "
                  + "; ".join(why) + "."]
    if exit_code == TRANSIENT:
        lines += ["", "> ⚠️ **Transient failure:** the next tick retries; nothing is lost."]
    elif exit_code == BAD_INPUT:
        lines += ["", "> ❌ **Bad input:** nothing was spent. The lines below say what to fix."]
    happened = [e for e in events if e != DRY_RUN_HEADLINE] or ["nothing to do"]
    # The events quote jobs, the ledger and the proposer: shown as a log, never rendered.
    lines += ["", "**What happened**" if not dry else "**What a step would do**", "", block("\n".join(happened))]
    if status.get("jobs_max") is not None:
        cost_max = status.get("cost_max_usd")
        lines += ["", "| budget | used | max |", "|---|---|---|",
                  f"| jobs | {status['jobs_used']} | {status['jobs_max']} |",
                  f"| walltime | {format_duration(status['walltime_used_s'])} | {format_duration(status['walltime_max_s'])} |",
                  f"| hardware | ${status['cost_used_usd']:.2f} | {'$%.2f' % cost_max if cost_max else 'not set'} |"]
        if status.get("best_metric") is not None:
            config = ", ".join(f"{k}={v}" for k, v in (status.get("best_config") or {}).items())
            lines += ["", f"**Best:** {status['metric']}={status['best_metric']:g} at iter {status['best_iter']} ({code(config)})"]
        else:
            lines += ["", "**Best:** none yet"]
        if status.get("stop_reason"):
            lines += ["", f"**Stopped:** {plain(status['stop_reason'])} ({code(status.get('stop_detail') or '')})"]
    return "\n".join(lines)
