"""A canceled repeat of the final evaluation runs again, once; a repeat that completed or failed never does.

A repeat canceled before it could finish (by a person on the backend, or by the bot for waiting longer than
``scheduling_timeout`` to start) says nothing about the config: it is run again, as a new iter of the same
repeat. Canceled a second time, it is not, and the writeup says how many repeats ran out of how many.
"""

from __future__ import annotations

from mlr_action.core.jobs import JobStage
from mlr_action.backends.memory import InMemoryBackend
from mlr_action.core.ledger import read_ledger
from mlr_action.core.state import fold
from programs import CAMPAIGN, ENVELOPE, with_
from simulate import FakeClock, finish_jobs, make_step
from test_campaign import make_repo

FINAL = {"repeats": 3, "seed_param": "seed", "fixed": {"split": "test"}}


def state_of(root):
    return fold(read_ledger(root / "runs" / "ledger.jsonl"))


def repeat_of(job) -> int:
    return int(job.labels["mlr-repeat"])


def live(backend, repeat: int):
    return next(j for j in backend.jobs.values() if "mlr-final-of" in j.labels and repeat_of(j) == repeat
                and not j.stage.terminal)


def stopped_with_repeats_in_flight(tmp_path, backend=None, **campaign):
    """The first result reaches the target; the next step stops the campaign and submits three repeats at once."""
    clock = FakeClock()
    root = make_repo(tmp_path, with_(ENVELOPE, max_parallel=3), with_(CAMPAIGN, target=0.9, final=FINAL, **campaign))
    step = make_step(root, backend(clock) if backend else None, clock)
    step.run()
    clock.advance(900)
    finish_jobs(step.backend)
    step.run()
    assert len(state_of(root).finals) == 3
    return root, step


def test_a_repeat_canceled_on_the_backend_runs_again_once_and_the_writeup_says_how_many_ran(tmp_path):
    root, step = stopped_with_repeats_in_flight(tmp_path)
    step.backend.advance(live(step.backend, 2).job_id, JobStage.CANCELED, message="canceled by user")
    result = step.run()
    state = state_of(root)
    assert result.submitted == 1 and state.repeats_of(1)[2].status == "submitted"  # repeat 2, a new iter
    assert sorted(r.repeat for r in state.finals.values()) == [1, 2, 2, 3]
    step.backend.advance(live(step.backend, 2).job_id, JobStage.CANCELED, message="canceled by user")
    step.clock.advance(900)
    finish_jobs(step.backend)
    result = step.run()
    state = state_of(root)
    assert result.submitted == 0 and result.finished, result.events  # canceled twice: not run a third time
    assert state.final_event.reason == "finished"
    assert sum(1 for j in step.backend.jobs.values() if "mlr-final-of" in j.labels) == 4
    assert "2 of 3 repeats ran" in state.final_event.detail and "repeat 2 was canceled twice" in state.final_event.detail
    for text in ((root / "runs" / "summary.md").read_text(), (root / "runs" / "stop-report.md").read_text()):
        assert "**Finished:** 2 of 3 repeats ran, 2 with a result; repeat 2 was canceled twice" in text, text
        assert "(mean ± sd over 2 repeats of 3" in text


def test_a_repeat_that_completed_or_failed_never_runs_again(tmp_path):
    root, step = stopped_with_repeats_in_flight(tmp_path)
    step.backend.advance(live(step.backend, 1).job_id, JobStage.ERROR, duration_s=5, logs="Traceback\n",
                         message="exit code 1")
    step.clock.advance(900)
    finish_jobs(step.backend)
    result = step.run()
    assert result.submitted == 0 and result.finished
    assert sorted(r.repeat for r in state_of(root).finals.values()) == [1, 2, 3]
    assert "**Finished:** 3 of 3 repeats ran, 2 with a result." in (root / "runs" / "summary.md").read_text()


class SlowToStart(InMemoryBackend):
    """Says how long a job has waited to start (SCHEDULING), as HF Jobs does."""

    def _view(self, job):
        view = super()._view(job)
        waiting = self._clock() - job.submitted_at if job.stage is JobStage.SCHEDULING else None
        return view.model_copy(update={"waiting_s": waiting})


def test_a_repeat_canceled_for_waiting_too_long_to_start_runs_again_once(tmp_path):
    root, step = stopped_with_repeats_in_flight(tmp_path, lambda clock: SlowToStart(clock=clock.seconds),
                                                scheduling_timeout="10m")
    for repeat in (1, 3):
        step.backend.advance(live(step.backend, repeat).job_id, JobStage.RUNNING)
    step.clock.advance(11 * 60)  # repeat 2 is still waiting for its hardware
    result = step.run()
    state = state_of(root)
    first = min(state.finals.values(), key=lambda r: r.iter if r.repeat == 2 else 10**6)
    assert first.status == "canceled" and "scheduling_timeout 10m" in first.error
    assert result.submitted == 1 and state.repeats_of(1)[2].iter > first.iter
    step.clock.advance(11 * 60)  # and again
    step.run()
    step.clock.advance(900)
    finish_jobs(step.backend)
    result = step.run()
    assert result.finished and result.submitted == 0
    assert "2 of 3 repeats ran" in state_of(root).final_event.detail
