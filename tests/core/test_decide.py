"""The pure decision: reconcile observations into rows, decide stops, and gate proposals."""

from __future__ import annotations

import pytest

from mlr_action.core.jobs import JobStage, JobView, labels_for
from mlr_action.core.budget import usage
from mlr_action.core.admission import admit, proposal_problems, readmit_problems
from mlr_action.core.decide import plan_next, resumption
from mlr_action.core.reconcile import reconcile
from mlr_action.core.ledger import EventRow, ExperimentRow, experiment_row
from mlr_action.core.program import parse_program
from mlr_action.core.proposal import Proposal
from mlr_action.core.state import fold
from programs import CAMPAIGN, ENVELOPE, program_text, with_

TS = "2026-01-01T00:00:00+00:00"
PROGRAM = parse_program(program_text())
CONFIG = {"lr": 1e-4, "batch_size": 16, "scheduler": "cosine"}


def started():
    return EventRow(event="started", ts=TS, campaign="c", program=PROGRAM.fingerprint)


def exp(iter, status="submitted", job_id=None, config=None, **kw) -> ExperimentRow:
    job_id = job_id if job_id is not None else (f"j{iter}" if status != "proposed" else None)
    return experiment_row(iter=iter, ts=TS, status=status, config=config or dict(CONFIG, batch_size=iter),
                          timeout_s=3600, flavor="a10g-large", job_id=job_id, **kw)


def done(iter, metric, decision, best, status="completed"):
    return exp(iter, status, metric=metric, decision=decision, best_so_far=best, duration_s=60)


def view(job_id, stage, iter=None, duration_s=60.0, message=None):
    labels = labels_for("c", iter) if iter is not None else {}
    return JobView(job_id=job_id, stage=stage, labels=labels, duration_s=duration_s, message=message)


def run_reconcile(rows, views, logs=None, program=PROGRAM):
    state = fold([started(), *rows])
    listed = [v for v in views if v.iter is not None]
    observed = {v.job_id: v for v in views}
    return reconcile(program, state, observed=observed, listed=listed, logs=logs or {}, ts=TS)


@pytest.mark.parametrize(
    "stage, logs, status, decision, metric, error_part",
    [
        (JobStage.COMPLETED, "step 1\neval_accuracy=0.91\n", "completed", "keep", 0.91, None),
        (JobStage.COMPLETED, "eval_accuracy=0.5\neval_accuracy: 0.93\n", "completed", "keep", 0.93, None),
        (JobStage.COMPLETED, "all done\n", "error", "discard", None, "printed no `eval_accuracy=<number>` line"),
        (JobStage.COMPLETED, "eval_accuracy=nan\n", "error", "discard", None, "NaN"),
        (JobStage.ERROR, "Traceback\nCUDA out of memory\n", "error", "discard", None, "CUDA out of memory"),
        (JobStage.CANCELED, "", "canceled", "discard", None, "canceled"),
        (JobStage.DELETED, "", "error", "discard", None, "no longer exists"),
    ],
)
def test_finished_jobs_are_evaluated(stage, logs, status, decision, metric, error_part):
    [row] = run_reconcile([exp(1)], [view("j1", stage)], {"j1": logs})
    assert (row.status, row.decision, row.metric) == (status, decision, metric)
    assert row.duration_s == 60 and row.config == exp(1).config and row.job_id == "j1"
    if error_part:
        assert error_part in row.error


def test_keep_only_when_strictly_better_than_the_running_best_in_iter_order():
    rows = [done(1, 0.8, "keep", 0.8), exp(2), exp(3), exp(4)]
    views = [view("j2", JobStage.COMPLETED), view("j3", JobStage.COMPLETED), view("j4", JobStage.COMPLETED)]
    logs = {"j2": "eval_accuracy=0.85", "j3": "eval_accuracy=0.85", "j4": "eval_accuracy=0.7"}
    out = run_reconcile(rows, views, logs)
    assert [(r.iter, r.decision, r.best_so_far) for r in out] == [(2, "keep", 0.85), (3, "discard", 0.85), (4, "discard", 0.85)]


def test_minimize_keeps_lower():
    program = parse_program(program_text(campaign=with_(CAMPAIGN, metric="loss", direction="minimize", target=0.1)))
    out = run_reconcile([done(1, 0.5, "keep", 0.5), exp(2)], [view("j2", JobStage.COMPLETED)], {"j2": "loss=0.4"}, program)
    assert out[0].decision == "keep"


def test_stage_change_recorded_once_and_unchanged_stage_writes_nothing():
    assert run_reconcile([exp(1)], [view("j1", JobStage.SCHEDULING)]) == []
    [row] = run_reconcile([exp(1)], [view("j1", JobStage.RUNNING)])
    assert row.status == "running"
    assert run_reconcile([exp(1, "running")], [view("j1", JobStage.RUNNING)]) == []


def test_job_missing_from_ledger_is_adopted_onto_its_intent():
    intent = exp(1, "proposed")
    [row] = run_reconcile([intent], [view("job-x", JobStage.RUNNING, iter=1)])
    assert (row.iter, row.job_id, row.status, row.config) == (1, "job-x", "running", intent.config)


def test_adopted_job_that_already_finished_is_evaluated_in_the_same_step():
    out = run_reconcile([exp(1, "proposed")], [view("job-x", JobStage.COMPLETED, iter=1)], {"job-x": "eval_accuracy=0.9"})
    assert [(r.status, r.job_id) for r in out] == [("submitted", "job-x"), ("completed", "job-x")]


def test_job_with_no_row_at_all_is_recorded_so_the_budget_counts_it():
    [row] = run_reconcile([], [view("ghost", JobStage.RUNNING, iter=7)])
    assert row.iter == 7 and row.job_id == "ghost" and "adopted" in row.hypothesis
    assert (row.timeout_s, row.flavor) == (PROGRAM.envelope.max_timeout, "a10g-large")


def test_second_job_for_an_iter_is_escalated_once():
    rows = [exp(1)]
    out = run_reconcile(rows, [view("j1", JobStage.RUNNING, iter=1), view("dup", JobStage.RUNNING, iter=1)])
    events = [r for r in out if isinstance(r, EventRow)]
    assert len(events) == 1 and events[0].reason == "duplicate-job"
    again = run_reconcile([*rows, *out], [view("j1", JobStage.RUNNING, iter=1), view("dup", JobStage.RUNNING, iter=1)])
    assert [r for r in again if isinstance(r, EventRow)] == []


def plan(rows, program=PROGRAM):
    state = fold([started(), *rows])
    return plan_next(program, state, used=usage(state))


@pytest.mark.parametrize(
    "rows, stop",
    [
        ([done(1, 0.96, "keep", 0.96)], "target"),
        ([done(1, 0.5, "keep", 0.5), done(2, 0.4, "discard", 0.5), done(3, 0.4, "discard", 0.5), done(4, 0.3, "discard", 0.5)], "patience"),
        ([done(1, 0.5, "keep", 0.5), done(2, 0.4, "discard", 0.5), done(3, 0.6, "keep", 0.6), done(4, 0.3, "discard", 0.6)], None),
        ([exp(i, "error", decision="discard", duration_s=5, error="boom") for i in (1, 2, 3)], "errors"),
        ([done(i, 0.1 * i, "keep", 0.1 * i) for i in range(1, 8)], "budget"),  # 7h of 8h with 10% reserve: no room for 1h
    ],
)
def test_stop_conditions(rows, stop):
    if stop == "budget":
        rows = [r.model_copy(update={"duration_s": 3600}) for r in rows]
    p = plan(rows)
    assert p.stop == stop, p
    if stop is None:
        assert p.propose == 1


def test_max_jobs_reached_stops_with_budget():
    program = parse_program(program_text(with_(ENVELOPE, max_jobs=2)))
    assert plan([done(1, 0.5, "keep", 0.5), done(2, 0.6, "keep", 0.6)], program).stop == "budget"


def test_stop_waits_for_jobs_in_flight():
    p = plan([done(1, 0.96, "keep", 0.96), exp(2, "running")])
    assert p.stop is None and p.propose == 0 and "waiting for 1 job" in p.waiting


def test_one_job_at_a_time_by_default_and_max_parallel_fills_slots():
    assert plan([exp(1, "running")]).propose == 0
    program = parse_program(program_text(with_(ENVELOPE, max_parallel=3)))
    assert plan([exp(1, "running")], program).propose == 2


@pytest.mark.parametrize("finished, slots", [(0, 3), (4, 2), (5, 1)])
def test_free_slots_are_filled_only_with_jobs_the_budget_has_room_for(finished, slots):
    """8h with 10% kept back: 7.2h. A job is charged its 1h timeout; a slot the budget cannot pay for is not asked for."""
    program = parse_program(program_text(with_(ENVELOPE, max_parallel=4)))
    rows = [done(i, 0.1 * i, "keep", 0.1 * i).model_copy(update={"duration_s": 3600}) for i in range(1, finished + 1)]
    p = plan([*rows, exp(finished + 1, "running")], program)
    assert p.stop is None and p.propose == slots, p


def test_intent_without_a_job_is_resubmitted_before_anything_new():
    p = plan([exp(1, "proposed")])
    assert [r.iter for r in p.resubmit] == [1] and p.propose == 0


def test_paused_and_stopped_do_nothing():
    assert plan([EventRow(event="paused", ts=TS)]).propose == 0
    assert plan([EventRow(event="paused", ts=TS), EventRow(event="resumed", ts=TS)]).propose == 1
    assert plan([EventRow(event="stopped", ts=TS, reason="target")]).propose == 0


def proposal(**config):
    return Proposal(config={**CONFIG, **config})


@pytest.mark.parametrize(
    "prop, expected",
    [
        (proposal(lr=0.5), "lr=0.5 is outside the search space"),
        (proposal(batch_size=8.5), "batch_size=8.5 is outside the search space"),
        (proposal(scheduler="step"), "scheduler='step' is outside the search space"),
        (proposal(dataset="other/data"), "dataset is not a param in program.md"),
        (Proposal(config={"lr": 1e-4}), "batch_size is missing from the config"),
        (Proposal(config=CONFIG, flavor="h200x8"), "flavor h200x8 is not in allowed_flavors"),
        (Proposal(config=CONFIG, timeout_s=3 * 3600), "timeout 3h is over max_timeout 2h"),
    ],
)
def test_proposals_outside_the_envelope_or_space_are_refused(prop, expected):
    state = fold([started()])
    problems = proposal_problems(PROGRAM, state, prop, used=usage(state), prices=None)
    assert any(expected in p for p in problems), problems


def test_identical_failing_config_is_never_resubmitted():
    failed = exp(1, "error", config=CONFIG, error="OOM")
    state = fold([started(), failed])
    problems = proposal_problems(PROGRAM, state, Proposal(config=CONFIG), used=usage(state), prices=None)
    assert any("already failed" in p for p in problems)


def test_admit_returns_the_intent_with_defaults_and_output_repo():
    state = fold([started()])
    row = admit(PROGRAM, state, Proposal(config=CONFIG, hypothesis="h"), iteration=1, used=usage(state), prices=None, ts=TS)
    assert isinstance(row, ExperimentRow)
    assert (row.status, row.flavor, row.timeout, row.output_repo) == ("proposed", "a10g-large", "1h", "me/sweep-c-001")


def test_readmit_does_not_charge_the_intent_twice():
    program = parse_program(program_text(with_(ENVELOPE, max_jobs=1)))
    intent = exp(1, "proposed", config=CONFIG)
    state = fold([started(), intent])
    assert readmit_problems(program, state, intent, used=usage(state), prices=None) == []


def test_an_intent_with_no_timeout_is_never_resubmitted_search_or_final():
    # A ledger row is data: an intent whose timeout reads as 0 would be charged nothing and run with its row's timeout.
    program = parse_program(program_text(campaign=with_(CAMPAIGN, final={"repeats": 2, "seed_param": "seed"})))
    for extra in ({}, {"final_of": 1, "repeat": 1}):
        intent = ExperimentRow(iter=2, ts=TS, status="proposed", config=CONFIG, flavor="a10g-large", timeout_s=0,
                               **extra)
        state = fold([started(), intent])
        problems = readmit_problems(program, state, intent, used=usage(state), prices=None)
        assert any("timeout" in p and "not a positive duration" in p for p in problems), (extra, problems)


def test_a_final_repeat_is_readmitted_from_the_reserve_and_never_as_a_failed_config():
    program = parse_program(program_text(with_(ENVELOPE, max_jobs=4, max_walltime="4h"),
                                         with_(CAMPAIGN, final={"repeats": 2, "seed_param": "seed"})))
    failed = exp(1, "error", config=CONFIG, duration_s=3600)  # the config failed once in the search: 1h spent
    kept = done(2, 0.9, "keep", 0.9)
    repeat = exp(3, "proposed", config=CONFIG, final_of=2, repeat=1)
    state = fold([started(), failed, kept, repeat])
    # 1h + 1m + this 1h of 4h: inside the envelope, though not inside the search's 90% with 2 jobs kept back
    assert readmit_problems(program, state, repeat, used=usage(state), prices=None) == []
    search = exp(3, "proposed", config=CONFIG)
    searched = readmit_problems(program, fold([started(), failed, kept, search]), search, used=usage(state), prices=None)
    assert any("already failed" in p for p in searched) and any("max_jobs=4" in p for p in searched)
    outside = repeat.model_copy(update={"repeat": 3})
    assert any("repeat 3 is not one of the final block's 2" in p
               for p in readmit_problems(program, fold([started(), failed, kept, outside]), outside,
                                         used=usage(state), prices=None))


def test_changed_program_after_a_stop_resumes_but_a_human_stop_does_not():
    stopped = EventRow(event="stopped", ts=TS, reason="budget", program=PROGRAM.fingerprint)
    raised = parse_program(program_text(with_(ENVELOPE, max_jobs=50)))
    assert resumption(PROGRAM, fold([started(), stopped]), ts=TS) is None
    event = resumption(raised, fold([started(), stopped]), ts=TS)
    assert event is not None and event.event == "resumed"
    assert fold([started(), stopped, event]).stopped is None
    human = EventRow(event="stopped", ts=TS, reason="human", program=PROGRAM.fingerprint)
    assert resumption(raised, fold([started(), human]), ts=TS) is None


def test_a_stop_recorded_by_an_older_release_does_not_resume_on_an_upgrade():
    # What the stopped row of a campaign carries for program_text(): under the code before issues 11 and 15
    # (236b7bb), and under the code that dumped every key with its default (a05383a): neither resumes.
    for recorded in ("3f12381e55e3", "754fcd6249b4"):
        stopped = EventRow(event="stopped", ts=TS, reason="target", program=recorded)
        assert resumption(PROGRAM, fold([started(), stopped]), ts=TS) is None, recorded
    other = parse_program(program_text(campaign=with_(CAMPAIGN, min_delta=0.01)))
    stopped = EventRow(event="stopped", ts=TS, reason="target", program="754fcd6249b4")
    assert resumption(other, fold([started(), stopped]), ts=TS) is not None


@pytest.mark.parametrize("duration_s, prices, cost", [
    (600.0, None, 0.25),  # 10 minutes of a10g-large at the built-in $1.50/h
    (601.0, None, 0.275),  # HF bills every started minute
    (1.5, None, 0.025),
    (0.0, None, 0.0),
    (600.0, {"a10g-large": 3.0}, 0.5),  # live prices win
])
def test_finished_jobs_cost_whole_minutes_at_the_price_given(duration_s, prices, cost):
    state = fold([started(), exp(1)])
    [row] = reconcile(PROGRAM, state, observed={"j1": view("j1", JobStage.COMPLETED, duration_s=duration_s)},
                      listed=[], logs={"j1": "eval_accuracy=0.5\n"}, ts=TS, prices=prices)
    assert row.cost_usd == pytest.approx(cost) and row.duration_s == duration_s
