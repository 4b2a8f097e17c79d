"""Shared pieces of the Claude proposer tests: a repo, answers, and the envelope check."""

from __future__ import annotations

import math
from pathlib import Path

from mlr_action.core.ledger import EventRow, ExperimentRow
from mlr_action.core.program import load_program
from mlr_action.core.state import CampaignState, fold
from programs import CAMPAIGN, ENVELOPE, program_text, with_

FAKE_KEY = "sk-" + "ant-test-0000-not-a-real-key"  # built, so no token-shaped literal is committed
PROSE = "## Goal\n\nClassify digits accurately.\n\n## Scope\n\nOnly the MLP in train.py.\n"


def serve_stub(monkeypatch, responder=None):
    """A loopback Anthropic API answering with ``responder``, the environment pointed at it (for a fixture)."""
    from loopback.anthropic_stub import StubAnthropic

    with StubAnthropic(responder) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
        yield server


def make_repo(root: Path, envelope: dict | None = None, campaign: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text("print('eval_accuracy=0.5')\n")
    (root / "program.md").write_text(program_text(envelope, campaign, prose=PROSE))
    return root


def program_of(root: Path):
    return load_program(root / "program.md")


def researched(rows: list | None = None, after: int = 0) -> CampaignState:
    """A state whose research is not due: a research row after ``after`` finished experiments."""
    rows = list(rows or [])
    return fold([EventRow(event="started", ts="t", campaign="c"), *rows,
                 EventRow(event="research", ts="t", reason="unavailable", after=after)])


def done_row(i: int, config: dict, metric: float | None, *, status="completed", decision="discard", error=None) -> ExperimentRow:
    return ExperimentRow(iter=i, ts="t", status=status, config=config, metric=metric, decision=decision,
                         job_id=f"job-{i}", flavor="a10g-large", timeout_s=3600, timeout="1h", duration_s=600.0,
                         error=error, hypothesis=f"hypothesis {i}")


def answer(lr=3e-4, batch_size=32, scheduler="cosine", *, flavor="a10g-large", minutes=60,
           hypothesis="A cosine schedule at lr 3e-4 should beat iter 1.", reason="Iter 1 used linear; cosine did better in the note.") -> dict:
    return {"hypothesis": hypothesis, "config": {"lr": lr, "batch_size": batch_size, "scheduler": scheduler},
            "flavor": flavor, "timeout_minutes": minutes, "reason": reason}


def envelope_problems(program, specs, failed_configs=()) -> list[str]:
    """Everything wrong with submitted JobSpecs under ``program`` (empty when all are inside).

    Walltime is charged from actual durations (see budget.py), so it is checked on the ledger instead.
    """
    env, camp = program.envelope, program.campaign
    problems = []
    if len(specs) > env.max_jobs:
        problems.append(f"{len(specs)} jobs > max_jobs {env.max_jobs}")
    for spec in specs:
        if spec.flavor not in env.allowed_flavors:
            problems.append(f"flavor {spec.flavor}")
        if not 0 < spec.timeout_s <= env.max_timeout:
            problems.append(f"timeout {spec.timeout_s}")
        args = dict(a[2:].split("=", 1) for a in spec.args)
        if set(args) != set(camp.params) | set(camp.fixed):
            problems.append(f"args {sorted(args)}")
        for name, value in camp.fixed.items():
            if args.get(name) != str(value):
                problems.append(f"fixed {name}={args.get(name)}")
        for name, p in camp.params.items():
            text = args.get(name)
            if p.kind == "categorical":
                if text not in {str(c) for c in p.choices}:
                    problems.append(f"{name}={text}")
            else:
                try:
                    value = float(text)
                except (TypeError, ValueError):
                    problems.append(f"{name}={text}")
                    continue
                if not (math.isfinite(value) and p.low <= value <= p.high) or (p.kind == "int" and not value.is_integer()):
                    problems.append(f"{name}={text}")
    return problems


__all__ = ["CAMPAIGN", "ENVELOPE", "FAKE_KEY", "answer", "done_row", "envelope_problems", "make_repo", "program_of", "researched", "with_"]
