"""The ledger: append-only rows, the fold, a truncated last line repaired, anything else refused."""

from __future__ import annotations

import json

import pytest

from mlr_action.core.ledger import EventRow, ExperimentRow, LedgerError, append_rows, experiment_row, read_ledger, repair_ledger
from mlr_action.core.state import fold

TS = "2026-01-01T00:00:00+00:00"


def row(iter=1, status="submitted", job_id="j1", **kw) -> ExperimentRow:
    return experiment_row(iter=iter, ts=TS, status=status, config={"lr": 0.1}, timeout_s=3600, flavor="t4-small", job_id=job_id, **kw)


def test_append_and_read_round_trip(tmp_path):
    path = tmp_path / "runs" / "ledger.jsonl"
    append_rows(path, [EventRow(event="started", ts=TS, campaign="c"), row()])
    append_rows(path, [row(status="completed", metric=0.5, decision="keep", best_so_far=0.5)])
    rows = read_ledger(path)
    assert [type(r).__name__ for r in rows] == ["EventRow", "ExperimentRow", "ExperimentRow"]
    data = json.loads(path.read_text().splitlines()[1])
    for field in ("iter", "ts", "hypothesis", "config", "job_id", "status", "metric", "hub_url", "decision", "best_so_far", "timeout"):
        assert field in data, field
    assert data["timeout"] == "1h"


def test_later_rows_for_an_iter_supersede_earlier_ones():
    state = fold([
        EventRow(event="started", ts=TS, campaign="c"),
        row(1), row(2, job_id="j2"),
        row(1, status="completed", metric=0.7, decision="keep", best_so_far=0.7),
    ])
    assert state.campaign_id == "c"
    assert state.experiments[1].status == "completed"
    assert [e.iter for e in state.in_flight] == [2]
    assert state.best.iter == 1 and state.next_iter == 3


def test_truncated_last_line_is_tolerated_and_repaired(tmp_path):
    path = tmp_path / "ledger.jsonl"
    append_rows(path, [row()])
    with open(path, "a") as fh:
        fh.write('{"iter": 2, "ts": "2026')  # a crash mid-append
    assert len(read_ledger(path)) == 1
    assert repair_ledger(path) is True
    assert path.read_text().endswith("\n") and len(path.read_text().splitlines()) == 1
    assert repair_ledger(path) is False
    append_rows(path, [row(2, job_id="j2")])
    assert [r.iter for r in read_ledger(path)] == [1, 2]


@pytest.mark.parametrize(
    "line, expected",
    [
        ("not json at all", "ledger.jsonl:2 is not valid JSON"),
        ('{"iter": "three", "ts": "x", "status": "submitted"}', "ledger.jsonl:2 is not a ledger row (iter:"),
        ('{"iter": 3, "ts": "x", "status": "exploded"}', "ledger.jsonl:2 is not a ledger row (status:"),
        ('[1, 2, 3]', "expected a JSON object"),
        ('{"event": "partied", "ts": "x"}', "ledger.jsonl:2 is not a ledger row (event:"),
    ],
)
def test_unreadable_line_in_the_middle_stops_with_the_line_number(tmp_path, line, expected):
    path = tmp_path / "ledger.jsonl"
    append_rows(path, [row()])
    with open(path, "a") as fh:
        fh.write(line + "\n")
    append_rows(path, [row(2, job_id="j2")])
    with pytest.raises(LedgerError) as info:
        read_ledger(path)
    assert expected in str(info.value) and "nothing was spent" in str(info.value)


def test_garbage_last_line_with_newline_is_not_mistaken_for_truncation(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_text('{"iter": 1, "ts": "x", "status": "submitted"}\n{garbage}\n')
    with pytest.raises(LedgerError):
        read_ledger(path)


def test_non_utf8_ledger_is_refused(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b'\xff\xfe\x00garbage\n')
    with pytest.raises(LedgerError, match="not UTF-8"):
        read_ledger(path)


def test_rows_from_the_seeds_own_loop_are_read():
    seed = {"iter": 3, "ts": "2026-01-01T00:00:00Z", "hypothesis": "h", "config": {"lr": 1e-4}, "job_id": "6745abc",
            "status": "completed", "metric": 0.81, "hub_url": "https://huggingface.co/me/x", "decision": "keep",
            "best_so_far": 0.81, "timeout": "1h", "notes": "kept field"}
    parsed = fold([ExperimentRow.model_validate(seed)])
    exp = parsed.experiments[3]
    assert exp.charged_timeout_s == 3600 and exp.metric == 0.81 and exp.model_extra["notes"] == "kept field"


def test_missing_ledger_is_empty(tmp_path):
    assert read_ledger(tmp_path / "nope.jsonl") == []
