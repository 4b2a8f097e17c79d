"""The final evaluation (issue 15): after the stop, the best config runs again from the reserve, never past the
envelope, its rows apart from the search; and min_delta, the noise-aware keep."""

from __future__ import annotations

import json

import pytest

from mlr_action.core import final
from mlr_action.core.jobs import JobStage, TransientError
from mlr_action.core.budget import usage
from mlr_action.core.ledger import EventRow, ExperimentRow, append_rows, read_ledger
from mlr_action.core.flavors import price_per_hour
from mlr_action.core.program import ProgramError, parse_program
from mlr_action.core.program_paths import output_repo_for
from mlr_action.proposers.search import SearchProposer
from mlr_action.core.state import config_key, fold
from mlr_action.render.views import campaign_status
from programs import CAMPAIGN, ENVELOPE, program_text, with_
from simulate import finish_jobs, make_step, quadratic_accuracy, run_campaign
from test_campaign import make_repo

FINAL = {"repeats": 3, "seed_param": "seed", "fixed": {"split": "test"}}
OPEN = with_(CAMPAIGN, target=None, patience=None)


def state_of(root):
    return fold(read_ledger(root / "runs" / "ledger.jsonl"))


def args_of(job) -> dict:
    return dict(a[2:].split("=", 1) for a in job.spec.args)


def noisy(config: dict) -> float:
    """The search's number, and a final repeat a little lower for each seed (a lucky search run)."""
    return round(quadratic_accuracy(config) - 0.004 * int(config.get("seed", 0)), 4)


# --- program.md --------------------------------------------------------------------------


@pytest.mark.parametrize(("block", "fragment"), [
    ({"repeats": 3}, "final: repeats is 3: each repeat needs its own seed, so name the argument that carries it in seed_param"),
    ({"repetes": 2}, "final.repetes: unknown key (did you mean repeats?)"),
    ({"repeats": 0, "seed_param": "seed"}, "final.repeats: input should be greater than or equal to 1"),
    ({"seeds": [1, 1], "seed_param": "seed"}, "final: seeds lists a seed twice"),
    ({"repeats": 3, "seeds": [1, 2], "seed_param": "seed"}, "final: repeats is 3 but seeds lists 2"),
    ({"seeds": [1, 2]}, "final: seeds needs seed_param"),
    ({"repeats": 2, "seed_param": "lr"}, "final.seed_param: lr is searched (in params)"),
    ({"repeats": 1, "fixed": {"batch_size": 8}}, "final.fixed: batch_size is searched (in params)"),
    ({"repeats": 2, "seed_param": "seed", "fixed": {"seed": 3}}, "final: seed is both seed_param and in fixed"),
    ({"repeats": 1, "flavor": "a100-large"}, "final.flavor: a100-large is not in allowed_flavors"),
    ({"repeats": 1, "timeout": "3h"}, "final.timeout: 3h is over max_timeout 2h"),
    ({"repeats": 12, "seed_param": "seed"}, "final.repeats: 12 leaves no job of max_jobs 12 for the search"),
    ({"repeats": 1, "metric": "test accuracy"}, "final.metric: string should match pattern"),
])
def test_a_bad_final_block_is_named_with_its_fix(block, fragment):
    with pytest.raises(ProgramError) as exc:
        parse_program(program_text(None, with_(CAMPAIGN, final=block)))
    assert any(fragment in p for p in exc.value.problems), exc.value.problems


def test_min_delta_must_be_a_finite_non_negative_number():
    for bad, fragment in ((-0.1, "greater than or equal to 0"), ("small", "valid number")):
        with pytest.raises(ProgramError) as exc:
            parse_program(program_text(None, with_(CAMPAIGN, min_delta=bad)))
        assert any(p.startswith("min_delta") and fragment in p for p in exc.value.problems), exc.value.problems


def test_the_seeds_are_the_ones_after_the_searchs_own_unless_listed():
    def seeds(block, fixed=None):
        return final.seeds(parse_program(program_text(None, with_(CAMPAIGN, final=block, fixed=fixed or {"epochs": 3}))))

    assert seeds(FINAL) == [1, 2, 3]
    assert seeds(FINAL, {"epochs": 3, "seed": 42}) == [43, 44, 45]
    assert seeds({"seeds": [7, 11], "seed_param": "seed"}) == [7, 11]
    assert seeds({"repeats": 1}) == []


# --- min_delta: the noise-aware keep -----------------------------------------------------------


@pytest.mark.parametrize(("min_delta", "decisions", "stop"), [
    (0.0, ["keep", "keep", "keep", "keep", "discard"], None),
    (0.01, ["keep", "discard", "discard", "keep", "discard"], None),
    (0.02, ["keep", "discard", "discard", "discard"], "patience"),
])
def test_only_a_result_that_beats_the_best_by_more_than_min_delta_is_kept_and_resets_patience(tmp_path, min_delta,
                                                                                              decisions, stop):
    values = iter([0.90, 0.905, 0.909, 0.915, 0.915, 0.95])
    root = make_repo(tmp_path, campaign=with_(OPEN, patience=3, min_delta=min_delta))
    step = make_step(root)
    for _ in range(len(decisions)):
        step.run()
        step.clock.advance(900)
        finish_jobs(step.backend, metric=lambda config: next(values))
    step.run()
    state = state_of(root)
    assert [e.decision for e in state.experiments.values()][: len(decisions)] == decisions
    assert (state.stopped.reason if state.stopped else None) == stop
    kept = [e.metric for e in state.experiments.values() if e.decision == "keep"]
    assert state.best.metric == kept[-1]


# --- a whole campaign with a final block -------------------------------------------------------------


def test_a_campaign_stops_runs_its_repeats_from_the_reserve_and_writes_mean_and_spread(tmp_path, capsys):
    from mlr_action.commands.cli import main

    root = make_repo(tmp_path, with_(ENVELOPE, max_parallel=2), with_(CAMPAIGN, target=0.955, final=FINAL))
    step = make_step(root)
    results = run_campaign(step, metric=noisy)
    state = state_of(root)
    assert state.stopped.reason == "target" and results[-1].finished
    best = state.best
    repeats = state.repeats_of(best.iter)
    assert sorted(repeats) == [1, 2, 3] and all(r.status == "completed" for r in repeats.values())
    assert state.final_event.reason == "finished" and state.final_event.final_of == best.iter
    # what each repeat ran: the best config, fixed, the final block's fixed, its own seed; labelled as a repeat
    jobs = {int(j.labels["mlr-iter"]): j for j in step.backend.jobs.values()}
    for repeat, row in repeats.items():
        job = jobs[row.iter]
        assert args_of(job) == {**{k: str(v) for k, v in best.config.items()}, "epochs": "3", "split": "test",
                                "seed": str(repeat)}
        assert job.labels["mlr-final-of"] == str(best.iter) and job.labels["mlr-repeat"] == str(repeat)
        assert row.iter > max(state.experiments) and row.final_seed == repeat and row.decision is None
    # rows apart: the search is what it was
    assert list(state.experiments) == [e for e in state.experiments] and best.iter in state.experiments
    assert all(e.final_of is None for e in state.experiments.values())
    values = [noisy({**best.config, "seed": k}) for k in (1, 2, 3)]
    mean = sum(values) / 3
    summary = (root / "runs" / "summary.md").read_text()
    report = (root / "runs" / "stop-report.md").read_text()
    assert "# Campaign `" in summary and "stopped · final evaluation done" in summary
    for text in (summary, report):
        assert "Final evaluation" in text and "**Finished:** 3 of 3 repeats ran, 3 with a result." in text
        assert f"{mean:.4f}".rstrip("0") in text and "± 0.004" in text and "mean ± sd over 3 repeats" in text
        assert "**Cost of the final evaluation:** 3 job(s), 30m of walltime, $0.75" in text
        assert "`--seed` set to 1, 2, 3 and `--split=test`" in text
        assert "**Target 0.955: not confirmed.**" in text and "(0 of 3 repeats reached it)" in text
    assert "### Final evaluation" in report and "## Final evaluation" in summary
    assert main(["status", "--repo", str(root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "stopped" and status["phase"] == "finished" and status["jobs_used"] == len(jobs)
    assert status["final"]["completed"] == 3 and status["final"]["outcome"] == "finished"
    assert status["final"]["mean"] == pytest.approx(mean) and status["final"]["confirmed"] is False
    assert status["experiments"] == len(state.experiments) and status["in_flight"] == 0


def test_the_target_is_confirmed_when_the_repeats_mean_reaches_it(tmp_path):
    root = make_repo(tmp_path, campaign=with_(CAMPAIGN, target=0.95, final={"repeats": 2, "seed_param": "seed"}))
    run_campaign(make_step(root))
    report = (root / "runs" / "stop-report.md").read_text()
    assert "**Target 0.95: confirmed** by the final evaluation" in report and "(2 of 2 repeats reached it)" in report


def test_the_stop_report_says_while_the_final_evaluation_runs_and_the_step_waits_for_it(tmp_path):
    root = make_repo(tmp_path, campaign=with_(CAMPAIGN, target=0.9, final={"repeats": 2, "seed_param": "seed"}))
    step = make_step(root)
    step.run()
    step.clock.advance(900)
    finish_jobs(step.backend)
    result = step.run()  # the stop, and the first repeat in the same step (max_parallel 1)
    assert result.stopped and not result.finished
    assert any("final evaluation of iter 1, repeat 1" in e for e in result.events), result.events
    state = state_of(root)
    assert final.phase(step_program(root), state) == final.FINAL and len(state.in_flight) == 1
    report = (root / "runs" / "stop-report.md").read_text()
    assert "**Running:** 0 of 2 repeats finished, 1 in flight." in report
    assert "still running, will say if it holds" in report
    assert "stopped · final evaluation running" in (root / "runs" / "summary.md").read_text()


def step_program(root):
    from mlr_action.core.program import load_program

    return load_program(root / "program.md")


def test_without_a_final_block_the_stop_is_the_end_as_before(tmp_path):
    root = make_repo(tmp_path, campaign=with_(CAMPAIGN, target=0.95))
    step = make_step(root)
    results = run_campaign(step)
    state = state_of(root)
    assert results[-1].stopped and results[-1].finished and not state.finals and state.final_event is None
    assert len(step.backend.jobs) == len(state.experiments)
    assert all("mlr-final-of" not in j.labels for j in step.backend.jobs.values())
    for name in ("summary.md", "stop-report.md"):
        text = (root / "runs" / name).read_text()
        assert "Final evaluation" not in text and "final evaluation running" not in text and "final `" not in text
    status = campaign_status(root, root / "program.md")
    assert status["phase"] == "finished" and status["final"] is None
    assert step.run().finished and len(step.backend.jobs) == len(state.experiments)  # nothing more happens


def test_the_search_keeps_the_repeats_out_of_max_jobs(tmp_path):
    root = make_repo(tmp_path, with_(ENVELOPE, max_jobs=6), with_(OPEN, final={"repeats": 2, "seed_param": "seed"}))
    step = make_step(root)
    run_campaign(step)
    state = state_of(root)
    assert state.stopped.reason == "budget" and "2 kept for the final evaluation" in state.stopped.detail
    assert len(state.experiments) == 4 and len(state.finals) == 2 and len(step.backend.jobs) == 6


# --- the reserve arithmetic: never past the envelope ---------------------------------------------------


def test_the_final_evaluation_spends_the_reserve_never_past_the_envelope_and_says_what_it_could_not_pay(tmp_path):
    """Every job runs its full hour: the search stops with 1h of its 10% reserve left, which pays one repeat."""
    envelope = with_(ENVELOPE, max_walltime="10h", max_jobs=20, max_cost_usd=100)
    root = make_repo(tmp_path, envelope, with_(OPEN, final=FINAL))
    step = make_step(root)
    run_campaign(step, duration_s=3600)
    state, program = state_of(root), step_program(root)
    assert state.stopped.reason == "budget" and len(state.experiments) == 9
    assert [r.repeat for r in state.finals.values()] == [1]
    used = usage(state)
    assert used.walltime_s == 10 * 3600 == program.envelope.max_walltime  # the reserve spent, to the second
    truth = sum(j.duration_s(step.clock.seconds()) or 0 for j in step.backend.jobs.values())
    assert truth <= program.envelope.max_walltime
    event = state.final_event
    assert event.reason == "unaffordable" and event.missing == 2 and event.would_walltime_s == 7200
    assert event.left_walltime_s == 0 and event.would_cost_usd == pytest.approx(2 * price_per_hour("a10g-large"))
    for text in ((root / "runs" / "summary.md").read_text(), (root / "runs" / "stop-report.md").read_text()):
        assert "**Ended short:**" in text and "the envelope cannot pay for 2 more repeat(s) (1 ran)" in text
        assert "they would need 2 job(s), 2h of walltime and $" in text and "left: 10 job(s), 0s" in text
        assert "1 repeat of 3, no spread" in text


def test_a_repeat_is_planned_only_when_it_fits_with_the_jobs_in_flight_at_their_full_timeout():
    """Pure: two repeats in flight are charged their whole hour, so the third waits for them, then fits."""
    program = parse_program(program_text(with_(ENVELOPE, max_walltime="9h30m", max_parallel=3),
                                         with_(OPEN, final=FINAL)))
    ts = "2026-01-01T00:00:00+00:00"
    rows = [ExperimentRow(iter=i, ts=ts, status="completed", metric=0.5 + i / 100, decision="keep", job_id=f"j{i}",
                          config={"lr": 1e-4, "batch_size": 8 + i, "scheduler": "cosine"}, timeout="1h", timeout_s=3600,
                          flavor="a10g-large", duration_s=3600.0) for i in range(1, 8)]
    rows.append(EventRow(event="stopped", ts=ts, reason="budget"))
    state = fold(rows)
    first = final.plan(program, state, used=usage(state), prices=None, ts=ts)
    assert [r.repeat for r in first.new] == [1, 2]  # 7h + 2 x 1h = 9h; a third would make 10h, over 9h30m
    assert usage(fold(rows + list(first.new))).walltime_s <= program.envelope.max_walltime
    flying = [r.model_copy(update={"status": "running", "job_id": f"f{r.repeat}"}) for r in first.new]
    waiting = final.plan(program, fold(rows + flying), used=usage(fold(rows + flying)), prices=None, ts=ts)
    assert not waiting.new and waiting.done is None and "2 repeat(s) in flight" in waiting.waiting
    done = [r.model_copy(update={"status": "completed", "metric": 0.5, "duration_s": 600.0}) for r in flying]
    later = final.plan(program, fold(rows + done), used=usage(fold(rows + done)), prices=None, ts=ts)
    assert [r.repeat for r in later.new] == [3]


def _stopped_on_the_budget(program, *, walltime_s: float):
    ts = "2026-01-01T00:00:00+00:00"
    best = ExperimentRow(iter=1, ts=ts, status="completed", metric=0.9, decision="keep", job_id="j1", timeout="1h",
                         timeout_s=3600, flavor="a10g-large", duration_s=walltime_s,
                         config={"lr": 1e-4, "batch_size": 8, "scheduler": "cosine"})
    return fold([best, EventRow(event="stopped", ts=ts, reason="budget")])


def test_what_the_repeats_not_run_would_cost_counts_what_hf_reserves_for_starting():
    """HF bills a job while it starts: each repeat needs its timeout plus scheduling_timeout, and the words say so."""
    from dataclasses import replace

    program = parse_program(program_text(with_(ENVELOPE, max_walltime="8h", max_cost_usd=100),
                                         with_(OPEN, final=FINAL, scheduling_timeout="10m")))
    state = _stopped_on_the_budget(program, walltime_s=7 * 3600)
    used = replace(usage(state), starting_s=600.0)  # what the step passes for HF (observe.starting_allowance)
    done = final.plan(program, state, used=used, prices=None, ts="t").done
    assert done.reason == "unaffordable" and done.missing == 3
    assert done.would_walltime_s == 3 * 4200  # 1h each, plus 10m each to start
    assert done.would_cost_usd == pytest.approx(3 * price_per_hour("a10g-large") * 70 / 60)
    assert "3h30m of walltime" in done.detail and "(1h each on a10g-large, + 10m each to start)" in done.detail


@pytest.mark.parametrize("seed", range(40))
def test_the_repeats_planned_never_take_the_envelope_past_its_limits_with_the_starting_reservation(seed):
    """A fuzz of the stop's budget: whatever is used and reserved for starting, the plan fits the whole envelope."""
    import random

    from mlr_action.core.budget import Usage, plus_intents

    r = random.Random(seed)
    program = parse_program(program_text(with_(ENVELOPE, max_walltime="8h", max_cost_usd=20, max_parallel=3),
                                         with_(OPEN, final=FINAL)))
    state, env = _stopped_on_the_budget(program, walltime_s=600.0), program.envelope
    used = Usage(jobs=r.randint(1, 11), walltime_s=r.uniform(0, 8 * 3600), cost_usd=r.uniform(0, 20),
                 starting_s=r.choice([0.0, 600.0, 1800.0]))
    planned = final.plan(program, state, used=used, prices=None, ts="t")
    after = plus_intents(used, planned.new)
    assert after.jobs <= env.max_jobs and after.walltime_s <= env.max_walltime + 1e-6
    assert after.cost_usd <= env.max_cost_usd + 1e-6
    assert planned.new or planned.done is not None


# --- which stops run it -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reason", "runs"), [("target", True), ("patience", True), ("budget", True),
                                              ("exhausted", True), ("human", False), ("errors", False)])
def test_it_runs_after_a_stop_on_the_target_patience_budget_or_exhausted_space_only(reason, runs):
    program = parse_program(program_text(None, with_(CAMPAIGN, final=FINAL)))
    ts = "2026-01-01T00:00:00+00:00"
    kept = ExperimentRow(iter=1, ts=ts, status="completed", metric=0.9, decision="keep", job_id="j1", timeout="1h",
                         config={"lr": 1e-4, "batch_size": 8, "scheduler": "cosine"})
    state = fold([kept, EventRow(event="stopped", ts=ts, reason=reason)])
    assert final.pending(program, state) is runs
    assert (final.not_run_because(program, state) is None) is runs
    nothing = fold([EventRow(event="stopped", ts=ts, reason=reason)])
    assert not final.pending(program, nothing)


def at_the_stop(tmp_path):
    """A campaign whose first result reaches its target: the next step stops it and starts three repeats at once."""
    root = make_repo(tmp_path, with_(ENVELOPE, max_parallel=3), with_(CAMPAIGN, target=0.9, final=FINAL))
    step = make_step(root)
    step.run()
    step.clock.advance(900)
    finish_jobs(step.backend)
    return root, step


def test_a_person_who_stops_during_the_final_evaluation_cancels_its_repeats(tmp_path):
    root, step = at_the_stop(tmp_path)
    step.run()
    assert len(state_of(root).finals) == 3
    append_rows(root / "runs" / "ledger.jsonl", [EventRow(event="stopped", ts="2026-01-01T01:00:00+00:00", reason="human")])
    result = step.run()
    state = state_of(root)
    assert result.finished and state.in_flight == []
    assert [r.status for r in state.finals.values()] == ["canceled"] * 3
    assert ("**Ended early:** a person stopped the campaign (a stop by a person spends nothing more); 0 of 3 repeats "
            "had finished, and the rest were canceled.") in (root / "runs" / "summary.md").read_text()


# --- final rows never count for the search -----------------------------------------------------------------


def test_failed_repeats_count_for_no_error_streak_patience_best_or_proposer_and_a_resumed_search_goes_on(tmp_path):
    campaign = with_(CAMPAIGN, target=0.95, patience=None, final=FINAL)
    root = make_repo(tmp_path, with_(ENVELOPE, max_jobs=30), campaign)
    step = make_step(root)
    run_campaign(step, fail=lambda spec: "RuntimeError: no test split" if "mlr-final-of" in spec.labels else None)
    state = state_of(root)
    assert [r.status for r in state.finals.values()] == ["error"] * 3
    assert state.error_streak() == 0 and state.streak_without_improvement() == 0
    assert state.best.final_of is None and state.best.iter == max(state.experiments)
    finals = {config_key(r.config) for r in state.finals.values()}
    assert finals <= state.tried_configs and not state.failed_configs
    assert SearchProposer().propose(program=step_program(root), state=state, count=1)  # the model is the search's
    assert "no repeat gave a metric" in (root / "runs" / "summary.md").read_text()
    # a more ambitious target resumes the search: new iters after the repeats, none of them retried
    (root / "program.md").write_text(program_text(None, with_(campaign, target=0.99)))
    step.run()
    state = state_of(root)
    assert state.stopped is None and state.final_event is None
    newest = max(state.experiments)
    assert newest == max(state.finals) + 1 and state.experiments[newest].final_of is None


# --- crashes: no repeat runs twice --------------------------------------------------------------------------


def test_a_repeat_whose_rows_were_lost_is_adopted_as_that_repeat_never_run_again(tmp_path):
    root, step = at_the_stop(tmp_path)
    step.backend.fail_next("submit", TransientError("the answer was lost"), after=True)
    assert step.run().exit_code == 1  # the first repeat's job exists, its id was never written
    ledger = root / "runs" / "ledger.jsonl"
    kept = [line for line in ledger.read_text().splitlines() if json.loads(line).get("final_of") is None]
    ledger.write_text("\n".join(kept) + "\n")  # and now its intent is gone too (a push that never landed)
    step.run()
    step.clock.advance(900)
    finish_jobs(step.backend)
    step.run()
    state = state_of(root)
    pairs = [(j.labels.get("mlr-final-of"), j.labels.get("mlr-repeat")) for j in step.backend.jobs.values()
             if "mlr-final-of" in j.labels]
    assert sorted(pairs) == [("1", "1"), ("1", "2"), ("1", "3")], pairs  # each repeat once
    assert sorted(state.repeats_of(1)) == [1, 2, 3] and state.final_event.reason == "finished"
    adopted = [r for r in state.finals.values() if "adopted" in r.hypothesis]
    assert len(adopted) == 1 and adopted[0].repeat == 1 and adopted[0].decision is None
    assert sorted(state.job_rows) == sorted(step.backend.jobs)


def test_a_ledger_that_marks_a_repeat_as_a_search_result_never_makes_it_the_best_on_the_backends_word(tmp_path):
    """cleanup: a repeat's Hub repo is never deleted, nor is it replayed as a search result."""
    from mlr_action.core.cleanup import repos_to_delete

    envelope = with_(ENVELOPE, allow_deletes=True)
    root = make_repo(tmp_path, envelope, with_(CAMPAIGN, target=0.9, final=FINAL))
    step = make_step(root)
    run_campaign(step)
    state, program = state_of(root), step_program(root)
    listed = step.backend.list_jobs(campaign=state.campaign_id)
    logs = {v.job_id: step.backend.logs(job_id=v.job_id) for v in listed}
    forged = [r.model_copy(update={"final_of": None, "repeat": None, "decision": "discard"}) for r in state.finals.values()]
    append_rows(root / "runs" / "ledger.jsonl", forged)
    plan = repos_to_delete(program, state_of(root), listed=listed, logs=logs)
    theirs = {output_repo_for(program.envelope, state.campaign_id, r.iter) for r in state.finals.values()}
    assert len(theirs) == 3 and not theirs & set(plan.delete)
    assert all("the backend lists no job of this campaign" in plan.keep[repo] for repo in theirs)
    assert all(v.stage is JobStage.COMPLETED for v in listed)


def test_the_final_evaluations_rows_are_published_before_its_jobs_are_submitted(tmp_path):
    """Nothing is spent that cannot be recorded: a push that fails before the repeats leaves them unsubmitted."""
    root, step = at_the_stop(tmp_path)
    pushes, failing = [], []

    def publish(message: str) -> None:
        if failing:
            raise TransientError("the push was rejected")
        rows = read_ledger(root / "runs" / "ledger.jsonl")
        pushes.append((message.splitlines()[0], len(rows), len(step.backend.jobs)))

    step.publish = publish
    searched = len(step.backend.jobs)
    failing.append(True)
    result = step.run()  # the stop, the intents of the three repeats, then a push that fails
    assert result.exit_code == 1 and len(step.backend.jobs) == searched
    assert "nothing more is spent" in result.events[-1].lower()
    assert [r.status for r in state_of(root).finals.values()] == ["proposed"] * 3
    failing.clear()
    step.run()  # the push goes through first, then the same three repeats are submitted
    subject, rows, jobs = pushes[-1]
    assert subject.startswith("mlr: record before submitting 3 final evaluation job(s)") and jobs == searched
    assert len(step.backend.jobs) == searched + 3 and [r.status for r in state_of(root).finals.values()] == ["submitted"] * 3
    assert sorted(r.repeat for r in state_of(root).finals.values()) == [1, 2, 3]


def test_when_the_reserve_pays_for_no_repeat_the_writeup_says_so_and_what_they_would_cost(tmp_path):
    envelope = with_(ENVELOPE, max_walltime="10h", max_jobs=20)
    root = make_repo(tmp_path, envelope, with_(OPEN, final={**FINAL, "timeout": "2h"}))
    step = make_step(root)
    run_campaign(step, duration_s=3600)
    state = state_of(root)
    assert not state.finals and state.final_event.reason == "unaffordable" and state.final_event.would_jobs == 3
    assert all("mlr-final-of" not in j.labels for j in step.backend.jobs.values())
    report = (root / "runs" / "stop-report.md").read_text()
    assert "- final `eval_accuracy`: not measured (the envelope could not pay for a repeat)" in report
    assert ("the envelope cannot pay for 3 more repeat(s) (0 ran): they would need 3 job(s), 6h of walltime and "
            f"${3 * 2 * price_per_hour('a10g-large'):.2f} (2h each on a10g-large); left: 11 job(s), 1h") in report
    assert "to be run again 3 times with its config" in report


def test_over_hf_jobs_a_repeat_carries_its_labels_and_is_adopted_from_the_hubs_listing(tmp_path):
    """The same over the loopback HF Jobs API: the labels go to HF and come back, and adoption reads them."""
    pytest.importorskip("huggingface_hub")
    from loopback.hf_server import FakeHubServer
    from simulate import FakeClock
    from test_hf_campaign import TOKEN, TRAIN
    from test_hf_campaign import make_step as hf_step

    root = tmp_path / "repo"
    root.mkdir()
    (root / "train.py").write_text(TRAIN)
    (root / "program.md").write_text(program_text(with_(ENVELOPE, max_jobs=4, max_parallel=2),
                                                  with_(OPEN, final={"repeats": 2, "seed_param": "seed"})))
    clock = FakeClock()
    with FakeHubServer(token=TOKEN, clock=clock.seconds) as hub:
        step = hf_step(root, hub, clock)
        forgot = False
        for _ in range(20):
            result = step.run()
            if result.finished:
                break
            if state_of(root).finals and not forgot:  # the repeats' rows never reach the ledger (a lost push)
                ledger = root / "runs" / "ledger.jsonl"
                lines = [line for line in ledger.read_text().splitlines() if json.loads(line).get("final_of") is None]
                ledger.write_text("\n".join(lines) + "\n")
                forgot = True
            clock.advance(900)
            hub.run_all()
        jobs = hub.jobs_of(state_of(root).campaign_id)
    state = state_of(root)
    assert forgot and result.finished and state.final_event.reason == "finished"
    pairs = sorted((j.labels.get("mlr-final-of"), j.labels.get("mlr-repeat")) for j in jobs if "mlr-final-of" in j.labels)
    assert pairs == [(str(state.best.iter), "1"), (str(state.best.iter), "2")]
    assert sorted(state.repeats_of(state.best.iter)) == [1, 2] and len(jobs) == 4 == len(state.job_rows)
    assert all("adopted" in r.hypothesis and r.metric is not None for r in state.finals.values())
