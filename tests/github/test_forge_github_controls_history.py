"""The controls' history rules as data: every change since the last read, who made it, and what counts."""

from __future__ import annotations

import pytest

from mlr_action.github.controls import control_rows, logins_to_check
from mlr_action.github.history import BOX, CLOSE, LABEL, body_history, box_changes, timeline_changes
from mlr_action.github.dashboard import PAUSE_BOX, Change, Dashboard, Shown
from mlr_action.github.messages import PAUSED_LABEL
from test_forge_github_controls_rules import (
    BOT,
    HUMAN_STOP,
    PAUSED,
    RUNNING,
    SHOWN_HUMAN,
    SHOWN_PAUSED,
    SHOWN_RUNNING,
    SHOWN_TARGET,
    TARGET_STOP,
    TS,
    WRITERS,
    events,
)


def closed(by):
    return Change(CLOSE, True, by)


def reopened(by):
    return Change(CLOSE, False, by)


def label(on, by):
    return Change(LABEL, on, by)


def box(on, by):
    return Change(BOX, on, by)


def dash(shown=SHOWN_RUNNING, *changes, open=None, checkbox=None, labelled=None, known=(CLOSE, LABEL, BOX), bot=BOT,
         made_by=None):
    """A dashboard whose issue now shows what the bot showed unless told, with ``changes`` since the last read."""
    return Dashboard(
        number=7, shown=shown, open=not shown.human_stop if open is None else open,
        checkbox=shown.paused if checkbox is None else checkbox, label=shown.label if labelled is None else labelled,
        bot=bot, made_by=made_by or {},
        changes={control: tuple(c for c in changes if c.control == control) for control in known},
    )


CASES = [
    # (name, dashboard, state, expected rows)
    ("nothing happened", dash(), RUNNING, []),
    ("a writer's close undone by a triage user", dash(SHOWN_RUNNING, closed("alice"), reopened("tri")), RUNNING,
     [("stopped", "human")]),
    ("a writer's label undone", dash(SHOWN_RUNNING, label(True, "alice"), label(False, "tri")), RUNNING,
     [("paused", "human")]),
    ("a writer's box undone by an app", dash(SHOWN_RUNNING, box(True, "alice"), box(False, "app[bot]")), RUNNING,
     [("paused", "human")]),
    ("a writer's reopen closed again", dash(SHOWN_HUMAN, reopened("alice"), closed("tri")), HUMAN_STOP,
     [("resumed", "human")]),
    ("a writer's label removal put back", dash(SHOWN_PAUSED, label(False, "alice"), label(True, "tri")), PAUSED,
     [("resumed", "human")]),
    ("a writer's box unchecked, checked again", dash(SHOWN_PAUSED, box(False, "alice"), box(True, "app[bot]")), PAUSED,
     [("resumed", "human")]),
    ("the later writer's change of a control counts", dash(SHOWN_RUNNING, closed("alice"), reopened("bob")), RUNNING,
     []),
    ("a stop wins over a resume by another control",
     dash(SHOWN_PAUSED, closed("alice"), reopened("tri"), label(False, "bob")), PAUSED, [("stopped", "human")]),
    ("a pause wins over a resume by another control",
     dash(Shown("running", label=True), box(True, "alice"), label(False, "bob")), RUNNING, [("paused", "human")]),
    ("a triage user's close alone", dash(SHOWN_RUNNING, closed("tri"), open=False), RUNNING, []),
    ("a triage user's close and reopen", dash(SHOWN_RUNNING, closed("tri"), reopened("tri")), RUNNING, []),
    ("an unnamed actor's close", dash(SHOWN_RUNNING, closed(""), open=False), RUNNING, []),
    ("the bot's own mirror", dash(SHOWN_RUNNING, label(True, BOT), label(False, BOT)), RUNNING, []),
    ("the bot's login is a person's: it counts", dash(SHOWN_RUNNING, closed("owner"), bot="owner"), RUNNING,
     [("stopped", "human")]),
    ("closing after a target stop changes nothing", dash(SHOWN_TARGET, closed("alice")), TARGET_STOP, []),
    ("a difference no change explains is no request", dash(SHOWN_RUNNING, open=False, labelled=True), RUNNING, []),
    ("a writer's close already in the ledger", dash(SHOWN_RUNNING, closed("alice")), HUMAN_STOP, []),
    ("the box's history unknown: what differs, made by a writer",
     dash(SHOWN_RUNNING, checkbox=True, known=(CLOSE, LABEL), made_by={BOX: ("alice",)}), RUNNING, [("paused", "human")]),
    ("the box's history unknown: made by a reader",
     dash(SHOWN_RUNNING, checkbox=True, known=(CLOSE, LABEL), made_by={BOX: ("mallory",)}), RUNNING, []),
    ("the box line is gone", Dashboard(number=7, shown=SHOWN_RUNNING, open=True, checkbox=None, label=False, bot=BOT,
                                       changes={BOX: (box(True, "alice"),)}), RUNNING, []),
]


@pytest.mark.parametrize("name,d,state,expected", CASES, ids=[c[0] for c in CASES])
def test_the_last_writers_change_of_each_control_counts(name, d, state, expected):
    assert events(control_rows(d, state, writers={*WRITERS, "owner"}, ts=TS)) == expected


def test_every_change_by_someone_else_is_answered_once_with_a_count():
    changes = [closed("alice")] + [c for _ in range(3) for c in (reopened("tri"), closed("tri"))] + [reopened("tri")]
    out = control_rows(dash(SHOWN_RUNNING, *changes, label(True, "mallory"), label(True, BOT)), RUNNING,
                       writers=WRITERS, ts=TS)
    assert events(out) == [("stopped", "human")] and "@alice closed" in out.rows[0].detail
    assert "@tri reopened this issue (4 times)" in out.reply and "@tri closed this issue (3 times)" in out.reply
    assert f"@mallory added the `{PAUSED_LABEL}` label to this issue" in out.reply and BOT not in out.reply
    assert len(out.ignored) == 3


def test_an_unnamed_change_is_said_so():
    out = control_rows(dash(SHOWN_RUNNING, closed(""), reopened("")), RUNNING, writers=WRITERS, ts=TS)
    assert out.rows == [] and "someone GitHub does not name closed this issue" in out.reply


def test_everyone_who_changed_something_is_checked():
    d = dash(SHOWN_RUNNING, closed("alice"), reopened("tri"), box(True, ""), label(True, "app[bot]"))
    assert logins_to_check(d, RUNNING) == {"alice", "tri", "app[bot]"}


# -- the events, the edits and the box ----------------------------------------------------


def test_timeline_events_become_changes_of_the_close_and_the_pause_label_only():
    found = timeline_changes([("labeled", BOT, "mlr-dashboard"), ("closed", "alice", ""), ("labeled", "tri", PAUSED_LABEL),
                              ("reopened", "", ""), ("unlabeled", "tri", "bug"), ("unlabeled", "bob", PAUSED_LABEL)])
    assert found == [closed("alice"), label(True, "tri"), reopened(""), label(False, "bob")]


def e(n: int, who: str) -> tuple[str, str, str]:
    return (f"id{n}", f"2026-01-01T00:00:{n:02d}Z", who)


@pytest.mark.parametrize("name,chunks,total,since,expected", [
    ("after the one read, any order", [[e(4, "tri"), e(3, BOT), e(2, "alice"), e(1, BOT)]], 4, "id2",
     ("id4", (e(3, BOT), e(4, "tri")), "id3", True)),
    ("never edited when read", [[e(1, BOT), e(2, "alice")]], 2, "", ("id2", (e(1, BOT), e(2, "alice")), "id1", True)),
    ("nothing since", [[e(1, BOT), e(2, BOT)]], 2, "id2", ("id2", (), "id2", False)),
    ("unknown: an older marker", [[e(1, BOT), e(2, "alice")]], 2, None, ("id2", None, "id1", True)),
    ("the one read is no longer listed", [[e(1, BOT)], [e(8, "tri"), e(9, BOT)]], 60, "id5", ("id9", None, "id9", False)),
    ("never edited, but not all listed", [[e(1, BOT)], [e(8, "tri"), e(9, "tri")]], 60, "", ("id9", None, "", True)),
    ("no edits at all", [[], []], 0, "", ("", (), "", False)),
])
def test_the_body_history_against_the_last_edit_read(name, chunks, total, since, expected):
    found = body_history(chunks, total=total, bot=BOT, since=since)
    assert (found.newest, found.since, found.bot_last, found.others_after_bot) == expected


def body(checked: bool | None) -> str:
    """A body after an edit: the controls with the box as ``checked`` (None: its line deleted)."""
    line = "the box line was deleted" if checked is None else f"- [{'x' if checked else ' '}] {PAUSE_BOX}"
    return f"<!-- mlr-action:dashboard {{}} -->\n### Controls\n\n{line}\n\nmore text\n"


@pytest.mark.parametrize("name,revisions,base,expected", [
    ("checked, then unchecked", [("alice", True), ("app[bot]", False)], False,
     [box(True, "alice"), box(False, "app[bot]")]),
    ("an edit elsewhere changes nothing", [("mallory", False), ("alice", True)], False, [box(True, "alice")]),
    ("the bot's write keeps a click", [("alice", True), (BOT, True)], False, [box(True, "alice")]),
    ("a deleted line, then put back", [("app[bot]", None), ("alice", True)], False, [box(True, "alice")]),
    ("no base: the first box read is the start", [("alice", True), ("tri", False)], None, [box(False, "tri")]),
])
def test_who_checked_the_box_is_read_from_each_revision(name, revisions, base, expected):
    texts = [(who, body(checked)) for who, checked in revisions]
    assert box_changes(texts, base=base) == expected


def test_a_revision_github_does_not_give_leaves_the_box_unknown():
    assert box_changes([("alice", body(True)), ("app[bot]", None)], base=False) is None
