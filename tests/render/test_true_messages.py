"""True messages: "nothing was spent" only when nothing was.

A step can spend (submit a job, pay for an LLM call) and then hit an error it
cannot retry. What it says then (the event, the escalation report, the
one-line status, the action's summary) names what this step spent; the words
"nothing was spent" appear only when it spent nothing.
"""

from __future__ import annotations

import pytest

from mlr_action.core.jobs import PermanentError
from mlr_action.backends.memory import InMemoryBackend
from mlr_action.forges.files import FileForge
from mlr_action.core.ledger import EventRow
from mlr_action.core.proposal import Proposal, Proposer
from mlr_action.proposers.search import SearchProposer
from mlr_action.render.reports import ESCALATIONS, render_escalation
from mlr_action.shell.step import Step
from mlr_action.render.views import step_line
from programs import CAMPAIGN, ENVELOPE, program_text, with_
from simulate import FakeClock

PROGRAM = program_text(with_(ENVELOPE, max_parallel=2, max_llm_usd=1), with_(CAMPAIGN, target=None, patience=None))
NO_CREDITS = "HF refused submitting iter 2 (402 Payment Required): namespace me has no credits"


class SecondSubmitFails(InMemoryBackend):
    """The first submit of a step goes through; the second is refused for good (say, the credits ran out)."""

    def submit(self, *, spec):
        if self.jobs:
            raise PermanentError(NO_CREDITS)
        return super().submit(spec=spec)


class PaidThenFailed(Proposer):
    """An LLM proposer whose call was paid for, and whose answer then could not be used, for good."""

    name = "claude"

    def __init__(self):
        self.events = []

    def propose(self, *, program, state, count, check=None, used=None, prices=None) -> list[Proposal]:
        self.events.append(EventRow(event="llm", ts="2026-01-01T00:00:00+00:00", reason="proposal", llm_usd=0.0123))
        raise PermanentError("the Anthropic API refused the request (400): the model does not exist")

    def take_events(self) -> list:
        events, self.events = self.events, []
        return events


def repo(tmp_path, text=PROGRAM):
    (tmp_path / "program.md").write_text(text)
    (tmp_path / "train.py").write_text("print('eval_accuracy=0.5')\n")
    return tmp_path


def run(tmp_path, *, backend=None, proposer=None, text=PROGRAM):
    root = repo(tmp_path, text)
    clock = FakeClock()
    step = Step(root=root, backend=backend or InMemoryBackend(clock=clock.seconds), proposer=proposer or SearchProposer(),
                forge=FileForge(root), clock=clock)
    return root, step.run()


def test_a_step_that_submitted_a_job_before_the_error_says_so(tmp_path):
    root, result = run(tmp_path, backend=SecondSubmitFails())
    assert result.exit_code == 2 and result.submitted == 1
    said = "\n".join(result.events)
    assert "nothing was spent" not in said.lower()
    [job_id] = [e.split()[3] for e in result.events if e.startswith("iter 1 submitted ")]
    assert f"this step submitted 1 job ({job_id}) before stopping" in said
    report = (root / "runs/escalations/unrecoverable-error.md").read_text()
    assert "nothing" not in report.lower().replace("nothing more is submitted", "")
    assert f"This step submitted 1 job ({job_id}) before stopping" in report
    assert "nothing was spent" not in step_line(result)


def test_a_step_that_paid_for_an_llm_call_before_the_error_says_so(tmp_path):
    root, result = run(tmp_path, proposer=PaidThenFailed())
    assert result.exit_code == 2 and result.submitted == 0
    said = "\n".join(result.events)
    assert "nothing was spent" not in said.lower() and "spent $0.0123 on LLM calls" in said
    assert "$0.0123 on LLM calls" in (root / "runs/escalations/unrecoverable-error.md").read_text()


def test_a_step_that_spent_nothing_still_says_nothing_was_spent(tmp_path):
    root, result = run(tmp_path, text=PROGRAM.replace("max_jobs: 12", "max_jobs: 0"))
    assert result.exit_code == 2 and result.events[-1].endswith("(nothing was spent)")
    assert step_line(result) == "[exit 2] nothing was spent"
    assert "Nothing was spent in this step" in (root / "runs/escalations/invalid-program.md").read_text()


def test_the_hf_backend_never_says_nothing_was_spent_about_a_whole_step():
    hf = pytest.importorskip("mlr_action.backends._hf_calls")
    said = [m for m in hf.MESSAGES.values() if "nothing was spent" in m]
    assert said == [], "a backend knows about one request, not about what the step spent before it"


@pytest.mark.parametrize("kind", ESCALATIONS)
def test_an_escalation_says_what_this_step_spent_when_it_spent(kind):
    _, body = render_escalation(kind=kind, problems=["x"], now="2026-01-01T00:00:00+00:00",
                                spent="this step submitted 1 job (job-1) before stopping")
    assert "This step submitted 1 job (job-1) before stopping" in body
    assert "Nothing was spent" not in body and "Nothing more was spent" not in body


def test_the_action_summary_of_bad_input_says_what_was_spent():
    from mlr_action.github.action_step import render_step_summary

    summary = render_step_summary({"state": "running"}, ["unrecoverable-error: x"], 2, dry=False, why=[],
                                  spent="this step submitted 1 job (job-1) before stopping")
    assert "nothing was spent" not in summary and "this step submitted 1 job (job-1)" in summary


# --- "stopping" only when the campaign will stop --------------------------------------------------------------


def _waiting_on_the_budget(tmp_path, envelope: dict):
    """Two 1h jobs in flight that fill the walltime budget (each charged its full timeout until it ends)."""
    from simulate import finish_jobs, make_step

    root = repo(tmp_path, program_text(with_(ENVELOPE, **envelope), with_(CAMPAIGN, target=None, patience=None)))
    step = make_step(root)
    assert step.run().submitted == 2
    waiting = step.run()
    assert waiting.submitted == 0 and waiting.state.stopped is None
    finish_jobs(step.backend, duration_s=600)  # they end after 10 minutes each, freeing most of what they held
    return waiting, step.run()


def test_a_budget_that_frees_room_when_jobs_end_is_never_called_a_stop(tmp_path):
    waiting, after = _waiting_on_the_budget(tmp_path, dict(max_walltime="2h30m", max_timeout="1h", max_parallel=2))
    assert after.submitted >= 1 and after.state.stopped is None  # the campaign went on: it was not stopping
    said = " ".join(waiting.events)
    assert "stopping" not in said, said
    assert "2 job(s) in flight" in said and "the campaign stops when they end unless" in said, said


def test_max_jobs_reached_with_jobs_in_flight_is_a_stop_and_says_so(tmp_path):
    waiting, after = _waiting_on_the_budget(tmp_path, dict(max_jobs=2, max_parallel=2))
    assert after.state.stopped is not None and after.state.stopped.reason == "budget"
    assert "stopping (budget): waiting for 2 job(s) in flight" in " ".join(waiting.events)
