"""Linger (mlr_action.shell.linger): the prediction as tables, the loop on a fake clock over the in-memory backend."""

from __future__ import annotations

import json

import pytest

from mlr_action.core.jobs import JobStage, JobView, TransientError
from mlr_action.backends.memory import InMemoryBackend
from mlr_action.shell.linger import (POLL_MAX_S, POLL_MIN_S, Done, Linger, Seen, due, expected_total, follow, next_check,
                               parse_linger, poll_floor, predict_end)
from programs import CAMPAIGN, ENVELOPE, program_text, with_
from simulate import FakeClock, JobWorld, make_step

A10G, T4 = "a10g-large", "t4-small"
LR1, LR2 = (("lr", "0.001"),), (("lr", "0.01"),)


# -- the prediction ------------------------------------------------------------------------------------------------

HISTORY = [Done(A10G, LR1, 1000.0), Done(A10G, LR2, 1800.0), Done(A10G, LR2, 1900.0), Done(T4, LR1, 3000.0)]


@pytest.mark.parametrize("ran, flavor, config, expected", [
    (0, A10G, LR1, 1000.0),  # the same flavor and config first
    (0, A10G, LR2, 1850.0),  # the median of the twins
    (0, A10G, (("lr", "0.5"),), 1800.0),  # no twin: the flavor's median
    (0, "a100-large", LR1, 1850.0),  # no job of the flavor: every job's median
    (1200, A10G, LR1, 1850.0),  # ran longer than its twin: the flavor's jobs that ran longer still
    (1850, A10G, LR2, 1900.0),  # only the durations longer than what it ran so far count
    (2500, A10G, LR2, 3000.0),  # longer than every a10g job: any job that ran longer
    (3500, A10G, LR2, 3685.0),  # longer than every job (but not 1.5 times the longest): a tenth of its twins' more
    (4600, A10G, LR2, None),  # past 1.5 times the longest job: nothing says
    (10, "a100-large", (), 1850.0),
])
def test_the_expected_duration_comes_from_the_closest_finished_jobs_that_ran_longer(ran, flavor, config, expected):
    assert expected_total(ran, HISTORY, flavor=flavor, config=config) == expected


def job(ran=0.0, *, started=True, timeout=3600, flavor=A10G, config=LR1, job_id="j1", it=1) -> Seen:
    return Seen(job_id, it, ran_s=ran, started=started, flavor=flavor, config=config, timeout_s=timeout)


@pytest.mark.parametrize("seen, history, end", [
    (job(900), HISTORY, 100.0),  # its twin ran 1000 s
    (job(900, timeout=950), HISTORY, 50.0),  # the backend ends it by its timeout, sooner
    (job(3000, timeout=3600), [], 600.0),  # no finished job: the timeout is all that says
    (job(0, started=False), [], None),  # scheduling, no history: nothing says (its timeout has not started)
    (job(0, started=False, timeout=60), HISTORY, 1000.0),  # scheduling: as if it started now, no timeout bound
    (job(5000, timeout=None), HISTORY, None),  # far longer than every job, no timeout: nothing says
    (job(3100, timeout=None), HISTORY, 100.0),  # a little longer than every job: a tenth of its twin's duration
    (job(1000, timeout=1000), HISTORY, 0.0),  # due now
])
def test_a_job_ends_by_its_prediction_or_its_timeout_whichever_is_sooner(seen, history, end):
    predicted = predict_end(seen, history, now=10_000.0)
    assert (predicted is None) if end is None else predicted == 10_000.0 + end


def test_due_keeps_the_jobs_predicted_to_end_in_the_window_soonest_first():
    jobs = [job(100, job_id="far"), job(990, job_id="soon", it=2), job(700, job_id="next", it=3),
            job(0, started=False, job_id="new", it=4)]
    assert [j.job_id for j in due(jobs, HISTORY, now=0.0, until=600.0)] == ["soon", "next"]
    assert due(jobs, HISTORY, now=0.0, until=0.0) == []
    assert due(jobs, [], now=0.0, until=600.0) == []  # no history and 1h timeouts: nothing is due


@pytest.mark.parametrize("end, now, until, wake", [
    (500.0, 0.0, 600.0, POLL_MAX_S),  # far: look again within a minute (it may end sooner than predicted)
    (30.0, 0.0, 600.0, 30.0),  # near: at its predicted end
    (0.0, 0.0, 600.0, POLL_MIN_S),  # overdue: not more often than POLL_MIN_S
    (500.0, 590.0, 600.0, 600.0),  # never past until
    (500.0, 600.0, 600.0, None),  # until has passed
])
def test_the_next_look_is_clamped_between_the_polls_and_never_past_until(end, now, until, wake):
    assert next_check(end, now, until) == wake


@pytest.mark.parametrize("durations, floor", [
    ([], POLL_MIN_S), ([1800.0, 2000.0], POLL_MIN_S), ([30.0], 3.0), ([2.0, 3.0], 1.0)])
def test_short_jobs_are_looked_at_more_often_never_more_than_once_a_second(durations, floor):
    assert poll_floor([Done(A10G, LR1, d) for d in durations]) == floor
    assert next_check(0.0, 0.0, 600.0, floor=floor) == floor


@pytest.mark.parametrize("text, seconds", [("10m", 600), ("0", 0), ("off", 0), (" 90 ", 90), ("5h", 18000),
                                           ("5h1s", None), ("soon", None), ("-1m", None)])
def test_a_linger_is_a_duration_up_to_5h_or_off(text, seconds):
    if seconds is None:
        with pytest.raises(ValueError):
            parse_linger(text)
    else:
        assert parse_linger(text) == seconds


# -- the loop, on a fake clock over the in-memory backend --------------------------------------------------------

PROGRAM = program_text(with_(ENVELOPE, max_jobs=4, allowed_flavors=["a10g-large"], max_timeout="1h", max_walltime="10h"),
                       with_(CAMPAIGN, flavor="a10g-large", timeout="1h", target=2.0, patience=10))


class Counting:
    """The backend's inspect and a sleep, counted (the loop's only ways to spend time and requests)."""

    def __init__(self, backend, world):
        self.backend, self.world, self.inspected, self.slept = backend, world, [], []

    def inspect(self, job_id: str) -> JobView:
        self.inspected.append(job_id)
        return self.backend.inspect(job_id=job_id)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.world.sleep(seconds)


@pytest.fixture
def campaign(tmp_path):
    (tmp_path / "program.md").write_text(PROGRAM)
    (tmp_path / "train.py").write_text("print('eval_accuracy=0.5')\n")
    clock = FakeClock()
    backend = InMemoryBackend(clock=clock.seconds)
    world = JobWorld(backend, clock, duration=lambda n: 600.0)
    step = make_step(tmp_path, backend, clock)
    return step, world, Counting(backend, world), clock


def rows(step) -> list[dict]:
    return [json.loads(line) for line in (step.root / "runs" / "ledger.jsonl").read_text().splitlines()]


def linger_for(clock, counting, seconds: float) -> Linger:
    return Linger(until=clock.seconds() + seconds, clock=clock.seconds, sleep=counting.sleep)


def test_a_tick_with_no_job_due_asks_nothing_and_sleeps_not(campaign):
    step, world, counting, clock = campaign
    first = step.run()  # iter 1 submitted; nothing has finished, and a 1h timeout is far
    assert first.submitted == 1
    assert follow(first, run_step=step.run, inspect=counting.inspect, linger=linger_for(clock, counting, 600)) == []
    assert counting.inspected == [] and counting.slept == []


def test_a_job_due_in_the_window_is_followed_evaluated_and_the_next_submitted_in_the_same_tick(campaign):
    step, world, counting, clock = campaign
    step.run()
    world.sleep(900)  # iter 1 ran 600 s: that is the history
    step.run()  # iter 1 completed, iter 2 submitted
    world.sleep(500)  # iter 2 has run 500 s of the 600 its predecessor took
    first = step.run()
    assert first.submitted == 0
    said: list[str] = []
    start = clock.seconds()
    later = follow(first, run_step=step.run, inspect=counting.inspect, linger=linger_for(clock, counting, 600), say=said.append)
    assert [r.submitted for r in later] == [1]  # iter 2 evaluated, iter 3 submitted, in this tick
    assert clock.seconds() - start == pytest.approx(100, abs=POLL_MIN_S)  # woke when iter 2 ended, not later
    assert {r["iter"]: r["status"] for r in rows(step) if "iter" in r}[2] == "completed"
    assert any(r.get("iter") == 3 and r.get("status") == "submitted" for r in rows(step))
    assert said[0].startswith("linger: following iter 2 (mem-0002) in about 1m40s")
    assert "ended after" in said[1]
    # iter 3 just started and is 10 minutes from its end: the linger ends there, with no more requests
    assert len(counting.inspected) <= 10 / 1 and sum(counting.slept) <= 600


def test_a_job_that_runs_longer_than_predicted_is_let_go_never_past_until(campaign):
    step, world, counting, clock = campaign
    world.duration = lambda n: 600.0 if n == 0 else 3000.0  # iter 2 runs five times longer than iter 1
    step.run()
    world.sleep(900)
    step.run()
    world.sleep(500)
    first = step.run()
    start = clock.seconds()
    later = follow(first, run_step=step.run, inspect=counting.inspect, linger=linger_for(clock, counting, 600))
    assert later == []
    # followed while it could still end by the prediction, let go once it ran past every finished job
    assert 0 < clock.seconds() - start <= 600 and counting.inspected


def test_until_bounds_the_linger_even_when_the_job_stays_due(campaign):
    step, world, counting, clock = campaign
    world.duration = lambda n: 600.0 if n == 0 else 1500.0
    step.run()
    world.sleep(900)
    step.run()
    world.sleep(3000)  # iter 2 has run 3000 s of a 1h timeout... (it ended at 1500 s: the next step evaluates it)
    first = step.run()
    assert first.submitted == 1
    world.duration = lambda n: 4000.0  # iter 3 runs past its 1h timeout (a backend that does not end it)
    world.sleep(3500)  # 100 s before its timeout: due by the timeout bound, and overdue after it
    first = step.run()
    start = clock.seconds()
    later = follow(first, run_step=step.run, inspect=counting.inspect, linger=linger_for(clock, counting, 200))
    assert later == [] and clock.seconds() - start == 200  # it never woke past until, and started no step


def test_a_reason_to_stop_or_a_backend_error_ends_the_linger_with_no_step(campaign):
    step, world, counting, clock = campaign
    step.run()
    world.sleep(900)
    step.run()
    world.sleep(550)
    first = step.run()
    said: list[str] = []
    moved = "the default branch moved outside runs/"
    later = follow(first, run_step=step.run, inspect=counting.inspect, linger=linger_for(clock, counting, 600),
                   may_go_on=lambda: moved, say=said.append)
    assert later == [] and said[-1] == f"linger: stopped ({moved}); the next tick goes on"
    world.sleep(900)
    step.run()
    world.sleep(550)
    first = step.run()

    def broken(job_id: str) -> JobView:
        raise TransientError("HF answered 503")

    said.clear()
    assert follow(first, run_step=step.run, inspect=broken, linger=linger_for(clock, counting, 600), say=said.append) == []
    assert said[-1] == "linger: stopped, the backend could not be asked (HF answered 503)"


def test_every_step_after_a_linger_publishes_before_it_submits(campaign):
    step, world, counting, clock = campaign
    published: list[str] = []
    step.publish = published.append
    step.run()
    world.sleep(900)
    step.run()
    world.sleep(550)
    first = step.run()
    published.clear()
    [later] = follow(first, run_step=step.run, inspect=counting.inspect, linger=linger_for(clock, counting, 600))
    assert later.submitted == 1 and later.submitted_ids == ["mem-0003"]
    assert len(published) == 1 and published[0].startswith("mlr: record before submitting 1 job(s)")
    assert "iter 2 completed" in published[0]


def test_a_job_the_step_submitted_is_predicted_from_its_twins_and_followed_from_its_start(tmp_path):
    # Short jobs: the next one is due before the linger ends, so one tick runs several in a row.
    (tmp_path / "program.md").write_text(PROGRAM)
    (tmp_path / "train.py").write_text("print('eval_accuracy=0.5')\n")
    clock = FakeClock()
    backend = InMemoryBackend(clock=clock.seconds)
    world = JobWorld(backend, clock, duration=lambda n: 120.0, queue_s=30.0)
    counting = Counting(backend, world)
    step = make_step(tmp_path, backend, clock)
    step.run()
    world.sleep(900)
    first = step.run()  # iter 1 (120 s) completed, iter 2 submitted
    later = follow(first, run_step=step.run, inspect=counting.inspect, linger=linger_for(clock, counting, 600))
    assert [r.submitted for r in later] == [1, 1, 0]  # iters 3 and 4, then max_jobs: the last job is evaluated
    assert later[-1].state.in_flight == [] and len(backend.jobs) == 4
    assert {j.stage for j in backend.jobs.values()} == {JobStage.COMPLETED}
