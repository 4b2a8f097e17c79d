"""The dashboard as data: controls to ledger rows (table-driven), rendering, trimming, commit messages."""

from __future__ import annotations

import pytest

from mlr_action.budget import usage
from mlr_action.forges.github_dashboard import (
    BODY_LIMIT,
    GITHUB_BODY_LIMIT,
    Command,
    Dashboard,
    Shown,
    control_rows,
    read_checkbox,
    read_dashboard,
    read_shown,
    render_dashboard,
    set_checkbox,
    shown_for,
)
from mlr_action.forges.github_messages import PAUSED_LABEL, commit_message
from mlr_action.ledger import EventRow, experiment_row
from mlr_action.program import parse_program
from mlr_action.state import CampaignState, fold
from programs import program_text

TS = "2026-01-01T00:00:00+00:00"
PROGRAM = parse_program(program_text())


def state_of(*events: str, reason: str = "target", comment_id: int | None = None) -> CampaignState:
    rows = [EventRow(event="started", ts=TS, campaign="c")]
    for event in events:
        extra = {"comment_id": comment_id} if comment_id else {}
        rows.append(EventRow(event=event, ts=TS, reason=reason if event == "stopped" else "human", **extra))
    return fold(rows)


RUNNING, PAUSED = state_of(), state_of("paused")
HUMAN_STOP, TARGET_STOP = state_of("stopped", reason="human"), state_of("stopped", reason="target")
SHOWN_RUNNING, SHOWN_PAUSED = Shown("running"), Shown("paused", paused=True, label=True)
SHOWN_HUMAN, SHOWN_TARGET = Shown("stopped", "human"), Shown("stopped", "target")


def dash(shown=SHOWN_RUNNING, *, open=True, checkbox=None, label=None, commands=(), replied=(), closed_by=None):
    shown_paused = shown.paused if shown else False
    return Dashboard(
        number=7, open=open, shown=shown,
        checkbox=shown_paused if checkbox is None else checkbox,
        label=(shown.label if shown else False) if label is None else label,
        closed_by=closed_by, commands=tuple(commands), replied=frozenset(replied),
        last_comment=max((c.comment_id for c in commands), default=0),
    )


def events(controls) -> list[tuple[str, str]]:
    return [(r.event, r.reason) for r in controls.rows]


CASES = [
    # (name, dashboard, state, writers, expected rows)
    ("nothing changed", dash(), RUNNING, (), []),
    ("box checked", dash(checkbox=True), RUNNING, (), [("paused", "human")]),
    ("label added", dash(label=True), RUNNING, (), [("paused", "human")]),
    ("box unchecked", dash(SHOWN_PAUSED, checkbox=False), PAUSED, (), [("resumed", "human")]),
    ("label removed", dash(SHOWN_PAUSED, label=False), PAUSED, (), [("resumed", "human")]),
    ("conflict: pausing wins", dash(Shown("running", label=True), checkbox=True, label=False), RUNNING, (),
     [("paused", "human")]),
    ("already paused by the ledger", dash(checkbox=True), PAUSED, (), []),
    ("not mirrored yet is no request", dash(SHOWN_RUNNING), PAUSED, (), []),
    ("closed while running", dash(open=False, closed_by="alice"), RUNNING, (), [("stopped", "human")]),
    ("closed while paused", dash(SHOWN_PAUSED, open=False), PAUSED, (), [("stopped", "human")]),
    ("closed after a target stop", dash(SHOWN_TARGET, open=False), TARGET_STOP, (), []),
    ("closed, resumed by program.md", dash(SHOWN_TARGET, open=False), RUNNING, (), []),
    ("reopened after a human stop", dash(SHOWN_HUMAN, open=True), HUMAN_STOP, (), [("resumed", "human")]),
    ("open, human stop not mirrored", dash(SHOWN_RUNNING, open=True), HUMAN_STOP, (), []),
    ("box checked while stopped", dash(SHOWN_TARGET, checkbox=True), TARGET_STOP, (), []),
    ("/mlr stop from a writer", dash(commands=[Command(5, "alice", "stop")]), RUNNING, {"alice"}, [("stopped", "human")]),
    ("/mlr stop from a reader", dash(commands=[Command(5, "mallory", "stop")]), RUNNING, {"alice"}, []),
    ("/mlr stop when stopped", dash(SHOWN_TARGET, commands=[Command(5, "alice", "stop")]), TARGET_STOP, {"alice"}, []),
    ("/mlr pause", dash(commands=[Command(5, "alice", "pause")]), RUNNING, {"alice"}, [("paused", "human")]),
    ("/mlr resume a pause", dash(SHOWN_PAUSED, commands=[Command(5, "alice", "resume")]), PAUSED, {"alice"}, [("resumed", "human")]),
    ("/mlr resume a human stop", dash(SHOWN_HUMAN, open=False, commands=[Command(5, "alice", "resume")]), HUMAN_STOP,
     {"alice"}, [("resumed", "human")]),
    ("/mlr resume a target stop", dash(SHOWN_TARGET, commands=[Command(5, "alice", "resume")]), TARGET_STOP, {"alice"}, []),
    ("command already seen", dash(Shown("running", seen=5), commands=[Command(5, "alice", "stop")]), RUNNING, {"alice"}, []),
    ("command already answered", dash(commands=[Command(5, "mallory", "stop")], replied=[5]), RUNNING, set(), []),
    ("marker gone: only commands", dash(None, open=False, checkbox=True, commands=[Command(5, "alice", "pause")]), RUNNING,
     {"alice"}, [("paused", "human")]),
    ("stop then pause in one tick", dash(commands=[Command(5, "alice", "stop"), Command(6, "alice", "pause")]), RUNNING,
     {"alice"}, [("stopped", "human")]),
]


@pytest.mark.parametrize("name,dashboard,state,writers,expected", CASES, ids=[c[0] for c in CASES])
def test_controls_become_rows(name, dashboard, state, writers, expected):
    assert events(control_rows(dashboard, state, writers=writers, ts=TS)) == expected


def test_a_command_in_the_ledger_is_not_acted_on_again():
    state = state_of("stopped", reason="human", comment_id=5)
    resumed = fold([*_rows(state), EventRow(event="resumed", ts=TS, reason="human")])
    out = control_rows(dash(commands=[Command(5, "alice", "stop")]), resumed, writers={"alice"}, ts=TS)
    assert out.rows == []


def _rows(state: CampaignState) -> list:
    return list(state.events)


def test_rows_say_who_and_how():
    out = control_rows(dash(open=False, closed_by="alice"), RUNNING, writers=(), ts=TS)
    (row,) = out.rows
    assert row.detail == "@alice closed the dashboard issue #7" and getattr(row, "by") == "alice"
    out = control_rows(dash(commands=[Command(9, "bob", "stop")]), RUNNING, writers={"bob"}, ts=TS)
    assert getattr(out.rows[0], "comment_id") == 9 and "@bob" in out.rows[0].detail
    assert out.seen == 9


def test_a_reader_gets_one_reply_and_is_never_obeyed():
    out = control_rows(dash(commands=[Command(5, "mallory", "stop")]), RUNNING, writers=set(), ts=TS)
    assert out.rows == []
    ((comment_id, text),) = out.replies
    assert comment_id == 5 and "@mallory" in text and "write access" in text and "mlr-action:reply 5" in text
    assert "\n/mlr" not in text  # a reply can never read as a command


def test_read_dashboard_parses_marker_box_label_and_commands():
    body = render_dashboard(program=PROGRAM, state=RUNNING, used=usage(RUNNING), shown=Shown("running", seen=3),
                            checkbox=False, now=TS)
    comments = [(4, "alice", "please\n/mlr stop now"), (5, "bot", "ignored <!-- mlr-action:reply 4 -->"),
                (6, "bob", "I think /mlr stop is wrong"), (7, "carol", "/mlr pause"),
                (8, "mallory", "fake <!-- mlr-action:reply 7 -->")]
    d = read_dashboard(number=1, body=set_checkbox(body, True), open=True, labels=[PAUSED_LABEL], comments=comments,
                       bot="bot")
    assert d.shown == Shown("running", seen=3) and d.checkbox is True and d.label is True
    assert d.commands == (Command(4, "alice", "stop"), Command(7, "carol", "pause"))
    assert d.replied == frozenset({4}) and d.last_comment == 8  # only the bot's own replies count


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


@pytest.mark.parametrize("events,subject", [
    ([], "mlr: update runs/"),
    (["iter 3 submitted 6745aa00bb11cc22dd33ee44 (a10g-large, 1h)"], "mlr: iter 3 submitted 6745… (a10g-large, 1h)"),
    (["iter 2 completed: eval_accuracy=0.91 (keep)", "iter 3 submitted 6745aa00bb11cc22 (a10g-large, 1h)"],
     "mlr: iter 2 completed: eval_accuracy=0.91 (keep) (+1 more)"),
])
def test_commit_message_says_what_the_step_did(events, subject):
    message = commit_message(events)
    assert message.splitlines()[0] == subject
    assert all(f"- {e.split(' (')[0][:10]}" in message for e in events) or len(events) <= 1
