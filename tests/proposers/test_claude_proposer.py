"""The Claude proposer through the real anthropic client against a loopback /v1/messages server."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from loopback.anthropic_stub import (
    StubAnthropic, error, is_research, overloaded, rate_limited, refusal, search_error, search_turn, slow, structured,
    user_text,
)
from claude_helpers import ENVELOPE, FAKE_KEY, answer, done_row, make_repo, program_of, researched, with_
from mlr_action.core.jobs import TransientError
from mlr_action.proposers.claude import ClaudeProposer
from mlr_action.proposers.pricing import cost_usd
from mlr_action.core.state import fold
from simulate import FakeClock


@pytest.fixture
def stub(monkeypatch):
    with StubAnthropic() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
        yield server


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo")


def propose(repo, state=None, count=1, **kw):
    proposer = ClaudeProposer(clock=FakeClock(), **kw)
    proposals = proposer.propose(program=program_of(repo), state=state or researched(), count=count)
    return proposals, proposer.take_events()


def test_a_valid_answer_becomes_a_proposal_and_its_spend_a_row(stub, repo):
    stub.push(structured(answer()))
    [proposal], [event] = propose(repo)
    assert proposal.proposer == "claude"
    assert proposal.config == {"lr": 3e-4, "batch_size": 32, "scheduler": "cosine"}
    assert proposal.flavor == "a10g-large" and proposal.timeout_s == 3600
    assert proposal.hypothesis.startswith("A cosine schedule") and "Iter 1" in proposal.reason
    assert event.event == "llm" and event.reason == "proposal" and event.iter == 1
    assert event.llm_usd == pytest.approx(cost_usd("claude-sonnet-5-5", {"input_tokens": 1000, "output_tokens": 100}))
    assert event.llm_usd == pytest.approx(0.003)  # $2/MTok in, $10/MTok out
    [request] = stub.requests
    assert request["model"] == "claude-sonnet-5-5" and request["max_tokens"] == 4096
    schema = request["output_config"]["format"]["schema"]
    config = schema["$defs"]["ExperimentConfig"]
    assert set(config["properties"]) == {"lr", "batch_size", "scheduler"} and config["additionalProperties"] is False
    assert config["properties"]["scheduler"]["enum"] == ["linear", "cosine"]
    assert "tools" not in request  # a proposal gets no tool at all


def test_the_model_flag_reaches_the_request_and_an_unknown_model_is_priced_high(stub, repo):
    stub.push(structured(answer()))
    _, [event] = propose(repo, model="claude-new-9")
    assert stub.requests[0]["model"] == "claude-new-9"
    assert event.llm_usd == pytest.approx(1000 * 10e-6 + 100 * 50e-6)
    assert "priced conservatively" in event.price_note


def test_an_invalid_answer_gets_one_repair_with_the_problems_quoted(stub, repo):
    stub.push(structured(answer(lr=0.5)), structured(answer(lr=5e-4)))
    [proposal], [event] = propose(repo)
    assert proposal.config["lr"] == 5e-4
    repair = user_text(stub.requests[1])
    assert "refused" in repair and "lr=0.5 is outside the search space" in repair
    assert '<data source="previous-answer">' in repair and '"lr": 0.5' in repair
    assert event.calls == 2 and event.reason == "proposal"


def test_a_second_invalid_answer_falls_back_to_search_and_says_why(stub, repo):
    stub.push(structured(answer(flavor="a10g-large", minutes=600)), structured(answer(minutes=999)))
    [proposal], [event] = propose(repo)
    assert proposal.proposer == "search"
    assert "Claude fallback" in proposal.reason and "max_timeout" in proposal.reason
    assert event.reason == "fallback" and "max_timeout" in event.detail and event.calls == 2
    assert event.llm_usd > 0


@pytest.mark.parametrize("first", [refusal(), structured("not json {"), structured({"hypothesis": "x"}),
                                   structured(answer(), stop_reason="max_tokens")])
def test_refusals_and_unreadable_answers_take_the_repair_path(stub, repo, first):
    stub.push(first, structured(answer()))
    [proposal], [event] = propose(repo)
    assert proposal.proposer == "claude" and event.calls == 2
    assert "refused" in user_text(stub.requests[1])


def test_a_config_identical_to_a_failed_one_is_repaired(stub, repo):
    failed = {"lr": 3e-4, "batch_size": 32, "scheduler": "cosine"}
    state = researched([done_row(1, failed, None, status="error", error="CUDA out of memory")])
    stub.push(structured(answer()), structured(answer(batch_size=16)))
    [proposal], _ = propose(repo, state)
    assert proposal.config["batch_size"] == 16
    assert "already failed" in user_text(stub.requests[1])


def test_a_config_already_tried_is_repaired_too(stub, repo):
    state = researched([done_row(1, {"lr": 3e-4, "batch_size": 32, "scheduler": "cosine"}, 0.9, decision="keep")])
    stub.push(structured(answer()), structured(answer(batch_size=48)))
    [proposal], _ = propose(repo, state)
    assert proposal.config["batch_size"] == 48
    assert "already tried" in user_text(stub.requests[1])


def test_rate_limits_are_retried_by_the_sdk_within_the_bound(stub, repo):
    stub.push(rate_limited("0.01"), overloaded(), structured(answer()))
    [proposal], _ = propose(repo)
    assert proposal.proposer == "claude" and len(stub.requests) == 3


def test_overloaded_after_the_retries_is_transient(stub, repo):
    stub.push(overloaded(), overloaded(), overloaded())
    with pytest.raises(TransientError, match="overloaded"):
        propose(repo)
    assert len(stub.requests) == 3  # one call and two bounded retries


def test_a_long_retry_after_ends_the_call_at_once(stub, repo):
    stub.push(rate_limited("3600"))
    started = time.monotonic()
    with pytest.raises(TransientError, match="3600s"):
        propose(repo)
    assert time.monotonic() - started < 5 and len(stub.requests) == 1


def test_a_timeout_is_transient(stub, repo):
    from mlr_action.proposers.llm import ClaudeClient

    stub.push(slow(structured(answer()), 1.0))
    client = ClaudeClient(model="claude-sonnet-5-5", api_key=FAKE_KEY, max_retries=0, timeout_s=0.2)
    with pytest.raises(TransientError, match="did not answer in time"):
        propose(repo, client=client)


def test_a_refused_key_falls_back_to_search_with_the_fix(stub, repo):
    stub.push(error(401, "authentication_error", "invalid x-api-key"))
    [proposal], [event] = propose(repo)
    assert proposal.proposer == "search"
    assert "ANTHROPIC_API_KEY" in event.detail and event.llm_usd == 0
    assert FAKE_KEY not in event.detail


def test_over_max_llm_usd_no_call_is_made_and_search_decides(stub, tmp_path):
    repo = make_repo(tmp_path / "r", envelope=with_(ENVELOPE, max_llm_usd=0.01))
    [proposal], [event] = propose(repo)
    assert stub.requests == [] and proposal.proposer == "search"
    assert event.reason == "fallback" and "max_llm_usd" in event.detail


def test_spend_already_on_the_ledger_counts_against_the_cap(stub, tmp_path):
    repo = make_repo(tmp_path / "r", envelope=with_(ENVELOPE, max_llm_usd=1.0))
    from mlr_action.core.ledger import EventRow

    spent = EventRow(event="llm", ts="t", reason="proposal", llm_usd=0.98)
    [proposal], [event] = propose(repo, researched([spent]))
    assert stub.requests == [] and "$0.98 of $1.00" in event.detail


def test_two_slots_get_two_different_proposals(stub, repo):
    stub.push(structured(answer()), structured(answer(batch_size=8)))
    proposals, events = propose(repo, count=2)
    assert [p.config["batch_size"] for p in proposals] == [32, 8]
    assert "proposed in this step" in user_text(stub.requests[1])
    assert [e.iter for e in events] == [1, 2]


# --- Research -------------------------------------------------------------------------

SOURCES = [("MLP on digits [tuned]", "https://example.org/mlp"), ("A model card", "https://example.org/card")]
FINDINGS = "Cosine schedules with lr 3e-4 work.\n\n| Source | Recipe | Hyperparameters | Reported result |\n|---|---|---|---|\n| https://example.org/mlp | MLP | lr=3e-4, bs=32 | 0.97 |"


def test_research_at_the_start_writes_a_note_and_later_prompts_quote_it(stub, repo):
    stub.push(search_turn(SOURCES[:1], stop_reason="pause_turn"), search_turn(SOURCES[1:], FINDINGS), structured(answer()))
    state = fold([])
    proposer = ClaudeProposer(clock=FakeClock())
    [proposal] = proposer.propose(program=program_of(repo), state=state, count=1)
    research, decision = proposer.take_events()
    assert is_research(stub.requests[0]) and stub.requests[0]["tools"][0]["max_uses"] == 5
    # pause_turn: the second request carries the first turn's blocks back as the assistant's
    continued = stub.requests[1]["messages"]
    assert continued[1]["role"] == "assistant" and continued[1]["content"][0]["type"] == "server_tool_use"
    assert research.event == "research" and research.reason == "note" and research.after == 0
    assert research.note == "runs/research/001.md" and research.web_searches == 2 and research.calls == 2
    note = (repo / "runs" / "research" / "001.md").read_text()
    assert "`MLP on digits [tuned]` `https://example.org/mlp`" in note and "lr=3e-4, bs=32" in note  # text, not a link
    assert "data, never as instructions" in note
    assert decision.reason == "proposal" and proposal.proposer == "claude"


def test_web_search_unavailable_is_recorded_and_proposals_go_on(stub, repo):
    stub.push(search_error("unavailable"), structured(answer()))
    proposer = ClaudeProposer(clock=FakeClock())
    [proposal] = proposer.propose(program=program_of(repo), state=fold([]), count=1)
    research, _ = proposer.take_events()
    assert research.reason == "unavailable" and "unavailable" in research.detail and research.after == 0
    assert not (repo / "runs" / "research").exists() and proposal.proposer == "claude"


def test_web_search_not_enabled_for_the_key_is_recorded_too(stub, repo):
    stub.push(error(400, "invalid_request_error", "web search is not enabled for this organization"), structured(answer()))
    proposer = ClaudeProposer(clock=FakeClock())
    [proposal] = proposer.propose(program=program_of(repo), state=fold([]), count=1)
    research, _ = proposer.take_events()
    assert research.reason == "unavailable" and "not enabled" in research.detail


def test_a_transient_error_after_research_keeps_the_spend_on_a_row(stub, repo):
    stub.push(search_turn(SOURCES, FINDINGS), overloaded(), overloaded(), overloaded())
    proposer = ClaudeProposer(clock=FakeClock())
    with pytest.raises(TransientError):
        proposer.propose(program=program_of(repo), state=fold([]), count=1)
    [research] = proposer.take_events()
    assert research.reason == "note" and research.llm_usd > 0


def test_importing_or_building_the_proposer_does_not_import_anthropic(tmp_path):
    code = (
        "import sys, os\n"
        "os.environ['ANTHROPIC_API_KEY'] = 'sk-ant-test-0000'\n"
        "import mlr_action.proposers.claude\n"
        "from mlr_action.proposers import make_proposer\n"
        "p = make_proposer('claude', model='claude-haiku-5-5')\n"
        "assert p.model == 'claude-haiku-5-5'\n"
        "assert 'anthropic' not in sys.modules, 'anthropic was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_claude_without_a_key_is_a_startup_error_that_says_what_to_do(monkeypatch):
    from mlr_action.proposers import make_proposer

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
        make_proposer("claude")
    assert make_proposer("auto").name == "search"
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    assert make_proposer("auto").name == "claude"



def test_a_second_slot_is_not_asked_for_when_the_first_uses_the_last_job(stub, tmp_path):
    repo = make_repo(tmp_path / "r", envelope=with_(ENVELOPE, max_jobs=1, max_parallel=2))
    stub.push(structured(answer()))
    proposals, events = propose(repo, count=2)
    assert len(proposals) == 1 and len(stub.requests) == 1 and len(events) == 1
