"""LLM spend is reserved on the ledger before the calls it covers, so max_llm_usd holds whatever is lost.

The calls go through the real anthropic client to the loopback /v1/messages
server; what the server billed is the truth.
"""

from __future__ import annotations

import re

import crashpoints as cp
import pytest
from loopback.anthropic_stub import StubAnthropic, is_research, search_turn, structured, user_text
from claude_helpers import ENVELOPE, answer, make_repo, program_of, researched, serve_stub, with_
from simulate import FakeClock

from mlr_action.backends.memory import InMemoryBackend
from mlr_action.core.budget import usage
from mlr_action.forges.files import FileForge
from mlr_action.core.ledger import EventRow, read_ledger
from mlr_action.proposers.claude import ClaudeProposer
from mlr_action.proposers.pricing import cost_usd
from mlr_action.core.state import fold
from mlr_action.shell.step import Step


def researcher(body: dict):
    if is_research(body):  # a research turn that costs about what its estimate allows: five searches, long results
        status, headers, message = search_turn([("A recipe", "https://example.org/recipe")], "Recipes use lr 3e-4.")
        message["usage"] = {"input_tokens": 40_000, "output_tokens": 4_000, "server_tool_use": {"web_search_requests": 5}}
        return status, headers, message
    n = int(re.search(r"Propose experiment iter (\d+)", user_text(body)).group(1))
    return structured(answer(lr=[1e-4, 2e-4, 3e-4, 4e-4][(n - 1) % 4], batch_size=8 + n))


@pytest.fixture
def stub(monkeypatch):
    yield from serve_stub(monkeypatch, researcher)


def billed(stub: StubAnthropic) -> float:
    return sum(cost_usd("claude-sonnet-5-5", u) for u in stub.billed)


def test_the_reservation_is_within_max_llm_usd_and_settled_by_the_rows_of_the_calls(stub, tmp_path):
    repo = make_repo(tmp_path / "r", envelope=with_(ENVELOPE, max_llm_usd=1.0))
    program, state = program_of(repo), researched([EventRow(event="llm", ts="t", reason="proposal", llm_usd=0.9)])
    proposer = ClaudeProposer(clock=FakeClock())
    row = proposer.reserve(program=program, state=state, count=1, used=usage(state), ts="t")
    assert row.event == "llm" and row.reason == "reserved" and 0 < row.llm_usd <= 0.1 + 1e-9
    assert usage(fold([*_rows(state), row])).llm_usd == pytest.approx(0.9 + row.llm_usd)
    reserved = fold([*_rows(state), row])
    proposer.propose(program=program, state=reserved, count=1)
    events = proposer.take_events()
    assert [e.reason for e in events] == ["proposal", "settled"] and events[-1].settles == row.reservation
    after = fold([*_rows(reserved), *events])
    assert usage(after).llm_usd == pytest.approx(0.9 + events[0].llm_usd)  # the reservation no longer counts
    assert billed(stub) <= row.llm_usd


def test_no_reservation_and_no_call_when_max_llm_usd_is_used_up(stub, tmp_path):
    repo = make_repo(tmp_path / "r", envelope=with_(ENVELOPE, max_llm_usd=1.0))
    program, state = program_of(repo), researched([EventRow(event="llm", ts="t", reason="proposal", llm_usd=0.999)])
    proposer = ClaudeProposer(clock=FakeClock())
    assert proposer.reserve(program=program, state=state, count=1, used=usage(state), ts="t") is None
    [proposal] = proposer.propose(program=program, state=state, count=1)
    assert stub.requests == [] and proposal.proposer == "search"
    [event] = proposer.take_events()
    assert event.reason == "fallback" and "max_llm_usd" in event.detail


def test_a_settle_row_written_before_its_reservation_settles_nothing():
    rows = [EventRow(event="llm", ts="t", reason="settled", settles="1.1", llm_usd=0.0),
            EventRow(event="llm", ts="t", reason="reserved", reservation="1.1", llm_usd=0.5)]
    assert usage(fold(rows)).llm_usd == 0.5


def test_a_step_killed_after_every_llm_answer_never_spends_past_max_llm_usd(stub, tmp_path):
    """SIGKILL between each answer and its ledger row, tick after tick: the unsettled reservation holds the cap."""
    cap = 0.5  # about three research turns
    root = make_repo(tmp_path / "r", envelope=with_(ENVELOPE, max_llm_usd=cap))
    clock, backend = FakeClock(), InMemoryBackend()
    writers = [w for w in cp.discover_writers() if w.module in ("mlr_action.core.ledger", "mlr_action.shell.steplock", "mlr_action.forges.files",
                                                                "mlr_action.proposers.research")]
    for _ in range(12):
        bounds = cp.Boundaries(target=("llm.search", 1, "after"))  # research is due every tick: it never got its row
        proposer = ClaudeProposer(clock=clock)
        proposer.client = cp.Proxy(proposer.client, "llm", bounds, skip=frozenset({"take_spend", "pending_usd"}))
        step = Step(root=root, backend=backend, proposer=proposer, forge=FileForge(root), clock=clock)
        with cp.installed(bounds, writers):
            try:
                step.run()
            except cp.Crash:
                pass
        clock.advance(900)
    state = fold(read_ledger(root / "runs" / "ledger.jsonl"))
    assert len(stub.requests) >= 1 and billed(stub) <= cap
    assert usage(state).llm_usd <= cap + 1e-9 and usage(state).llm_usd >= billed(stub)


def _rows(state) -> list:
    return [*state.experiments.values(), *state.events]
