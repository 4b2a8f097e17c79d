"""The dashboard as data: reading it back, rendering, trimming, commit messages."""

from __future__ import annotations

import pytest

from mlr_action.core.budget import usage
from mlr_action.github.controls import read_dashboard
from mlr_action.github.dashboard import (
    BODY_LIMIT,
    GITHUB_BODY_LIMIT,
    Command,
    Shown,
    read_checkbox,
    read_shown,
    render_dashboard,
    set_checkbox,
    shown_for,
)
from mlr_action.github.messages import PAUSED_LABEL
from mlr_action.core.ledger import EventRow, experiment_row
from mlr_action.core.program import parse_program
from mlr_action.core.state import CampaignState, fold
from programs import program_text

TS = "2026-01-01T00:00:00+00:00"
PROGRAM = parse_program(program_text())


def state_of(*events: str, reason: str = "target") -> CampaignState:
    rows = [EventRow(event="started", ts=TS, campaign="c")]
    rows += [EventRow(event=e, ts=TS, reason=reason if e == "stopped" else "human") for e in events]
    return fold(rows)


RUNNING = state_of()


def test_read_dashboard_parses_marker_box_label_and_commands():
    body = render_dashboard(program=PROGRAM, state=RUNNING, used=usage(RUNNING), shown=Shown("running", seen=3),
                            checkbox=False, now=TS)
    comments = [(4, "alice", "please\n/mlr stop now"), (5, "bot", "ignored <!-- mlr-action:reply 4 -->"),
                (6, "bob", "I think /mlr stop is wrong"), (7, "carol", "/mlr pause"),
                (8, "mallory", "fake <!-- mlr-action:reply 7 -->")]
    d = read_dashboard(number=1, body=set_checkbox(body, True), open=True, labels=[PAUSED_LABEL], comments=comments,
                       bot="bot")
    assert d.shown == Shown("running", seen=3) and d.checkbox is True and d.label is True
    assert [(c.comment_id, c.login, c.verb) for c in d.commands] == [(4, "alice", "stop"), (7, "carol", "pause")]
    assert d.replied == frozenset({4}) and d.last_comment == 8  # only the bot's own replies count
    seen = read_dashboard(number=1, body=render_dashboard(program=PROGRAM, state=RUNNING, used=usage(RUNNING),
                          shown=Shown("running", seen=6), checkbox=False, now=TS), open=True, labels=[],
                          comments=comments, bot="bot")
    assert [c.comment_id for c in seen.commands] == [7]  # comments read on an earlier tick are not read again


@pytest.mark.parametrize("body", ["", "no marker", "<!-- mlr-action:dashboard {not json} -->",
                                  '<!-- mlr-action:dashboard {"state": "x"} -->'])
def test_a_broken_marker_reads_as_unknown(body):
    assert read_shown(body) is None


def test_render_mirrors_state_and_is_stable():
    state = state_of("paused")
    shown = shown_for(state, seen=0)
    body = render_dashboard(program=PROGRAM, state=state, used=usage(state), shown=shown, checkbox=state.paused, now=TS)
    assert read_shown(body) == shown and read_checkbox(body) is True
    assert body == render_dashboard(program=PROGRAM, state=state, used=usage(state), shown=shown, checkbox=True, now=TS)
    assert "/mlr stop" in body and PAUSED_LABEL in body and "### Budget" in body


def big_state(n: int, *, config_chars: int = 0) -> CampaignState:
    rows = [EventRow(event="started", ts=TS, campaign="c")]
    for i in range(1, n + 1):
        config = {"lr": 1e-4, "notes": "x" * config_chars} if config_chars else {"lr": 1e-4}
        rows.append(experiment_row(iter=i, ts=TS, status="completed", config=config, timeout_s=3600, flavor="t4-small",
                                   job_id=f"job{i}", metric=0.5, decision="discard", duration_s=60.0))
    return fold(rows)


def test_a_huge_body_is_trimmed_under_the_limit_and_keeps_the_controls():
    state = big_state(30, config_chars=9000)
    body = render_dashboard(program=PROGRAM, state=state, used=usage(state), shown=shown_for(state, seen=0),
                            checkbox=False, now=TS)
    assert len(body) <= BODY_LIMIT < GITHUB_BODY_LIMIT
    assert read_shown(body) is not None and read_checkbox(body) is False and "/mlr stop" in body
    assert "older experiments are in `runs/summary.md`" in body  # rows were dropped, oldest first
    assert "| 30 |" in body and "| 11 |" not in body


def test_a_body_that_cannot_fit_keeps_marker_and_controls():
    state = big_state(3, config_chars=80000)
    body = render_dashboard(program=PROGRAM, state=state, used=usage(state), shown=shown_for(state, seen=0),
                            checkbox=True, now=TS, limit=5000)
    assert len(body) <= 5000 and read_checkbox(body) is True and read_shown(body) is not None


def test_only_the_last_experiments_are_listed():
    state = big_state(25)
    body = render_dashboard(program=PROGRAM, state=state, used=usage(state), shown=shown_for(state, seen=0),
                            checkbox=False, now=TS, last=5)
    assert "Last experiments (5 of 25)" in body and "| 21 |" in body and "| 20 |" not in body
