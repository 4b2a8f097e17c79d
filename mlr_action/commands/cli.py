"""The ``mlr`` command (DESIGN.md section 6). Exit codes: 0 ok, 1 transient, 2 bad input."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from mlr_action import __version__

OK, TRANSIENT, BAD_INPUT = 0, 1, 2


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", type=Path, default=Path("."), help="the campaign's repository root (default: .)")
    p.add_argument("--program", type=Path, default=None, help="program.md (default: REPO/program.md)")


def _step_options(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--backend", choices=["local", "hf"], default="local", help="where jobs run (default: local)")
    p.add_argument("--proposer", choices=["search", "claude", "auto"], default="search",
                   help="who proposes the next experiment (default: search)")
    p.add_argument("--model", default=None,
                   help="the Claude model for --proposer claude or auto (default: claude-sonnet-5-5)")
    p.add_argument("--forge", choices=["none", "github"], default="none",
                   help="where reports go: none writes them under runs/ (default: none)")
    p.add_argument("--no-uv", action="store_true",
                   help="local backend: run jobs with this Python, never uv (the folder's dependencies are not installed)")
    p.add_argument("--linger", type=_linger, default=0, metavar="DURATION",
                   help="follow a job predicted to end within DURATION (like 10m), then take the next step at once "
                        "(default: 0, never)")
    p.add_argument("--wake-workflow", default=None, metavar="FILE",
                   help="hf backend with --forge github: each job dispatches this workflow of $GITHUB_REPOSITORY "
                        "(like mlr.yml) on the default branch when it ends, with the token in MLR_WAKE_TOKEN")


def _linger(text: str) -> int:
    from mlr_action.shell.linger import parse_linger

    try:
        return parse_linger(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; give a duration such as 10m, or 0 to never linger") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlr", description="Autonomous, budget-bounded ML experiment campaigns.")
    parser.add_argument("--version", action="version", version=f"mlr-action {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check program.md; print the envelope and the worst-case spend")
    _common(p)
    p.add_argument("--backend", choices=["local", "hf"], default=None,
                   help="hf: price the envelope from the live HF Jobs hardware catalog (default: the built-in table)")

    p = sub.add_parser("step", help="run one step of the campaign (what one cron tick does)")
    _step_options(p)
    p.add_argument("--dry-run", action="store_true",
                   help="say what the step would do; submit, spend, commit and post nothing")

    p = sub.add_parser("run", help="repeat steps until the campaign stops and its final evaluation is over (local use)")
    _step_options(p)
    p.add_argument("--interval", type=float, default=2.0, help="seconds between steps (default: 2)")
    p.add_argument("--max-ticks", type=int, default=None, help="give up after this many steps")

    p = sub.add_parser("status", help="state, budget used and left, best so far, jobs in flight")
    _common(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("init", help="draft program.md for this repository's training script (read, never run)")
    _common(p)
    p.add_argument("--script", default=None, help="the training script (default: found in the repository)")
    p.add_argument("--metric", default=None, help="the metric's name (default: read from what the script prints)")
    p.add_argument("--target", type=float, default=None, help="stop when the best metric reaches this (default: none)")

    p = sub.add_parser("reproduce", help="print the exact job of an experiment (the code it ran, the command); --run runs it")
    _common(p)
    p.add_argument("iter", type=int, help="the experiment's iter (the ledger's `iter`)")
    p.add_argument("--run", action="store_true", help="run it here, in a fresh copy of the folder it ran in")
    p.add_argument("--into", type=Path, default=None, help="with --run: the new or empty folder to run it in")
    p.add_argument("--no-uv", action="store_true", help="with --run: run with this Python, never uv")

    sub.add_parser("guard", help="Claude Code PreToolUse hook: allow or deny spend against program.md")
    return parser


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
