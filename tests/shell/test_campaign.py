"""Whole campaigns over the in-memory backend: from program.md to a stop, and through crashes."""

from __future__ import annotations

import json

import pytest

from mlr_action.core.jobs import PermanentError, TransientError
from mlr_action.core.ledger import EventRow, read_ledger
from mlr_action.core.state import fold
from mlr_action.render.views import campaign_status
from programs import CAMPAIGN, ENVELOPE, program_text, with_
from simulate import FakeClock, finish_jobs, make_step, run_campaign


def make_repo(tmp_path, envelope=None, campaign=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "train.py").write_text("print('eval_accuracy=0.5')\n")
    (tmp_path / "program.md").write_text(program_text(envelope, campaign))
    return tmp_path


def ledger_state(root):
    return fold(read_ledger(root / "runs" / "ledger.jsonl"))


def test_campaign_runs_to_target_and_writes_ledger_summary_and_report(tmp_path):
    root = make_repo(tmp_path, campaign=with_(CAMPAIGN, target=0.95, patience=20))
    step = make_step(root)
    results = run_campaign(step)
    state = ledger_state(root)
    assert state.stopped is not None and state.stopped.reason == "target"
    assert state.best.metric >= 0.95
    assert (root / "runs" / "summary.md").read_text().count("eval_accuracy") > 1
    assert (root / "runs" / "stop-report.md").exists()
    assert all(r.exit_code == 0 for r in results)
    status = campaign_status(root, root / "program.md")
    assert status["state"] == "stopped" and status["stop_reason"] == "target"
    assert status["jobs_used"] == len(step.backend.jobs) == len(state.experiments)


def test_every_job_is_in_the_ledger_exactly_once_and_one_per_iter(tmp_path):
    root = make_repo(tmp_path, campaign=with_(CAMPAIGN, target=None, patience=None))
    step = make_step(root)
    run_campaign(step)
    state = ledger_state(root)
    assert state.stopped.reason == "budget"
    jobs = step.backend.jobs
    assert sorted(jobs) == sorted(state.job_rows)
    iters = [int(j.labels["mlr-iter"]) for j in jobs.values()]
    assert len(iters) == len(set(iters))
    assert len(jobs) <= ENVELOPE["max_jobs"]


def test_a_campaign_with_parallel_slots_ends_on_its_budget_without_a_false_breach(tmp_path):
    """Near the end of the budget, free slots the budget cannot pay for are not asked for: no escalation tells the
    user to raise an envelope nothing tried to breach."""
    envelope = with_(ENVELOPE, max_parallel=3, max_walltime="5h", max_jobs=12)
    root = make_repo(tmp_path, envelope=envelope, campaign=with_(CAMPAIGN, target=None, patience=None))
    results = run_campaign(make_step(root), duration_s=3600)
    assert ledger_state(root).stopped.reason == "budget"
    assert all(not r.escalated for r in results), [r.events for r in results if r.escalated]
    assert not (root / "runs" / "escalations").exists()


def test_patience_stops_a_campaign_that_does_not_improve(tmp_path):
    root = make_repo(tmp_path, campaign=with_(CAMPAIGN, target=None, patience=2))
    run_campaign(make_step(root), metric=lambda config: 0.5)
    state = ledger_state(root)
    assert state.stopped.reason == "patience"
    assert [e.decision for e in state.experiments.values()] == ["keep", "discard", "discard"]


def test_repeated_errors_stop_as_unrecoverable(tmp_path):
    root = make_repo(tmp_path, campaign=with_(CAMPAIGN, patience=None))
    run_campaign(make_step(root), fail=lambda spec: "RuntimeError: boom")
    state = ledger_state(root)
    assert state.stopped.reason == "errors"
    assert "boom" in state.stopped.detail
    assert len(state.experiments) == 3


def test_stopped_campaign_does_nothing_more(tmp_path):
    root = make_repo(tmp_path)
    step = make_step(root)
    run_campaign(step)
    before = (root / "runs" / "ledger.jsonl").read_text()
    summary = (root / "runs" / "summary.md").read_text()
    for _ in range(3):
        assert step.run().exit_code == 0
    assert (root / "runs" / "ledger.jsonl").read_text() == before
    assert (root / "runs" / "summary.md").read_text() == summary


def test_raising_the_budget_after_a_budget_stop_resumes(tmp_path):
    root = make_repo(tmp_path, with_(ENVELOPE, max_jobs=2), with_(CAMPAIGN, target=None, patience=None))
    step = make_step(root)
    run_campaign(step)
    assert ledger_state(root).stopped.reason == "budget"
    (root / "program.md").write_text(program_text(with_(ENVELOPE, max_jobs=4), with_(CAMPAIGN, target=None, patience=None)))
    run_campaign(step)
    state = ledger_state(root)
    assert state.stopped.reason == "budget" and len(state.experiments) == 4
    assert [e.event for e in state.events].count("resumed") == 1


def test_max_parallel_keeps_several_jobs_in_flight_within_budget(tmp_path):
    root = make_repo(tmp_path, with_(ENVELOPE, max_parallel=3), with_(CAMPAIGN, target=None, patience=None))
    step = make_step(root)
    step.run()
    assert len(step.backend.jobs) == 3
    run_campaign(step)
    state = ledger_state(root)
    assert len({tuple(sorted(e.config.items())) for e in state.experiments.values()}) == len(state.experiments)
    assert len(state.experiments) <= ENVELOPE["max_jobs"]


def test_invalid_program_spends_nothing_and_escalates(tmp_path):
    root = make_repo(tmp_path, with_(ENVELOPE, max_timeout="soon"))
    step = make_step(root)
    result = step.run()
    assert result.exit_code == 2
    assert step.backend.jobs == {}
    assert not (root / "runs" / "ledger.jsonl").exists()
    report = (root / "runs" / "escalations" / "invalid-program.md").read_text()
    assert "max_timeout" in report


def test_unreadable_ledger_spends_nothing(tmp_path):
    root = make_repo(tmp_path)
    (root / "runs").mkdir()
    (root / "runs" / "ledger.jsonl").write_text("garbage\n{\"event\": \"started\", \"ts\": \"x\"}\n")
    step = make_step(root)
    result = step.run()
    assert result.exit_code == 2 and step.backend.jobs == {}
    assert "ledger.jsonl:1" in (root / "runs" / "escalations" / "ledger.md").read_text()


def test_truncated_last_line_is_repaired_and_the_campaign_goes_on(tmp_path):
    root = make_repo(tmp_path)
    step = make_step(root)
    step.run()
    with open(root / "runs" / "ledger.jsonl", "a") as fh:
        fh.write('{"iter": 9, "ts": "20')
    finish_jobs(step.backend)
    assert step.run().exit_code == 0
    assert all(line.endswith("}") for line in (root / "runs" / "ledger.jsonl").read_text().splitlines())


def test_transient_error_exits_1_and_the_next_tick_carries_on(tmp_path):
    root = make_repo(tmp_path)
    step = make_step(root)
    step.backend.fail_next("list_jobs", TransientError("HF Jobs answered 503; try again"))
    result = step.run()
    assert result.exit_code == 1 and "503" in result.events[-1]
    assert step.run().exit_code == 0 and len(step.backend.jobs) == 1


def test_lost_submit_response_is_adopted_not_resubmitted(tmp_path):
    root = make_repo(tmp_path)
    step = make_step(root)
    step.backend.fail_next("submit", TransientError("read timed out"), after=True)
    assert step.run().exit_code == 1
    assert len(step.backend.jobs) == 1
    state = ledger_state(root)
    assert state.experiments[1].status == "proposed" and state.experiments[1].job_id is None
    step.run()
    state = ledger_state(root)
    assert len(step.backend.jobs) == 1
    assert state.experiments[1].job_id == next(iter(step.backend.jobs))


def test_submit_that_never_happened_is_retried_with_the_same_intent(tmp_path):
    root = make_repo(tmp_path)
    step = make_step(root)
    step.backend.fail_next("submit", TransientError("connection refused"))
    assert step.run().exit_code == 1 and step.backend.jobs == {}
    intent = ledger_state(root).experiments[1]
    step.run()
    [job] = step.backend.jobs.values()
    assert ledger_state(root).experiments[1].config == intent.config
    assert job.labels["mlr-iter"] == "1"


def test_permanent_backend_error_escalates_with_the_fix_and_spends_nothing(tmp_path):
    root = make_repo(tmp_path)
    step = make_step(root)
    step.backend.fail_next("submit", PermanentError("HF_TOKEN was refused (401): create a token with the jobs scope"))
    result = step.run()
    assert result.exit_code == 2 and step.backend.jobs == {}
    assert "jobs scope" in (root / "runs" / "escalations" / "unrecoverable-error.md").read_text()


class Crash(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the step catches it."""


BOUNDARIES = [(m, after) for m in ("list_jobs", "inspect", "logs", "submit") for after in (False, True)]


@pytest.mark.parametrize("method, after", BOUNDARIES)
@pytest.mark.parametrize("crash_at_tick", [1, 2, 3])
def test_crash_at_a_backend_boundary_then_continue_matches_the_crash_free_campaign(tmp_path, method, after, crash_at_tick):
    campaign = with_(CAMPAIGN, target=None, patience=None)
    clean = make_repo(tmp_path / "clean", with_(ENVELOPE, max_jobs=4), campaign)
    run_campaign(make_step(clean))

    root = make_repo(tmp_path / "crashy", with_(ENVELOPE, max_jobs=4), campaign)
    clock = FakeClock()
    step = make_step(root, clock=clock)
    for tick in range(1, 60):
        if tick == crash_at_tick:
            step.backend.fail_next(method, Crash(), after=after)
        try:
            result = step.run()
        except Crash:
            result = None
        if result is not None and result.stopped:
            break
        clock.advance(900)
        finish_jobs(step.backend)

    def essence(root):
        rows = [r for r in read_ledger(root / "runs" / "ledger.jsonl") if not isinstance(r, EventRow)]
        final = fold(rows).experiments
        return [(e.iter, e.status, e.config, e.metric, e.decision) for e in final.values()]

    assert essence(root) == essence(clean)
    state = ledger_state(root)
    assert sorted(step.backend.jobs) == sorted(state.job_rows)  # every job created is in the ledger, once
    assert len(step.backend.jobs) <= 4


def test_status_json_has_the_contract_fields(tmp_path, capsys):
    from mlr_action.commands.cli import main

    root = make_repo(tmp_path)
    step = make_step(root)
    step.run()
    assert main(["status", "--repo", str(root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    for key in ("state", "stop_reason", "jobs_used", "jobs_max", "walltime_used_s", "walltime_max_s",
                "cost_used_usd", "best_metric", "best_iter", "in_flight"):
        assert key in status
    assert status["state"] == "running" and status["in_flight"] == 1 and status["jobs_used"] == 1
    assert status["walltime_used_s"] == 3600


def test_status_without_program_is_awaiting(tmp_path, capsys):
    from mlr_action.commands.cli import main

    assert main(["status", "--repo", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "awaiting_program"


def test_the_dry_run_names_the_campaign_as_the_step_does_and_says_its_budget_is_the_ledgers(tmp_path, capsys):
    from mlr_action.commands.cli import main

    # A ledger whose started row names another campaign (a ledger-branch writer, or a renamed folder):
    # the step's id comes from program.md's name or the folder, and the dry run must say the same.
    root = make_repo(tmp_path / "sweep")
    (root / "runs").mkdir()
    (root / "runs" / "ledger.jsonl").write_text(json.dumps({"event": "started", "ts": "t", "campaign": "sweep-fresh"}) + "\n")
    assert main(["status", "--repo", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["campaign"] == "sweep"
    assert main(["step", "--repo", str(root), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("campaign sweep · jobs 0/12")
    assert "budget as the ledger records it; a step also counts what the backend reports, never less" in out[1]
    assert any("the ledger names the campaign 'sweep-fresh'" in line and "'sweep'" in line for line in out), out
    (root / "program.md").write_text(program_text(None, with_(CAMPAIGN, name="digits-mlp")))
    assert main(["step", "--repo", str(root), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("campaign digits-mlp · ")


def test_a_human_stop_cancels_jobs_in_flight_and_records_them(tmp_path):
    root = make_repo(tmp_path, with_(ENVELOPE, max_parallel=2))
    step = make_step(root)
    step.run()
    assert len(step.backend.jobs) == 2
    from mlr_action.core.ledger import append_rows

    append_rows(root / "runs" / "ledger.jsonl", [EventRow(event="stopped", ts="2026-01-01T00:10:00+00:00", reason="human", detail="by @me")])
    step.run()
    state = ledger_state(root)
    assert {j.stage.value for j in step.backend.jobs.values()} == {"CANCELED"}
    assert [e.status for e in state.experiments.values()] == ["canceled", "canceled"]
    assert state.in_flight == []


def test_escalation_file_is_removed_once_the_cause_is_fixed(tmp_path):
    root = make_repo(tmp_path, with_(ENVELOPE, max_timeout="soon"))
    step = make_step(root)
    assert step.run().exit_code == 2
    report = root / "runs" / "escalations" / "invalid-program.md"
    assert report.exists()
    (root / "program.md").write_text(program_text())
    assert step.run().exit_code == 0
    assert not report.exists()
