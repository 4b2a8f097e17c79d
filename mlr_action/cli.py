"""The ``mlr`` command (DESIGN.md section 6). Exit codes: 0 ok, 1 transient, 2 bad input."""

from __future__ import annotations

import argparse
import json
import os
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

    p = sub.add_parser("run", help="repeat steps until the campaign stops (local use)")
    _step_options(p)
    p.add_argument("--interval", type=float, default=2.0, help="seconds between steps (default: 2)")
    p.add_argument("--max-ticks", type=int, default=None, help="give up after this many steps")

    p = sub.add_parser("status", help="state, budget used and left, best so far, jobs in flight")
    _common(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("init", help="draft program.md from the template")
    _common(p)

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
    from mlr_action.program import ProgramError, load_program
    from mlr_action.views import describe_envelope

    path = _program_path(args)
    try:
        program = load_program(path)
    except ProgramError as exc:
        print(str(exc), file=sys.stderr)
        return BAD_INPUT
    print(f"{path} is valid.\n")
    prices, note = _live_prices(args, program) if args.backend == "hf" else (None, None)
    print(describe_envelope(program, prices))
    if note:
        print(f"\nnote: {note}")
    return OK


def _live_prices(args: argparse.Namespace, program) -> tuple[dict[str, float] | None, str | None]:
    """The hf backend's live prices, or None and why the estimate uses the built-in table."""
    from mlr_action.backends import BackendError, make_backend

    try:
        backend = make_backend("hf", root=args.repo.resolve(), namespace=program.campaign.namespace)
        prices = backend.prices()
    except BackendError as exc:
        return None, f"live prices could not be read ({exc}); the estimate uses the built-in price table, rounded up"
    return prices, None if prices else getattr(backend, "prices_note", None)


def _parsed_program(args: argparse.Namespace, snapshot=None):
    """program.md parsed once for the step (the snapshot's in GitHub mode); None when it is missing or does not
    validate: the step then reads it again and says why, spending nothing."""
    from mlr_action.program import ProgramError, load_program

    try:
        return snapshot.load() if snapshot else load_program(_program_path(args))
    except ProgramError:
        return None


def _make_step(args: argparse.Namespace, snapshot=None):
    """The step ``args`` ask for; with a ``snapshot`` (GitHub mode) it spends on that authorized program.md."""
    from mlr_action.backends import BackendError, make_backend
    from mlr_action.forges import make_forge
    from mlr_action.proposers import make_proposer
    from mlr_action.step import Step

    root = args.repo.resolve()
    proposer = make_proposer(args.proposer, model=args.model) if args.model else make_proposer(args.proposer)
    program = _parsed_program(args, snapshot) if args.backend == "hf" else None  # the hf backend needs its namespace
    namespace = program.campaign.namespace if program else None
    try:
        backend = make_backend(args.backend, root=root, namespace=namespace)
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
    from mlr_action import authority, gitsync
    from mlr_action.backends.base import BackendError

    root = args.repo.resolve()
    try:
        branch = gitsync.remote_default_branch(root)
        if branch is None:
            return None, ["the remote's default branch is unknown (`git ls-remote --symref origin HEAD` says "
                          "nothing), so program.md cannot be read from it; check the checkout's remote origin"]
        program = os.path.relpath(_program_path(args).resolve(), root)
        snapshot = authority.read_authorized(root, branch=branch, program=program)
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
    from mlr_action.views import step_line

    if args.dry_run:
        from mlr_action.dryrun import dry_run

        report = dry_run(args.repo.resolve(), args.program, proposer=args.proposer)
        print("\n".join(report.lines))
        return report.exit_code
    try:
        step = _step_for(args)
    except (ValueError, ImportError) as exc:
        return _startup_error(exc)
    if step is None:
        return BAD_INPUT
    result = step.run()
    for event in result.events:
        print(event)
    print(step_line(result))
    return result.exit_code


def cmd_run(args: argparse.Namespace) -> int:
    from mlr_action.views import step_line

    tick = 0
    while True:
        tick += 1
        try:  # GitHub mode re-reads the authority every tick: the tip may have moved
            step = _step_for(args)
        except (ValueError, ImportError) as exc:
            return _startup_error(exc)
        if step is None:
            return BAD_INPUT
        result = step.run()
        detail = "; ".join(result.events) or "nothing to do"
        print(f"tick {tick}: {detail}\n        {step_line(result)}", flush=True)
        if result.exit_code == BAD_INPUT:
            return BAD_INPUT
        if result.stopped:
            print(f"campaign stopped after {tick} ticks: see {args.repo / 'runs' / 'summary.md'}")
            return OK
        if args.max_ticks is not None and tick >= args.max_ticks:
            print(f"gave up after {tick} ticks (--max-ticks); the campaign has not stopped")
            return TRANSIENT
        time.sleep(args.interval)


def cmd_status(args: argparse.Namespace) -> int:
    from mlr_action.ledger import LedgerError
    from mlr_action.program import ProgramError
    from mlr_action.views import campaign_status, render_status

    try:
        status = campaign_status(args.repo, _program_path(args))
    except (ProgramError, LedgerError) as exc:
        print(str(exc), file=sys.stderr)
        return BAD_INPUT
    print(json.dumps(status, indent=2) if args.json else render_status(status))
    return OK


def cmd_init(args: argparse.Namespace) -> int:
    from mlr_action.draft import draft_program

    path = _program_path(args)
    if path.exists():
        print(f"{path} already exists; edit it (mlr init never overwrites a program.md)", file=sys.stderr)
        return BAD_INPUT
    draft = draft_program(args.repo)
    path.write_text(draft.text, encoding="utf-8")
    print(f"wrote {path} (script: {draft.script}, metric: {draft.metric})")
    for note in draft.notes:
        print(f"  note: {note}")
    print("Review the Goal, the search space and the Budget envelope, then run `mlr validate`.")
    return OK


def cmd_guard(args: argparse.Namespace) -> int:
    from mlr_action.guard import main as guard_main

    return guard_main()


COMMANDS = {
    "validate": cmd_validate,
    "step": cmd_step,
    "run": cmd_run,
    "status": cmd_status,
    "init": cmd_init,
    "guard": cmd_guard,
}
