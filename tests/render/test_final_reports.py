"""The final evaluation as people see it: its own section (summary, stop report, dashboard), the CLI, the schema,
and the noisy example run for real on the local backend."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlr_action.core.budget import usage
from mlr_action.github.dashboard import Shown, render_dashboard
from mlr_action.core.ledger import EventRow, ExperimentRow, read_ledger
from mlr_action.core.program import load_program, parse_program
from mlr_action.render.reports import render_stop_report
from mlr_action.core.state import fold
from mlr_action.render.summary import render_summary
from programs import CAMPAIGN, program_text, with_
from test_rendering_attacks import HOSTILE, ONE_LINE, rendered_from_outside

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "digits-noisy"
TS = "2026-01-01T00:00:00+00:00"
FINAL = {"repeats": 3, "seed_param": "seed", "fixed": {"split": "test"}, "metric": "test_accuracy"}


def finished_state(*, hostile: str = "", reason: str = "finished"):
    """A campaign stopped on its target, its final evaluation over; ``hostile`` text wherever a job or the ledger
    branch can put it."""
    config = {"lr": 3e-4, "batch_size": 32, "scheduler": "cosine"}
    best = ExperimentRow(iter=1, ts=TS, status="completed", metric=0.97, decision="keep", best_so_far=0.97,
                         job_id="j1" + hostile, config=config, timeout="1h", timeout_s=3600, flavor="a10g-large",
                         duration_s=600.0, hub_url="https://huggingface.co/me/sweep-001" + hostile,
                         commit="0123456789abcdef0123456789abcdef01234567" + hostile)
    rows = [best, EventRow(event="stopped", ts=TS, reason="target", detail="eval_accuracy=0.97 at iter 1" + hostile)]
    for repeat, value in ((1, 0.95), (2, 0.96), (3, None)):
        rows.append(ExperimentRow(
            iter=1 + repeat, ts=TS, status="completed" if value else "error", metric=value, job_id=f"f{repeat}{hostile}",
            config=config, timeout="1h", timeout_s=3600, flavor="a10g-large", duration_s=600.0, final_of=1,
            repeat=repeat, final_seed=repeat, error=None if value else "Traceback\n" + "\n".join(HOSTILE),
            hub_url=("https://huggingface.co/me/sweep-00" + str(1 + repeat) + hostile) if value else None))
    rows.append(EventRow(event="final", ts=TS, reason=reason, final_of=1, detail="3 repeat(s) ran" + hostile))
    return fold(rows, campaign_id="sweep")


PROGRAM = parse_program(program_text(None, with_(CAMPAIGN, final=FINAL)))


def pages(state) -> dict[str, str]:
    used = usage(state)
    return {
        "summary": render_summary(program=PROGRAM, state=state, used=used, now=TS),
        "stop report": render_stop_report(program=PROGRAM, state=state, used=used, now=TS)[1],
        "dashboard": render_dashboard(program=PROGRAM, state=state, used=used, shown=Shown(state="stopped"),
                                      checkbox=False, now=TS),
    }


@pytest.mark.parametrize("page", ["summary", "stop report", "dashboard"])
def test_the_final_evaluation_is_a_section_of_its_own_with_its_cost_and_the_spread(page):
    text = pages(finished_state())[page]
    heading = "## Final evaluation" if page == "summary" else "### Final evaluation"
    assert heading in text
    section = text.split(heading, 1)[1]
    assert "**Finished:** 3 of 3 repeats ran, 2 with a result." in section
    assert "**`test_accuracy`: 0.955 ± 0.0071 (mean ± sd over 2 repeats of 3, range 0.95 to 0.96)**; in the search, " \
           "`eval_accuracy` 0.97 at iter 1." in section
    assert "**Cost of the final evaluation:** 3 job(s), 30m of walltime, $0.75" in section
    assert "| 3 | 4 | 3 | error | — | 10m |" in section  # the failed repeat, in the table
    assert "Commit 0123456789ab." in section and "Hub: `https://huggingface.co/me/sweep-001`" in section
    assert "**Target 0.95: confirmed** by the final evaluation: the mean 0.955 ≥ 0.95 (2 of 2 repeats reached it)." in text


def test_the_result_gives_the_final_metric_next_to_the_search_metric_config_commit_and_hub_url():
    report = pages(finished_state())["stop report"]
    result = report.split("**Result**", 1)[1].split("**Experiments:**", 1)[0]
    assert result.splitlines()[2:7] == [
        "- **eval_accuracy: 0.97** (iter 1, in the search)",
        "- **final `test_accuracy`: 0.955 ± 0.0071 (mean ± sd over 2 repeats of 3, range 0.95 to 0.96)**",
        "- config: `lr=0.0003, batch_size=32, scheduler=cosine`",
        "- Hub: `https://huggingface.co/me/sweep-001`",
        "- code: commit `0123456789ab` (`mlr reproduce 1` prints its job; `mlr reproduce 1 --run` runs it again)",
    ]
    summary = pages(finished_state())["summary"]
    assert "| 1 | completed | keep | 0.97 (final 0.955 ± 0.0071, n=2) |" in summary  # the spread next to the metric


@pytest.mark.parametrize("page", ["summary", "stop report", "dashboard"])
def test_text_from_jobs_and_the_ledger_in_the_final_evaluation_is_shown_never_rendered(page):
    text = pages(finished_state(hostile=" " + ONE_LINE))[page]
    assert "Final evaluation" in text
    assert rendered_from_outside(text) == [], text


def test_the_dashboard_puts_the_stop_and_the_final_evaluation_before_the_budget():
    body = pages(finished_state())["dashboard"]
    assert body.index("### Stopped") < body.index("### Final evaluation") < body.index("### Budget")
    assert "0.97 (final 0.955 ± 0.0071, n=2)" in body


def test_mlr_validate_shows_the_final_evaluation_and_whether_the_reserve_pays(tmp_path, capsys):
    from mlr_action.commands.cli import main

    (tmp_path / "train.py").write_text("print('eval_accuracy=0.5')\n")
    (tmp_path / "program.md").write_text(program_text(None, with_(CAMPAIGN, min_delta=0.005, final=FINAL)))
    assert main(["validate", "--repo", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "an improvement must beat the best by more than 0.005 (min_delta)" in out
    assert ("Final evaluation (after the stop)\n  3 repeat(s) of the best config, 1h each on a10g-large (+ up to 10m "
            "each to start on HF Jobs, scheduling_timeout): at most 3h30m and $5.25") in out
    assert "the search keeps 3 of max_jobs back. The 10% reserve (48m) may not pay for all of it" in out


def test_the_dry_run_says_what_the_final_evaluation_would_do(tmp_path, capsys):
    from mlr_action.commands.cli import main
    from mlr_action.core.ledger import append_rows

    (tmp_path / "train.py").write_text("print('eval_accuracy=0.5')\n")
    (tmp_path / "program.md").write_text(program_text(None, with_(CAMPAIGN, final=FINAL)))
    state = finished_state()
    append_rows(tmp_path / "runs" / "ledger.jsonl", [state.experiments[1], state.stopped])
    assert main(["step", "--repo", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would submit iter 2: final evaluation of iter 1, repeat 1, on a10g-large, timeout 1h" in out
    assert len(read_ledger(tmp_path / "runs" / "ledger.jsonl")) == 2  # nothing written


def test_the_committed_schema_is_the_one_the_models_give():
    from mlr_action.commands.schema import SCHEMA_PATH, build_schema

    schema = build_schema()
    assert json.loads(SCHEMA_PATH.read_text()) == schema, "run `python -m mlr_action.commands.schema`"
    final = schema["$defs"]["campaign"]["$defs"]["FinalEvaluation"]
    assert {"repeats", "seed_param", "seeds", "fixed", "metric", "flavor", "timeout"} == set(final["properties"])
    assert "2h30m" in json.dumps(final["properties"]["timeout"]) or "pattern" in json.dumps(final["properties"]["timeout"])


# --- the noisy example, for real ------------------------------------------------------------------------------


def test_the_noisy_example_validates_and_its_script_takes_every_argument():
    program = load_program(EXAMPLE / "program.md")
    assert program.campaign.final is not None and program.campaign.min_delta > 0
    out = subprocess.run([sys.executable, str(EXAMPLE / "train.py"), "--help"], capture_output=True, text=True,
                         timeout=60)
    names = [*program.campaign.params, *program.campaign.fixed, *program.campaign.final.fixed,
             program.campaign.final.seed_param]
    assert out.returncode == 0 and all(f"--{name}" in out.stdout for name in names), out.stdout


def test_the_noisy_example_stops_runs_its_repeats_from_the_reserve_and_writes_mean_and_spread(tmp_path, capsys):
    """The done-when of issue 15: `mlr run` on the local backend, real jobs, until the final evaluation is over."""
    pytest.importorskip("sklearn")
    from mlr_action.commands.cli import main

    root = tmp_path / "digits-noisy"
    shutil.copytree(EXAMPLE, root)
    # The repeats side by side, so the test takes the time of about three runs, not five.
    text = (root / "program.md").read_text().replace("max_parallel: 1 ", "max_parallel: 3 ")
    (root / "program.md").write_text(text)
    assert main(["run", "--repo", str(root), "--backend", "local", "--interval", "0.2", "--max-ticks", "600"]) == 0
    out = capsys.readouterr().out
    assert "final evaluation of iter" in out and "campaign stopped after" in out
    state = fold(read_ledger(root / "runs" / "ledger.jsonl"))
    program = load_program(root / "program.md")
    assert state.stopped.reason in ("target", "patience", "budget") and state.final_event.reason == "finished"
    repeats = state.repeats_of(state.best.iter)
    assert sorted(repeats) == [1, 2, 3] and all(r.status == "completed" for r in repeats.values())
    assert all(0 < r.metric <= 1 for r in repeats.values())
    assert len(state.job_rows) <= program.envelope.max_jobs
    summary = (root / "runs" / "summary.md").read_text()
    assert "## Final evaluation" in summary and "mean ± sd over 3 repeats" in summary
    assert "`--seed` set to 1, 2, 3 and `--split=test`" in summary and "**Cost of the final evaluation:** 3 job(s)" in summary
    report = (root / "runs" / "stop-report.md").read_text()
    assert "### Final evaluation" in report and "final `test_accuracy`:" in report
    if state.stopped.reason == "target":
        assert "**Target 0.94: confirmed**" in report or "**Target 0.94: not confirmed.**" in report
