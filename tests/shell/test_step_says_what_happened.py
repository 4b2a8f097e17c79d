"""What a step says after a failure is true: what it spent, what failed, and what to do.

Three paths a reviewer found saying something false: a publish that fails for
good after the tick paid an LLM call (the issue said "Nothing more was spent"
and told the user about tokens and scripts, not about the branch the bot
pushes to); a ledger that cannot be read after a submit in the same step
(its text ends in "nothing was spent"); and a transient error whose message
already says the next tick retries (said twice).
"""

from __future__ import annotations

from pathlib import Path

from loopback.anthropic_stub import StubAnthropic, structured
from claude_helpers import ENVELOPE, FAKE_KEY, answer, make_repo, with_
from mlr_action.core.jobs import PermanentError, TransientError
from mlr_action.backends.memory import InMemoryBackend
from mlr_action.forges.files import FileForge
from mlr_action.proposers.claude import ClaudeProposer
from mlr_action.proposers.search import SearchProposer
from mlr_action.shell.step import Step
from mlr_action.render.views import step_line
from simulate import FakeClock

PROTECTED = "the push of runs/ to origin/main was refused: protected branch (GH006)"


def test_a_publish_that_fails_for_good_after_an_llm_call_says_what_was_spent_and_names_the_branch(tmp_path,
                                                                                                    monkeypatch):
    publishes: list[str] = []

    def publish(message: str) -> None:
        publishes.append(message)
        if len(publishes) == 2:  # the reservation went out; the intent's publish, before the submit, is refused
            raise PermanentError(PROTECTED)

    with StubAnthropic(lambda body: structured(answer())) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
        root = make_repo(tmp_path / "r", envelope=with_(ENVELOPE, max_llm_usd=5.0))
        (root / "runs").mkdir()
        (root / "runs" / "ledger.jsonl").write_text('{"event":"research","ts":"t","reason":"unavailable","after":0}\n')
        backend = InMemoryBackend()
        result = Step(root=root, backend=backend, proposer=ClaudeProposer(clock=FakeClock()), forge=FileForge(root),
                      clock=FakeClock(), publish=publish).run()
    assert result.exit_code == 2 and result.llm_usd > 0 and backend.jobs == {}
    spent = f"spent ${result.llm_usd:.4f} on LLM calls"
    assert spent in step_line(result)
    report = (root / "runs" / "escalations" / "publish-failed.md").read_text()
    assert spent in report and "Nothing more was spent" not in report and "nothing was spent" not in report.lower()
    assert PROTECTED in report
    for fix in ("ledger-branch", "protected", "contents: write"):
        assert fix in report, fix
    assert "HF_TOKEN" not in report and "script:" not in report  # the generic fix of another kind
    assert not (root / "runs" / "escalations" / "unrecoverable-error.md").exists()


class CorruptsTheLedger(InMemoryBackend):
    """Submits, then a line the ledger cannot read lands in runs/ (a concurrent writer, or a job's own code)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def submit(self, *, spec):
        job_id = super().submit(spec=spec)
        with open(self.root / "runs" / "ledger.jsonl", "a") as fh:
            fh.write("{not json\n")
        return job_id


def test_a_ledger_that_cannot_be_read_after_a_submit_never_says_nothing_was_spent(tmp_path):
    root = make_repo(tmp_path / "r")
    backend = CorruptsTheLedger(root)
    result = Step(root=root, backend=backend, proposer=SearchProposer(), forge=FileForge(root), clock=FakeClock()).run()
    assert result.exit_code == 2 and result.submitted == 1, result.events
    [job_id] = backend.jobs
    said = result.events[-1]
    assert said.startswith("ledger: ") and "is not valid JSON" in said
    assert "nothing was spent" not in said and f"this step submitted 1 job ({job_id})" in said, said
    report = (root / "runs" / "escalations" / "ledger.md").read_text()
    assert "nothing was spent" not in report.lower() and f"submitted 1 job ({job_id})" in report


class Unreachable(InMemoryBackend):
    def list_jobs(self, *, campaign):
        raise TransientError("HF answered 503 to GET /api/jobs/me; the next tick retries")


def test_a_transient_error_says_the_next_tick_retries_once(tmp_path):
    root = make_repo(tmp_path / "r")
    result = Step(root=root, backend=Unreachable(), proposer=SearchProposer(), forge=FileForge(root),
                  clock=FakeClock()).run()
    assert result.exit_code == 1
    assert result.events[-1] == "transient: HF answered 503 to GET /api/jobs/me; the next tick retries"


def test_a_transient_error_that_does_not_say_it_gets_told(tmp_path):
    class Flaky(InMemoryBackend):
        def list_jobs(self, *, campaign):
            raise TransientError("connection reset by peer")

    root = make_repo(tmp_path / "r")
    result = Step(root=root, backend=Flaky(), proposer=SearchProposer(), forge=FileForge(root), clock=FakeClock()).run()
    assert result.events[-1] == "transient: connection reset by peer (the next tick retries)"
