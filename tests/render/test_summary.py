"""runs/summary.md rendering: sections, tables, the chart, stops, redaction."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from programs import CAMPAIGN, ENVELOPE, program_text, with_

from mlr_action.core.budget import usage
from mlr_action.core.ledger import EventRow, ExperimentRow
from mlr_action.core.markup import cell
from mlr_action.core.program import parse_program
from mlr_action.render.stop_reasons import STOP_REASONS, reserve_words
from mlr_action.core.metric import format_metric
from mlr_action.render.words import format_usd
from mlr_action.core.state import fold
from mlr_action.render.chart import chart_points
from mlr_action.render.summary import campaign_status, render_summary

T = "2025-01-02T03:04:05Z"
PROGRAM = parse_program(program_text())
CONFIG = {"lr": 0.001, "batch_size": 16}


def exp(i: int, status: str, **fields) -> ExperimentRow:
    fields.setdefault("config", CONFIG)
    fields.setdefault("job_id", f"job-{i}")
    return ExperimentRow(iter=i, ts=T, status=status, timeout="1h", timeout_s=3600, flavor="a10g-large", **fields)


def done(i: int, metric: float | None, decision: str, best: float | None, **fields) -> ExperimentRow:
    fields.setdefault("duration_s", 1800)
    return exp(i, "completed", metric=metric, decision=decision, best_so_far=best, **fields)


def started(name: str = "demo") -> EventRow:
    return EventRow(event="started", ts=T, campaign=name)


def render(rows, program=PROGRAM, **kw) -> str:
    state = fold(rows)
    return render_summary(program=program, state=state, used=usage(state), now=T, **kw)


def section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"no section {heading!r} in:\n{text}"
    return match.group(1)


def cells(line: str) -> list[str]:
    """The cells of one Markdown table line, honouring ``\\|`` escapes."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def tables(text: str) -> list[list[list[str]]]:
    out, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(cells(line))
        elif current:
            out.append(current)
            current = []
    return out


MIX = [
    started(),
    done(1, 0.80, "keep", 0.80, hypothesis="baseline", hub_url="https://huggingface.co/me/sweep-demo-001"),
    done(2, 0.75, "discard", 0.80, hypothesis="bigger batch", config={"lr": 0.0005, "batch_size": 64}),
    exp(3, "error", error="Traceback (most recent call last):\n  File train.py\nRuntimeError: CUDA out of memory",
        decision="discard", best_so_far=0.80, duration_s=60),
    done(4, 0.9123456, "keep", 0.9123456, config={"lr": 0.0003, "batch_size": 8},
         hub_url="https://huggingface.co/me/sweep-demo-004"),
    exp(5, "submitted", hypothesis="warmup"),
]

CASES = {
    "empty ledger": (
        [],
        ["# Campaign `campaign`: running", "No result yet.", "Nothing in flight.", "No experiments yet.",
         "| jobs | 0 | 12 | 12 |", "| walltime | 0s | 8h | 8h |", "appears once two experiments have a result"],
        ["## Stopped", "```mermaid", "**Paused**"],
    ),
    "one submitted row": (
        [started(), exp(1, "submitted", hypothesis="baseline")],
        ["# Campaign `demo`: running", "No result yet.", "| 1 | job-1 | a10g-large | 1h |",
         "| 1 | submitted | — | — | — | `lr=0.001, batch_size=16` | a10g-large | — | `baseline` |",
         "| jobs | 1 | 12 | 11 |", "| walltime | 1h | 8h | 7h |"],
        ["## Stopped", "```mermaid", "Nothing in flight."],
    ),
    "completed, keep, discard, error": (
        MIX,
        ["**eval_accuracy: 0.9123** (iter 4)", "config: `lr=0.0003, batch_size=8`",
         "Hub: `https://huggingface.co/me/sweep-demo-004`",  # shown as code, never a link
         "| 2 | completed | discard | 0.75 | 0.8 | `lr=0.0005, batch_size=64` | a10g-large | 30m | `bigger batch` |",
         "| 3 | error | discard | — | 0.8 |", "RuntimeError: CUDA out of memory",
         "| 5 | job-5 | a10g-large | 1h |", "| jobs | 5 | 12 | 7 |", "```mermaid"],
        ["Traceback", "## Stopped"],
    ),
    "paused": (
        [started(), done(1, 0.8, "keep", 0.8), EventRow(event="paused", ts=T, reason="human")],
        ["# Campaign `demo`: paused", "**Paused** by a person"],
        ["## Stopped"],
    ),
    "resumed after a pause": (
        [started(), EventRow(event="paused", ts=T), EventRow(event="resumed", ts=T)],
        ["# Campaign `demo`: running"],
        ["**Paused**"],
    ),
}


@pytest.mark.parametrize("rows, present, absent", CASES.values(), ids=CASES.keys())
def test_summary_sections(rows, present, absent):
    text = render(rows)
    for needle in present:
        assert needle in text
    for needle in absent:
        assert needle not in text
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    expected = ["## Best so far", "## Budget", "## In flight", "## Experiments", "## Progress"]
    assert [h for h in headings if h != "## Stopped"] == expected
    assert text.endswith("\n") and not text.endswith("\n\n")


@pytest.mark.parametrize("reason", sorted(STOP_REASONS))
def test_stopped_with_each_reason(reason):
    rows = [*MIX[:5], EventRow(event="stopped", ts="2025-01-03T00:00:00Z", reason=reason, detail="why it stopped")]
    text = render(rows)
    assert text.startswith("# Campaign `demo`: stopped\n")
    stopped = section(text, "Stopped")
    words = STOP_REASONS[reason].words.format(goal="eval_accuracy ≥ 0.95", patience=3, reserve=reserve_words(PROGRAM))
    assert f"The campaign stopped because {words}." in stopped
    assert "> `why it stopped`" in stopped and "Stopped at 2025-01-03T00:00:00Z." in stopped
    assert "**eval_accuracy: 0.9123** (iter 4)" in stopped
    assert "`lr=0.0003, batch_size=8`" in stopped
    assert "https://huggingface.co/me/sweep-demo-004" in stopped
    assert "**Experiments:** 4 (2 kept, 1 ended in error)." in stopped
    assert "**Budget used:** 4 of 12 jobs" in stopped
    for step in STOP_REASONS[reason].next_steps:
        assert step in stopped
    # The writeup comes first, right under the title.
    assert text.index("## Stopped") < text.index("## Best so far")


def test_stop_outranks_pause():
    state = fold([started(), EventRow(event="paused", ts=T), EventRow(event="stopped", ts=T, reason="human")])
    assert campaign_status(state) == "stopped"


def test_stopped_with_no_result_and_unknown_reason():
    text = render([started(), EventRow(event="stopped", ts=T, reason="meteor")])
    stopped = section(text, "Stopped")
    assert "The campaign stopped because of `meteor`." in stopped  # a reason from the ledger is shown as code
    assert "No experiment produced a result that was kept." in stopped


def test_pipes_and_newlines_in_cells_are_escaped():
    rows = [started(), done(1, 0.8, "keep", 0.8, hypothesis="try a | b\nthen c", error=None),
            exp(2, "error", error="bad | value\nsecond line | too", decision="discard")]
    text = render(rows)
    assert "`try a \\| b then c`" in text  # GFM keeps an escaped pipe inside a code span, and shows "|"
    assert "second line \\| too`" in text
    for table in tables(text):
        assert len({len(row) for row in table}) == 1, table
    experiments = tables(section(text, "Experiments"))[0]
    assert experiments[2][8] == "`try a \\| b then c`"


def test_hypothesis_is_truncated():
    text = render([started(), exp(1, "submitted", hypothesis="word " * 50)])
    row = tables(section(text, "Experiments"))[0][2]
    assert row[8].endswith("…`") and len(row[8]) <= 82


def test_outside_text_is_redacted(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "secret-value-123")
    token = "hf_" + "a" * 34
    rows = [started(), done(1, 0.8, "keep", 0.8, hypothesis=f"use {token}", hub_url="https://x/secret-value-123"),
            exp(2, "error", error=f"401 for ghp_{'b' * 36}")]
    text = render(rows, prices_note="live prices via secret-value-123")
    assert token not in text and "ghp_" not in text and "secret-value-123" not in text
    assert text.count("***") >= 4


# --- Chart --------------------------------------------------------------------


def chart(text: str) -> tuple[list[int], list[float], list[float]]:
    block = re.search(r"```mermaid\n(.*?)\n```", text, re.S)
    assert block, text
    body = block.group(1).splitlines()
    assert body[0] == "xychart-beta"
    xs = re.search(r'^\s*x-axis "iteration" \[(.*)\]$', block.group(1), re.M).group(1)
    lines = re.findall(r"^\s*line \[(.*)\]$", block.group(1), re.M)
    assert len(lines) == 2
    return (
        [int(x.strip().strip('"')) for x in xs.split(",")],
        [float(v) for v in lines[0].split(",")],
        [float(v) for v in lines[1].split(",")],
    )


def test_chart_series_values_and_monotone_best():
    xs, metric, best = chart(render(MIX))
    # iter 3 errored with no metric and iter 5 is in flight: both skipped.
    assert xs == [1, 2, 4]
    assert metric == [0.8, 0.75, 0.9123]
    assert best == [0.8, 0.8, 0.9123]
    assert all(a <= b for a, b in zip(best, best[1:]))


def test_chart_best_is_monotone_when_minimizing():
    program = parse_program(program_text(campaign=with_(CAMPAIGN, metric="eval_loss", direction="minimize", target=0.1)))
    rows = [started(), done(1, 0.9, "keep", 0.9), done(2, 1.2, "discard", 0.9), done(3, 0.5, "keep", 0.5),
            done(4, 0.7, "discard", 0.5)]
    text = render(rows, program=program)
    xs, metric, best = chart(text)
    assert xs == [1, 2, 3, 4]
    assert metric == [0.9, 1.2, 0.5, 0.7]
    assert best == [0.9, 0.9, 0.5, 0.5]
    assert all(a >= b for a, b in zip(best, best[1:]))
    assert 'title "eval_loss per iteration"' in text and 'y-axis "eval_loss"' in text
    assert "until it is ≤ 0.1" in text


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [started(), exp(1, "submitted")],
        [started(), done(1, 0.8, "keep", 0.8)],
        [started(), done(1, 0.8, "keep", 0.8), exp(2, "error", error="boom"), exp(3, "running")],
    ],
    ids=["no experiments", "in flight only", "one point", "one point and an error"],
)
def test_chart_omitted_below_two_points(rows):
    text = render(rows)
    assert "```mermaid" not in text
    assert "The chart of `eval_accuracy` per iteration appears once two experiments have a result." in text


def test_chart_points_skip_non_finite_metrics():
    state = fold([started(), done(1, float("nan"), "discard", None), done(2, 0.5, "keep", 0.5)])
    assert chart_points(PROGRAM, state) == [(2, 0.5, 0.5)]


# --- Budget, determinism, numbers ---------------------------------------------


def test_budget_with_dollar_and_llm_limits():
    program = parse_program(program_text(envelope=with_(ENVELOPE, max_cost_usd=25, max_llm_usd=2)))
    rows = [started(), done(1, 0.8, "keep", 0.8, cost_usd=3.456, llm_usd=0.25)]
    text = render(rows, program=program, prices_note="Prices from the live hardware catalog.")
    budget = section(text, "Budget")
    assert "| dollars | $3.46 | $25.00 | $21.54 |" in budget
    assert "| LLM dollars | $0.25 | $2.00 | $1.75 |" in budget
    assert "| walltime | 30m | 8h | 7h30m |" in budget
    assert "Prices from the live hardware catalog." in budget
    assert "10% of the walltime and dollars is kept in reserve" in budget


def test_budget_without_dollar_limit_and_left_never_negative():
    rows = [started(), *[done(i, 0.5, "discard", None, duration_s=3 * 3600) for i in range(1, 4)]]
    budget = section(render(rows), "Budget")
    assert "| dollars | $13.50 | no limit | — |" in budget
    assert "| walltime | 9h | 8h | 0s |" in budget
    assert "LLM dollars" not in budget


def test_deterministic_and_now_forms():
    assert render(MIX) == render(MIX)
    state = fold(MIX)
    aware = datetime(2025, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    text = render_summary(program=PROGRAM, state=state, used=usage(state), now=aware)
    assert text == render(MIX)  # the same instant, printed in UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        render_summary(program=PROGRAM, state=state, used=usage(state), now=datetime(2025, 1, 2))


@pytest.mark.parametrize(
    "value, text",
    [(None, "—"), (0.0, "0"), (0.8, "0.8"), (0.9123456, "0.9123"), (0.000123456, "0.0001235"),
     (12.5, "12.5"), (1234.56789, "1234.5679"), (-0.5, "-0.5"), (1e-9, "0.000000001"), (3.0, "3")],
)
def test_format_metric(value, text):
    assert format_metric(value) == text


@pytest.mark.parametrize("value, text", [(0, "$0.00"), (3.456, "$3.46"), (1234.5, "$1,234.50")])
def test_format_usd(value, text):
    assert format_usd(value) == text


@pytest.mark.parametrize("raw, shown", [("a|b", "a\\|b"), ("x\ny", "x y"), ("", " "), ("  a \r\n b ", "a b")])
def test_a_table_cell_is_one_line_with_its_bars_escaped(raw, shown):
    assert cell(raw) == shown


# --- which code each experiment ran ----------------------------------------------------------------

A, B = "a" * 64, "b" * 64


def test_the_summary_marks_where_the_code_changed_and_the_best_names_its_commit():
    rows = [started(), done(1, 0.5, "keep", 0.5, commit="1" * 40, folder_hash=A),
            done(2, 0.4, "discard", 0.5, commit="2" * 40, folder_hash=A),  # the bot's runs/ commit: the same code
            done(3, 0.7, "keep", 0.7, commit="3" * 40, folder_hash=B),
            exp(4, "submitted", commit="3" * 40, folder_hash=B)]
    text = render(rows)
    code = section(text, "Code")
    assert "**The code changed 1 time during the campaign**" in code
    assert "- iters 1–2: commit `111111111111`, folder `aaaaaaaaaaaa`" in code
    assert "- iters 3–4: commit `333333333333`, folder `bbbbbbbbbbbb` — **code changed here**" in code
    assert "- code: commit `333333333333`, folder `bbbbbbbbbbbb` (`mlr reproduce 3` prints its job; `mlr reproduce 3 --run` runs it again)" in section(text, "Best so far")


def test_one_version_of_the_code_and_runs_without_uv_are_said_and_a_row_is_never_markup():
    rows = [started(), done(1, 0.5, "keep", 0.5, folder_hash=A, runner="python 3.11.7 (no uv)"),
            done(2, 0.6, "keep", 0.6, folder_hash=A, commit="<img src=x>", runner="uv")]
    code = section(render(rows), "Code")
    assert "Every experiment ran the same code: the work tree, folder `aaaaaaaaaaaa`." in code
    assert "1 experiment ran locally without uv" in code and "<img" not in render(rows)


def test_an_older_ledger_without_commits_or_digests_has_no_code_section():
    assert "## Code" not in render([started(), done(1, 0.5, "keep", 0.5)])


def test_the_reserve_is_for_a_final_evaluation_only_when_program_md_has_one():
    rows = [started(), done(1, 0.8, "keep", 0.8)]
    budget = section(render(rows), "Budget")
    assert "10% of the walltime and dollars is kept in reserve (unspent: a `final` block" in budget, budget
    assert "for the final evaluation" not in budget and "repeats" not in budget
    final = parse_program(program_text(campaign=with_(CAMPAIGN, final={"repeats": 2, "seed_param": "seed"})))
    budget = section(render(rows, program=final), "Budget")
    assert "kept in reserve for the final evaluation" in budget and "2 of max_jobs" in budget
