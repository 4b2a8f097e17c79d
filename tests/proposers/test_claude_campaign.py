"""Whole campaigns with the Claude proposer against the loopback API: ledger, notes, summary, status, CLI."""

from __future__ import annotations

import json
import re

import pytest

from loopback.anthropic_stub import is_research, search_turn, structured, user_text
from claude_helpers import CAMPAIGN, ENVELOPE, answer, make_repo, program_of, serve_stub, with_
from mlr_action.commands import cli
from mlr_action.core.jobs import JobSpec, JobStage, labels_for
from mlr_action.backends.memory import InMemoryBackend
from mlr_action.forges.files import FileForge
from mlr_action.core.ledger import read_ledger
from mlr_action.proposers.claude import ClaudeProposer
from mlr_action.proposers.research import research_due
from mlr_action.core.state import fold
from mlr_action.shell.step import Step
from mlr_action.render.views import campaign_status, render_status
from simulate import FakeClock, run_campaign

SOURCES = [("Digits MLP recipe", "https://example.org/digits"), ("sklearn MLP docs", "https://example.org/mlp")]


def researcher_and_proposer(body: dict):
    """A well-behaved model: research returns recipes; proposal N walks towards lr 3e-4, batch 32, cosine."""
    if is_research(body):
        return search_turn(SOURCES, "Recipes use lr 1e-4 to 1e-3.\n\n| Source | Recipe | Hyperparameters | Reported result |\n"
                                    "|---|---|---|---|\n| https://example.org/digits | MLP | lr=3e-4 | 0.97 |")
    n = int(re.search(r"Propose experiment iter (\d+)", user_text(body)).group(1))
    lr = [1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4, 7e-4, 8e-4, 9e-4, 1e-3, 1.5e-4, 2.5e-4][(n - 1) % 12]
    return structured(answer(lr=lr, batch_size=8 + 4 * (n % 14), scheduler="cosine" if n % 2 else "linear",
                             hypothesis=f"Iter {n}: lr {lr:g} should move towards the note's recipe.",
                             reason=f"Grounded in the best rows before iter {n} and research note."))


@pytest.fixture
def stub(monkeypatch):
    yield from serve_stub(monkeypatch, researcher_and_proposer)


def test_a_claude_campaign_runs_end_to_end_with_hypotheses_research_and_spend(stub, tmp_path):
    root = make_repo(tmp_path / "repo", envelope=with_(ENVELOPE, max_llm_usd=2),
                     campaign=with_(CAMPAIGN, target=None, patience=None))
    clock = FakeClock()
    backend = InMemoryBackend(clock=clock.seconds)
    step = Step(root=root, backend=backend, proposer=ClaudeProposer(clock=clock), forge=FileForge(root), clock=clock)
    results = run_campaign(step)
    assert all(r.exit_code == 0 for r in results)
    state = fold(read_ledger(root / "runs" / "ledger.jsonl"))
    assert state.stopped.reason == "budget"
    experiments = list(state.experiments.values())
    assert all(e.proposer == "claude" and e.hypothesis.startswith(f"Iter {e.iter}:") for e in experiments)
    research = [e for e in state.events if e.event == "research"]
    assert [e.note for e in research] == [f"runs/research/{n:03d}.md" for n in range(1, len(research) + 1)]
    assert [e.after for e in research][:2] == [0, 5]  # at the start, then after 5 (or a 3-run stall)
    rows = read_ledger(root / "runs" / "ledger.jsonl")
    for i, row in enumerate(rows):  # replayed from the ledger: research exactly when due, never skipped
        if getattr(row, "event", None) == "research":
            assert research_due(fold(rows[:i])) is not None
        if getattr(row, "event", None) == "llm" and row.reason in ("proposal", "fallback"):
            assert research_due(fold(rows[:i])) is None
    # every tick that called Claude reserved first (a row before any spend of the tick) and settled after
    reserved = [(i, r) for i, r in enumerate(rows) if getattr(r, "reason", None) == "reserved"]
    settled = {r.settles: i for i, r in enumerate(rows) if getattr(r, "reason", None) == "settled"}
    assert reserved and all(settled[r.reservation] > i for i, r in reserved)
    assert len(reserved) == len(settled) == len({r.reservation for _, r in reserved})
    for e in research:
        assert "Digits MLP recipe" in (root / e.note).read_text()
    # the latest note is quoted as data in later proposals
    proposal_requests = [b for b in stub.requests if not is_research(b)]
    assert '<data source="research">' in user_text(proposal_requests[-1])
    llm = [e for e in state.events if e.event == "llm" and e.reason not in ("reserved", "settled")]
    assert len(llm) == len(experiments) and all(e.reason == "proposal" and e.llm_usd > 0 for e in llm)
    spent = sum(e.llm_usd for e in (*llm, *research))
    status = campaign_status(root, root / "program.md")
    assert status["llm_used_usd"] == pytest.approx(spent, abs=1e-4) and status["llm_max_usd"] == 2
    assert "LLM $" in render_status(status)
    summary = (root / "runs" / "summary.md").read_text()
    assert "## Proposer" in summary and "[001.md](research/001.md)" in summary
    assert f"proposed {len(experiments)} experiments" in summary
    assert "Iter 1: lr 0.0001 should move" in summary
    assert "| LLM dollars |" in summary


def test_mlr_run_with_proposer_claude_and_model_on_the_local_backend(stub, tmp_path, capsys):
    root = make_repo(tmp_path / "repo", envelope=with_(ENVELOPE, max_jobs=3, allowed_flavors=["cpu-basic"], max_timeout="5m",
                                                       max_walltime="1h", max_llm_usd=1),
                     campaign=with_(CAMPAIGN, target=None, patience=None, flavor="cpu-basic", timeout="2m"))
    (root / "train.py").write_text(
        "import sys\nargs = dict(a[2:].split('=', 1) for a in sys.argv[1:])\n"
        "print(f\"eval_accuracy={1 - abs(float(args['lr']) - 3e-4):.6f}\")\n"
    )

    def cpu(body):
        got = researcher_and_proposer(body)
        if not is_research(body):
            data = json.loads(got[2]["content"][0]["text"])
            data.update(flavor="cpu-basic", timeout_minutes=2)
            return structured(data, model=body["model"])
        return got

    stub.responder = cpu
    code = cli.main(["run", "--repo", str(root), "--proposer", "claude", "--model", "claude-haiku-5-5",
                     "--interval", "0.05", "--max-ticks", "200"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "proposed by claude-haiku-5-5" in out and "research note 001" in out
    assert {b["model"] for b in stub.requests} == {"claude-haiku-5-5"}
    state = fold(read_ledger(root / "runs" / "ledger.jsonl"))
    assert state.stopped.reason == "budget" and len(state.experiments) == 3
    assert all(e.status == "completed" and e.proposer == "claude" for e in state.experiments.values())
    assert cli.main(["status", "--repo", str(root)]) == 0
    assert "LLM $" in capsys.readouterr().out
    assert program_of(root).envelope.max_jobs == 3


def test_a_step_that_does_not_propose_makes_no_call_and_builds_no_client(stub, tmp_path):
    root = make_repo(tmp_path / "repo", campaign=with_(CAMPAIGN, target=None, patience=None))
    clock = FakeClock()
    proposer = ClaudeProposer(clock=clock)
    step = Step(root=root, backend=InMemoryBackend(clock=clock.seconds), proposer=proposer, forge=FileForge(root), clock=clock)
    assert step.run().exit_code == 0 and len(stub.requests) == 2  # research, then the first proposal
    calls = len(stub.requests)
    fresh = ClaudeProposer(clock=clock)
    step.proposer = fresh
    assert step.run().exit_code == 0  # the job is in flight and max_parallel is 1: nothing to propose
    assert len(stub.requests) == calls and fresh.client._sdk is None


def test_claude_counts_the_backends_record_so_a_lowered_ledger_costs_no_wasted_call(stub, tmp_path):
    """A ledger-branch writer zeroed the charges of two finished jobs; the backend still lists them.

    Two slots are free by max_parallel, but the backend's record (2 x 51 minutes of 3h, 10% kept back) has room
    for one more 1h job and then not a minute more. Claude is asked once, and its prompt shows the budget the
    step counts.
    """
    envelope = {"max_jobs": 8, "max_walltime": "3h", "allowed_flavors": ["a10g-large"], "max_timeout": "1h",
                "allow_deletes": False, "output_repos": ["me/sweep-*"], "max_parallel": 2, "max_llm_usd": 5}
    root = make_repo(tmp_path / "sweep", envelope=envelope,
                     campaign=with_(CAMPAIGN, target=None, patience=None, flavor="a10g-large", timeout="1h"))
    clock = FakeClock()
    backend = InMemoryBackend(clock=clock.seconds)
    rows = [{"event": "started", "ts": "2026-01-01T00:00:00+00:00", "campaign": "sweep"},
            {"event": "research", "ts": "2026-01-01T00:00:00+00:00", "reason": "unavailable", "after": 99}]
    for it in (1, 2):
        spec = JobSpec(campaign="sweep", iter=it, script=str(root / "train.py"), args=[], env={},
                       flavor="a10g-large", timeout_s=3600, labels=labels_for("sweep", it))
        job_id = backend.submit(spec=spec)
        backend.advance(job_id, JobStage.COMPLETED, duration_s=3060, logs="eval_accuracy=0.5\n")
        rows.append({"iter": it, "ts": "2026-01-01T01:00:00+00:00", "status": "completed", "job_id": job_id,
                     "metric": 0.5, "decision": "keep" if it == 1 else "discard", "timeout": "1h", "timeout_s": 3600,
                     "config": {"lr": 1e-5 * it, "batch_size": 4, "scheduler": "linear"}, "flavor": "a10g-large",
                     "hypothesis": "", "duration_s": 0.0, "cost_usd": 0.0})  # lowered by the ledger's writer
    (root / "runs").mkdir()
    (root / "runs" / "ledger.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = Step(root=root, backend=backend, proposer=ClaudeProposer(clock=clock), forge=FileForge(root),
                  clock=clock).run()
    assert result.exit_code == 0 and len(result.submitted_ids) == 1
    assert result.escalated == set() and not (root / "runs" / "escalations" / "envelope-breach.md").exists()
    proposals = [b for b in stub.requests if not is_research(b)]
    assert len(proposals) == 1  # no paid call for a slot the budget has no room for
    assert "walltime: 1h42m of 3h used" in user_text(proposals[0])  # the backend's 2 x 51m, not the ledger's 0s
