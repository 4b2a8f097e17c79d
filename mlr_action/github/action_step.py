"""One cron tick in GitHub Actions: decide whether it may spend, run one step, commit, report.

Guarantees (on top of :mod:`mlr_action.github.action`'s):

- Authority is the commit at the tip of the remote's default branch
  (:mod:`mlr_action.shell.authority`): program.md and the script are read from git
  objects there, never from the work tree, and the step submits those bytes.
  The bot never writes program.md.
- The decision to spend is made before the step, from the event and the refs
  (:func:`mlr_action.github.ghenv.spend_blockers`) and from whether this checkout is
  that tip (:func:`mlr_action.shell.authority.stale_reasons`: a re-run of an old
  workflow run, a stale checkout, local commits, an edited program.md or
  script). A run that may not spend runs :func:`mlr_action.shell.dryrun.dry_run`,
  which calls no backend, LLM or forge, and says why. It is decided once, so
  the bot's own push of runs/ during the step never makes the tick stale.
- runs/ is data: the ledger branch's tree and the work tree's runs/ are
  checked before anything is written (:mod:`mlr_action.github.gitsync`).
- Every spending step ends with :func:`mlr_action.github.gitsync.publish_runs`, even
  when the step failed part-way, so rows written before a transient error are
  kept; a tick that lingers (:mod:`mlr_action.shell.tick`) pushes after each of its
  steps, and stops at the first that does not end in 0.
- A run whose commit is behind the tip only by commits to the campaign's
  ``runs/`` (queued behind a tick that pushed them) is brought to the tip and
  spends as a tick there (:mod:`mlr_action.github.catchup`); any other difference
  keeps it stale.
- The job wake-up (``wake-up``, ``MLR_WAKE_TOKEN``) dispatches the workflow
  file this run came from (``GITHUB_WORKFLOW_REF``), on the default branch.
- Every refusal is an :class:`~mlr_action.github.inputs.ActionError` (a message with
  its fix and an exit code) that says truthfully what this run spent.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping

from mlr_action.github import ghenv
from mlr_action.github.inputs import (BAD_INPUT, TRANSIENT, ActionError, Inputs, Problem, credential_problems, empty_outputs,
                               report_problems, unexpected)
from mlr_action.shell.dryrun import HEADLINE as DRY_RUN_HEADLINE
from mlr_action.core.redaction import redact
from mlr_action.core.spent import NOTHING_SPENT

if TYPE_CHECKING:
    from mlr_action.shell.authority import Snapshot

NOT_A_CHECKOUT = Problem("the working directory is not a git checkout",
                         "add `- uses: actions/checkout@v4` (pinned) as a step before mlr-action")
GIT_FIX = "do what the message says, then re-run the workflow"
RETRY = "the next tick retries; if it keeps failing, check the checkout's remote origin and the network"


def run_step(inputs: Inputs, env: Mapping[str, str]) -> int:
    from mlr_action.shell import authority
    from mlr_action.github import catchup, gitsync

    ctx = ghenv.RunContext.from_env(env)
    root = (ctx.workspace / inputs.working_directory).resolve()
    with _refusing(retry=RETRY):
        branch = _checkout_branch(root)
        default = ctx.default_branch or gitsync.remote_default_branch(root)
        if default is None:
            raise ActionError(Problem("the repository's default branch is unknown, so program.md cannot be read from "
                                      "it", "run the workflow on schedule, push or workflow_dispatch, with "
                                      "actions/checkout, and check that the checkout has its remote origin"))
        if inputs.ledger_branch == default:
            raise ActionError(Problem(f"ledger-branch is the default branch {default}",
                                      "use a branch of its own, such as mlr-ledger, or leave ledger-branch empty"))
        blockers = ghenv.spend_blockers(ctx, default_branch=default, checkout_branch=branch)
        snapshot = authority.read_authorized(root, branch=default, program=inputs.program)
        if not blockers:  # a pull request or another ref already never spends: no need to say it twice
            sha = ctx.sha
            if catchup.caught_up(snapshot, sha or None):  # queued behind a tick that pushed runs/: at the tip
                ghenv.log(f"this run is for {sha[:12]}, behind {default} ({snapshot.commit[:12]}) only by commits to "
                          "runs/: runs/ was brought to the tip, and the run goes on as a tick at the tip")
                sha = snapshot.commit
            blockers = authority.stale_reasons(snapshot, sha=sha)
    return _tick(inputs, env, root, snapshot, dry=inputs.dry_run or bool(blockers), blockers=blockers)


def _checkout_branch(root: Path) -> str | None:
    from mlr_action.github import gitsync

    try:
        return gitsync.checkout_branch(root)
    except gitsync.NotACheckout:
        raise ActionError(NOT_A_CHECKOUT) from None


@contextlib.contextmanager
def _refusing(*, retry: str, what: str = "") -> Iterator[None]:
    """git and backend errors before the step become refusals: permanent ones exit 2, transient ones exit 1."""
    from mlr_action.core.jobs import PermanentError, TransientError

    try:
        yield
    except PermanentError as exc:  # GitError is one
        raise ActionError(Problem(what + redact(str(exc)), GIT_FIX)) from None
    except TransientError as exc:
        raise ActionError(Problem(what + redact(str(exc)), retry), TRANSIENT) from None


def _tick(inputs: Inputs, env: Mapping[str, str], root: Path, snapshot: Snapshot, *, dry: bool,
          blockers: list[str]) -> int:
    from mlr_action.github import gitsync

    with _refusing(retry=RETRY, what="runs/ cannot be prepared: "):
        if inputs.ledger_branch:
            gitsync.prepare_runs(root, branch=inputs.ledger_branch)
        gitsync.check_runs(root)
    problems = credential_problems(inputs, env, may_spend=not dry, program_exists=snapshot.text is not None)
    if problems:
        report_problems(problems, env, title="missing secret")
        empty_outputs(env, **{"dry-run": str(dry).lower()})
        return BAD_INPUT

    why = blockers or (["the dry-run input is true"] if dry else [])
    for reason in blockers:
        ghenv.emit("notice", f"dry run: {reason}", title="mlr-action spends nothing here")
    spent = NOTHING_SPENT
    try:
        if dry:
            from mlr_action.shell.dryrun import dry_run

            report = dry_run(root, snapshot=snapshot, proposer=inputs.proposer)
            events, exit_code = _log(report.lines), report.exit_code
        else:  # each step's events are logged and runs/ pushed as soon as that step ends
            events, exit_code, spent = _spend(inputs, root, snapshot, env)
        return _report(root, snapshot, events, exit_code, dry=dry, why=why, spent=spent, env=env)
    except ActionError:
        raise
    except Exception as exc:  # after the step: say what it spent, whatever failed
        raise ActionError(unexpected(exc, env), TRANSIENT, spent=spent) from None


def _log(lines: list[str]) -> list[str]:
    """Redacted, printed where the runner obeys no workflow command in them (they quote jobs and the ledger)."""
    lines = [redact(line) for line in lines]
    with ghenv.stop_commands():
        for line in lines:
            ghenv.log(line)
    return lines


def _spend(inputs: Inputs, root: Path, snapshot: Snapshot, env: Mapping[str, str]) -> tuple[list[str], int, str]:
    """The tick's real steps, in this process, on the authorized snapshot: one, then those lingering brings
    (:mod:`mlr_action.shell.tick`); after each, its events are logged and runs/ is committed and pushed. The forge and
    gitsync read GITHUB_TOKEN and MLR_LEDGER_BRANCH. (every event, the last exit code, what the tick spent)."""
    from mlr_action.github import gitsync
    from mlr_action.shell import tick
    from mlr_action.commands.cli import _make_step
    from mlr_action.commands.cli_parser import build_parser
    from mlr_action.github.gitsync import LEDGER_BRANCH_ENV
    from mlr_action.core.spent import spent_text
    from mlr_action.shell.step_result import StepResult

    started = time.time()
    os.environ[LEDGER_BRANCH_ENV] = inputs.ledger_branch
    argv = ["step", "--repo", str(root), "--program", str(root / inputs.program), "--backend", inputs.backend,
            "--proposer", inputs.proposer, "--forge", inputs.forge, *(["--model", inputs.model] if inputs.model else []),
            *_wake_argv(inputs, env)]
    try:
        step = _make_step(build_parser().parse_args(argv), snapshot=snapshot)
    except (ValueError, ImportError) as exc:
        raise ActionError(Problem(f"the step could not start: {exc}", "check the backend, proposer, forge and "
                                  "wake-up inputs and the secrets passed to the step"))
    # Nothing is spent that cannot be recorded: runs/ is pushed before every submit and LLM call, whatever the forge.
    step.publish = lambda message: gitsync.publish_runs(root, message=message, branch=inputs.ledger_branch)
    events: list[str] = []
    unknown: list[str] = []  # a step that crashed: what it spent is in the ledger only

    def run() -> StepResult:
        try:
            return step.run()
        except Exception as exc:  # a bug: still commit what the step wrote (a submitted job's row), then say so
            unknown.append("what this step spent, if anything, is in runs/ledger.jsonl")
            return StepResult(exit_code=TRANSIENT, events=[unexpected(exc, env).what])

    def after(result: StepResult) -> None:
        said = _log(list(result.events))
        events.extend(said)
        result.exit_code = _publish(root, inputs, said, result.exit_code, since=result.recorded)

    results = tick.steps(step, linger_s=inputs.linger_s, started=started, say=lambda line: events.extend(_log([line])),
                         after=after, run=run)
    spent = unknown[0] if unknown else spent_text(jobs=[j for r in results for j in r.submitted_ids],
                                                  llm_usd=sum(r.llm_usd for r in results))
    return events, results[-1].exit_code, spent


def _wake_argv(inputs: Inputs, env: Mapping[str, str]) -> list[str]:
    """``--wake-workflow`` for the job wake-up: on with wake-up true, or auto with backend hf and MLR_WAKE_TOKEN."""
    from mlr_action.job.wakeup import TOKEN_ENV, workflow_of

    on = inputs.wake_up == "true" or (inputs.wake_up == "auto" and inputs.backend == "hf"
                                      and bool(env.get(TOKEN_ENV, "").strip()))
    if not on:
        return []
    workflow = workflow_of(env.get("GITHUB_WORKFLOW_REF", ""), env.get("GITHUB_REPOSITORY", ""))
    if workflow is None:
        raise ActionError(Problem("the job wake-up cannot tell which workflow this run is (GITHUB_WORKFLOW_REF is "
                                  f"{env.get('GITHUB_WORKFLOW_REF', '')!r})", "run mlr-action from a workflow file "
                                  "of this repository's .github/workflows/, or set `wake-up: false`"))
    return ["--wake-workflow", workflow]


def _publish(root: Path, inputs: Inputs, events: list[str], exit_code: int, *, since: int) -> int:
    """Commit and push runs/ at the end of the step; ``since`` events were committed by its publishes before."""
    from mlr_action.github import gitsync
    from mlr_action.core.jobs import TransientError
    from mlr_action.core.recording import commit_message

    try:
        if gitsync.publish_runs(root, message=commit_message(events, since=since), branch=inputs.ledger_branch):
            ghenv.log(f"committed and pushed runs/ to {inputs.ledger_branch or 'the default branch'}")
    except gitsync.GitError as exc:
        ghenv.emit("error", str(exc), title="mlr-action could not commit runs/")
        return exit_code or BAD_INPUT
    except TransientError as exc:
        ghenv.emit("warning", str(exc), title="mlr-action could not push runs/")
        return exit_code or TRANSIENT
    return exit_code


def _status(root: Path, snapshot: Snapshot) -> tuple[dict, int | None]:
    from mlr_action.core.ledger import LEDGER_PATH, LedgerError, read_ledger
    from mlr_action.core.program import ProgramError
    from mlr_action.core.state import fold
    from mlr_action.render.views import campaign_status

    if snapshot.text is None:
        return {"state": "awaiting_program"}, None
    try:
        status = campaign_status(root, root / snapshot.program, program=snapshot.load())
        last = max(fold(read_ledger(root / LEDGER_PATH)).experiments, default=None)
    except ProgramError:
        return {"state": "invalid_program"}, None
    except LedgerError:
        return {"state": "invalid_ledger"}, None
    return status, last


def _report(root: Path, snapshot: Snapshot, events: list[str], exit_code: int, *, dry: bool, why: list[str],
            spent: str, env: Mapping[str, str]) -> int:
    status, last_iter = _status(root, snapshot)
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
        ghenv.emit("error", "; ".join(events[-3:]) + f". Fix what is named here; {spent}.",
                   title="mlr-action stopped on bad input")
    ghenv.append_summary(render_step_summary(status, events, exit_code, dry=dry, why=why, spent=spent), env)
    return exit_code


def render_step_summary(status: dict, events: list[str], exit_code: int, *, dry: bool, why: list[str],
                        spent: str = NOTHING_SPENT) -> str:
    from mlr_action.core.durations import format_duration
    from mlr_action.core.markup import block, code, plain

    state = status.get("state") or "unknown"
    lines = [f"### mlr-action · {state}" + (" · dry run" if dry else "")]
    if dry:
        lines += ["", "> **Dry run:** nothing was submitted, spent, committed or posted, because "
                  + "; ".join(why) + "."]
    if exit_code == TRANSIENT:
        lines += ["", "> ⚠️ **Transient failure:** the next tick retries; nothing is lost."]
    elif exit_code == BAD_INPUT:
        lines += ["", f"> ❌ **Bad input:** {spent}. The lines below say what to fix."]
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
