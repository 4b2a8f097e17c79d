"""The ``mlr`` command (DESIGN.md section 6). Exit codes: 0 ok, 1 transient, 2 bad input.

:func:`main` is the entry point (``mlr = mlr_action.commands.cli:main``); each
subcommand is one ``cmd_*`` function, and the grammar they are parsed with is
:mod:`mlr_action.commands.cli_parser`. Guarantees: a step that cannot start
(a backend or proposer that cannot be built) or that ``--forge github`` finds
may not spend says why and exits 2, having spent nothing; a reader that left
(``mlr status | head``) is not an error; an interrupt says the ledger is
consistent and exits 130.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from mlr_action.commands.cli_parser import build_parser

OK, TRANSIENT, BAD_INPUT = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # `mlr status | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    except KeyboardInterrupt:
        print("\ninterrupted: the ledger is consistent; run the same command again to continue", file=sys.stderr)
        return 130


def _program_path(args: argparse.Namespace) -> Path:
    return args.program or args.repo / "program.md"


# --- commands ---------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from mlr_action.core.program import ProgramError, load_program
    from mlr_action.render.views import describe_envelope

    path = _program_path(args)
    try:
        program = load_program(path)
    except ProgramError as exc:
        print(str(exc), file=sys.stderr)
        return BAD_INPUT
    print(f"{path} is valid.\n")
    backend, prices, note = _live_prices(args, program) if args.backend == "hf" else (None, None, None)
    print(describe_envelope(program, prices))
    if note:
        print(f"\nnote: {note}")
    from mlr_action.job.preflight_report import report

    lines, ok = report(program, folder=path.parent, repo=args.repo.resolve(), backend=backend)
    print("\n" + "\n".join(lines))
    return OK if ok else BAD_INPUT


def _live_prices(args: argparse.Namespace, program):
    """(the hf backend or None, its live prices or None, why the estimate uses the built-in table)."""
    from mlr_action.backends import BackendError, make_backend

    backend = None
    try:
        backend = make_backend("hf", root=args.repo.resolve(), namespace=program.campaign.namespace)
        prices = backend.prices()
    except BackendError as exc:
        return backend, None, f"live prices could not be read ({exc}); the estimate uses the built-in price table, rounded up"
    return backend, prices, None if prices else getattr(backend, "prices_note", None)


def _parsed_program(args: argparse.Namespace, snapshot=None):
    """program.md parsed once for the step (the snapshot's in GitHub mode); None when it is missing or does not
    validate: the step then reads it again and says why, spending nothing."""
    from mlr_action.core.program import ProgramError, load_program

    try:
        return snapshot.load() if snapshot else load_program(_program_path(args))
    except ProgramError:
        return None


def _wake(args: argparse.Namespace, snapshot):
    from mlr_action.job.wakeup import for_step

    return for_step(args.wake_workflow, backend=args.backend, branch=snapshot.branch if snapshot else None,
                    env=os.environ)


def _make_step(args: argparse.Namespace, snapshot=None):
    """The step ``args`` ask for; with a ``snapshot`` (GitHub mode) it spends on that authorized program.md."""
    from mlr_action.backends import BackendError, make_backend
    from mlr_action.forges import make_forge
    from mlr_action.proposers import make_proposer
    from mlr_action.shell.step import Step

    root = args.repo.resolve()
    proposer = make_proposer(args.proposer, model=args.model) if args.model else make_proposer(args.proposer)
    program = _parsed_program(args, snapshot) if args.backend == "hf" else None  # the hf backend needs its namespace
    namespace = program.campaign.namespace if program else None
    try:
        backend = make_backend(args.backend, root=root, namespace=namespace, uv=None if args.no_uv else "auto",
                               **({"wake": _wake(args, snapshot)} if args.wake_workflow else {}))
    except BackendError as exc:  # e.g. huggingface_hub is not installed
        raise ValueError(str(exc)) from exc
    forge = make_forge(args.forge, root=root)
    # --forge github pushes runs/ before every spend; with --forge none the fsynced rows on disk are the record.
    publish = None if args.forge == "none" else (lambda message: forge.publish(message=message))
    return Step(root=root, backend=backend, proposer=proposer, forge=forge, program_path=args.program, publish=publish,
                snapshot=snapshot, program=program)


def _authorized(args: argparse.Namespace):
    """GitHub mode (``--forge github``): the snapshot at the tip of the remote's default branch, or why not.

    (snapshot, []) when this checkout is that tip; (None, reasons) when it must spend nothing.
    """
    from mlr_action.shell import authority
    from mlr_action.github import catchup, gitsync
    from mlr_action.core.jobs import BackendError

    root = args.repo.resolve()
    try:
        branch = gitsync.remote_default_branch(root)
        if branch is None:
            return None, ["the remote's default branch is unknown (`git ls-remote --symref origin HEAD` says "
                          "nothing), so program.md cannot be read from it; check the checkout's remote origin"]
        program = os.path.relpath(_program_path(args).resolve(), root)
        snapshot = authority.read_authorized(root, branch=branch, program=program)
        reasons = authority.stale_reasons(snapshot)
        if reasons and catchup.caught_up(snapshot, None):  # behind only by commits to runs/ (mlr_action.github.catchup)
            reasons = authority.stale_reasons(snapshot)
    except BackendError as exc:  # GitError included
        return None, [str(exc)]
    return (None, reasons) if reasons else (snapshot, [])


def _step_for(args: argparse.Namespace):
    """The step to run; None (after saying why) when ``--forge github`` finds this checkout may not spend."""
    snapshot = None
    if args.forge == "github":
        snapshot, reasons = _authorized(args)
        if snapshot is None:
            print("spends nothing: " + "; ".join(reasons), file=sys.stderr)
            return None
    return _make_step(args, snapshot)


def _startup_error(exc: Exception) -> int:
    print(f"mlr: {exc}", file=sys.stderr)
    return BAD_INPUT


def cmd_step(args: argparse.Namespace) -> int:
    from mlr_action.shell import tick
    from mlr_action.render.views import step_line

    started = time.time()
    if args.dry_run:
        from mlr_action.shell.dryrun import dry_run

        report = dry_run(args.repo.resolve(), args.program, proposer=args.proposer)
        print("\n".join(report.lines))
        return report.exit_code
    try:
        step = _step_for(args)
    except (ValueError, ImportError) as exc:
        return _startup_error(exc)
    if step is None:
        return BAD_INPUT
    results = tick.steps(step, linger_s=args.linger, started=started, say=print,
                         after=lambda result: print("\n".join(result.events)) if result.events else None)
    print(step_line(results[-1]))
    return results[-1].exit_code


def cmd_run(args: argparse.Namespace) -> int:
    from mlr_action.shell import tick as ticks
    from mlr_action.render.views import step_line

    tick = 0
    while True:
        tick += 1
        started = time.time()
        try:  # GitHub mode re-reads the authority every tick: the tip may have moved
            step = _step_for(args)
        except (ValueError, ImportError) as exc:
            return _startup_error(exc)
        if step is None:
            return BAD_INPUT
        results = ticks.steps(step, linger_s=args.linger, started=started, say=lambda line: print(f"        {line}"))
        result = results[-1]
        detail = "; ".join(e for r in results for e in r.events) or "nothing to do"
        print(f"tick {tick}: {detail}\n        {step_line(result)}", flush=True)
        if result.exit_code == BAD_INPUT:
            return BAD_INPUT
        if result.finished:  # stopped, and the final evaluation (when program.md asks for one) is over
            print(f"campaign stopped after {tick} ticks: see {args.repo / 'runs' / 'summary.md'}")
            return OK
        if args.max_ticks is not None and tick >= args.max_ticks:
            print(f"gave up after {tick} ticks (--max-ticks); the campaign has not stopped")
            return TRANSIENT
        time.sleep(args.interval)


def cmd_status(args: argparse.Namespace) -> int:
    from mlr_action.core.ledger import LedgerError
    from mlr_action.core.program import ProgramError
    from mlr_action.render.views import campaign_status, render_status

    try:
        status = campaign_status(args.repo, _program_path(args))
    except (ProgramError, LedgerError) as exc:
        print(str(exc), file=sys.stderr)
        return BAD_INPUT
    print(json.dumps(status, indent=2) if args.json else render_status(status))
    return OK


def cmd_init(args: argparse.Namespace) -> int:
    from mlr_action.onboard.draft import SCRIPT_PATH, draft_program, validated
    from mlr_action.onboard.draft_report import text_summary
    from mlr_action.core.program import ProgramError, parse_program
    from mlr_action.render.views import describe_envelope

    path = _program_path(args)
    if path.exists():
        print(f"{path} already exists; edit it (mlr init never overwrites a program.md)", file=sys.stderr)
        return BAD_INPUT
    if args.script is not None and not (SCRIPT_PATH.fullmatch(args.script) and (args.repo / args.script).is_file()):
        print(f"--script {args.script!r} is not a .py file in {args.repo} (give its path relative to the repository, "
              "like train.py or src/train.py)", file=sys.stderr)
        return BAD_INPUT
    if args.metric is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", args.metric):
        print(f"--metric {args.metric!r} is not a metric name (letters, digits, _ . / -; like val_loss)", file=sys.stderr)
        return BAD_INPUT
    draft = validated(draft_program(args.repo, script=args.script, metric=args.metric, target=args.target), args.repo)
    path.write_text(draft.text, encoding="utf-8")
    try:
        envelope = describe_envelope(parse_program(draft.text, root=args.repo))
    except ProgramError:
        envelope = None
    print(f"wrote {path}, drafted from {draft.script} (read, never run):\n")
    print(text_summary(draft, envelope))
    print("\nReview the search space, the metric and the budget envelope, then run `mlr validate`.")
    return OK


def cmd_reproduce(args: argparse.Namespace) -> int:
    from mlr_action.commands import reproduce
    from mlr_action.core.ledger import LedgerError

    try:
        rep = reproduce.plan(args.repo.resolve(), _program_path(args), args.iter)
    except LedgerError as exc:
        print(str(exc), file=sys.stderr)
        return BAD_INPUT
    print("\n".join(rep.lines))
    for problem in rep.problems:
        print(f"mlr: {problem}", file=sys.stderr)
    if rep.problems:
        return BAD_INPUT
    if args.run and rep.untrusted:
        print(f"mlr: --run refused: {rep.untrusted}", file=sys.stderr)
        return BAD_INPUT
    return reproduce.run(rep, into=args.into, uv=None if args.no_uv else "auto") if args.run else OK


def cmd_guard(args: argparse.Namespace) -> int:
    from mlr_action.commands.guard import main as guard_main

    return guard_main()


COMMANDS = {
    "validate": cmd_validate,
    "step": cmd_step,
    "run": cmd_run,
    "status": cmd_status,
    "init": cmd_init,
    "guard": cmd_guard,
    "reproduce": cmd_reproduce,
}
