"""The ``mlr`` command line's grammar: its subcommands, their options and the help each prints (DESIGN.md section 6).

Guarantees: parsing reads no file and builds nothing; ``--linger`` is
checked while parsing, so a bad duration is a usage error (exit 2) that names
the fix, before anything runs. The
subcommands themselves are in :mod:`mlr_action.commands.cli`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlr_action import __version__


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
