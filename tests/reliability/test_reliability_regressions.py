"""Regression tests for what the reliability harness found, one small case each.

- A job adopted after its rows were lost (a crash or a rejected push before they reached the remote) is
  recorded with the config, flavor and timeout the job runs with, not an empty config (it was re-proposed
  and run a second time).
- A job the backend no longer knows, with no duration, is charged its full timeout, not zero.
- A reservation covers every started minute, as HF Jobs bills: a 61 s timeout reserves two minutes.
- Two HF submits that race past the label lookup both keep the job created first; the later is canceled.
- An LLM call whose answer was lost or came too late is charged its estimate: it may have been billed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlr_action.core.reconcile import reconcile
from mlr_action.core.jobs import JobSpec, JobStage, JobView, labels_for
from mlr_action.core.budget import Usage, budget_problems, usage
from mlr_action.core.ledger import EventRow, ExperimentRow
from mlr_action.core.program import load_program
from mlr_action.core.state import fold
from programs import ENVELOPE, with_
from reliability import make_repo


@pytest.fixture
def program(tmp_path):
    return load_program(make_repo(tmp_path / "sweep", with_(ENVELOPE, max_cost_usd=10)) / "program.md")


def test_an_adopted_job_is_recorded_with_the_config_flavor_and_timeout_it_runs(program):
    state = fold([EventRow(event="started", ts="t", campaign="sweep")])
    view = JobView(job_id="j1", stage=JobStage.RUNNING, labels=labels_for("sweep", 1), flavor="t4-small", timeout_s=1800,
                   args=["--lr=0.0003", "--batch_size=32", "--scheduler=cosine", "--epochs=3", "--unknown=1"])
    [row] = reconcile(program, state, observed={"j1": view}, listed=[view], logs={}, ts="t")
    assert row.config == {"lr": 0.0003, "batch_size": 32, "scheduler": "cosine"}
    assert (row.flavor, row.timeout_s, row.status, row.job_id) == ("t4-small", 1800, "running", "j1")
    assert row.output_repo == "me/sweep-sweep-001"
    # a job that says nothing of itself is charged as the most expensive job the envelope allows
    bare = JobView(job_id="j2", stage=JobStage.SCHEDULING, labels=labels_for("sweep", 2))
    [row] = reconcile(program, state, observed={"j2": bare}, listed=[bare], logs={}, ts="t")
    assert row.config == {} and (row.flavor, row.timeout_s) == ("a10g-large", program.envelope.max_timeout)


def test_a_vanished_job_with_no_duration_is_charged_its_full_timeout(program):
    submitted = ExperimentRow(iter=1, ts="t", status="submitted", job_id="j1", config={}, flavor="a10g-large",
                              timeout="1h", timeout_s=3600)
    state = fold([EventRow(event="started", ts="t", campaign="sweep"), submitted])
    gone = JobView(job_id="j1", stage=JobStage.DELETED, message="no such job")
    [row] = reconcile(program, state, observed={"j1": gone}, listed=[], logs={}, ts="t")
    assert row.status == "error" and row.duration_s is None
    assert usage(fold([*state.events, row])).walltime_s == 3600


def test_a_reservation_covers_every_started_minute(program):
    # a10g-large: $1.50/h, so $0.025 a minute; $0.045 may be spent with the reserve kept
    envelope = program.envelope.model_copy(update={"max_cost_usd": 0.05, "max_walltime": 10**6})
    assert not budget_problems(envelope, Usage(), flavor="a10g-large", timeout_s=60)  # 1 min, $0.025
    assert budget_problems(envelope, Usage(), flavor="a10g-large", timeout_s=61)  # 2 billed minutes, $0.05 > $0.045
    row = ExperimentRow(iter=1, ts="t", status="submitted", job_id="j", flavor="a10g-large", timeout_s=61, timeout="61s")
    assert usage(fold([row])).cost_usd == pytest.approx(0.05)


def test_two_hf_submits_that_raced_past_the_lookup_keep_the_first_job(tmp_path: Path):
    pytest.importorskip("huggingface_hub")
    from loopback.hf_server import FakeHubServer
    from mlr_action.backends import _hf_http
    from mlr_action.backends.hf import HfBackend

    script = tmp_path / "train.py"
    script.write_text("print('eval_accuracy=0.5')\n")
    spec = JobSpec(campaign="sweep", iter=1, script=str(script), args=["--lr=0.1"], env={}, flavor="t4-small",
                   timeout_s=600, labels=labels_for("sweep", 1))
    with FakeHubServer(token="hf_" + "x" * 30) as hub:
        def backend() -> HfBackend:
            b = HfBackend(endpoint=hub.url, token="hf_" + "x" * 30, namespace="me", policy=_hf_http.Policy(backoff_s=0))
            b._find = lambda labels: None  # both looked before either created
            return b

        first = backend().submit(spec=spec)
        second = backend().submit(spec=spec)
        assert first == second == next(iter(hub.jobs))
        stages = [j.stage for j in hub.jobs.values()]
        assert stages == ["SCHEDULING", "CANCELED"]


def test_an_llm_answer_that_never_arrived_is_charged_its_estimate(monkeypatch):
    pytest.importorskip("anthropic")
    from pydantic import BaseModel

    from loopback.anthropic_stub import StubAnthropic, structured
    from mlr_action.core.jobs import TransientError
    from mlr_action.proposers.llm import ClaudeClient

    class Answer(BaseModel):
        x: int

    with StubAnthropic(lambda body: structured({"x": 1})) as stub:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", stub.url)
        stub.chaos(1.0, kinds=("lost",))
        client = ClaudeClient(model="claude-sonnet-5-5", api_key="sk-" + "ant-test-0000", timeout_s=1, max_retries=1)
        with pytest.raises(TransientError):
            client.parse(system="s", user="u", output=Answer, max_tokens=10, estimate_usd=0.5)
        assert len(stub.billed) == 2  # both attempts were processed (and billed) by the API
        spend = client.take_spend()
        assert spend.usd == pytest.approx(1.0) and spend.estimated == 2
        stub.chaos(1.0, kinds=("503",))  # refused before any work: nothing to charge
        with pytest.raises(TransientError):
            client.parse(system="s", user="u", output=Answer, max_tokens=10, estimate_usd=0.5)
        assert client.take_spend().usd == 0
