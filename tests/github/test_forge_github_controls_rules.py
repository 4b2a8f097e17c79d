"""The controls' rules as data (table-driven): what a comment commands, who made a control, which rows follow."""

from __future__ import annotations

import pytest

from mlr_action.github.controls import control_rows, find_command, logins_to_check
from mlr_action.github.history import BOX, CLOSE, LABEL, REOPEN, asked, body_editors, event_actors
from mlr_action.github.dashboard import Command, Dashboard, Shown
from mlr_action.github.messages import PAUSED_LABEL, REPLY_LINES
from mlr_action.core.ledger import EventRow
from mlr_action.core.state import CampaignState, fold

TS = "2026-01-01T00:00:00+00:00"
BOT = "github-actions[bot]"


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


def dash(shown=SHOWN_RUNNING, *, open=True, checkbox=None, label=None, commands=(), replied=(), by="alice", made_by=None):
    """A dashboard; every control that changed was made ``by`` that login unless ``made_by`` says otherwise."""
    return Dashboard(
        number=7, open=open, shown=shown,
        checkbox=(shown.paused if shown else False) if checkbox is None else checkbox,
        label=(shown.label if shown else False) if label is None else label,
        commands=tuple(commands), replied=frozenset(replied),
        last_comment=max((c.comment_id for c in commands), default=0),
        made_by={c: (by,) if by else () for c in (CLOSE, REOPEN, LABEL, BOX)} if made_by is None else made_by,
    )


def events(controls) -> list[tuple[str, str]]:
    return [(r.event, r.reason) for r in controls.rows]


WRITERS = {"alice", "bob"}
CASES = [
    # (name, dashboard, state, writers, expected rows)
    ("nothing changed", dash(), RUNNING, WRITERS, []),
    ("box checked", dash(checkbox=True), RUNNING, WRITERS, [("paused", "human")]),
    ("label added", dash(label=True), RUNNING, WRITERS, [("paused", "human")]),
    ("box unchecked", dash(SHOWN_PAUSED, checkbox=False), PAUSED, WRITERS, [("resumed", "human")]),
    ("label removed", dash(SHOWN_PAUSED, label=False), PAUSED, WRITERS, [("resumed", "human")]),
    ("conflict: pausing wins", dash(Shown("running", label=True), checkbox=True, label=False), RUNNING, WRITERS,
     [("paused", "human")]),
    ("already paused by the ledger", dash(checkbox=True), PAUSED, WRITERS, []),
    ("not mirrored yet is no request", dash(SHOWN_RUNNING), PAUSED, WRITERS, []),
    ("closed while running", dash(open=False), RUNNING, WRITERS, [("stopped", "human")]),
    ("closed while paused", dash(SHOWN_PAUSED, open=False), PAUSED, WRITERS, [("stopped", "human")]),
    ("closed after a target stop", dash(SHOWN_TARGET, open=False), TARGET_STOP, WRITERS, []),
    ("closed, resumed by program.md", dash(SHOWN_TARGET, open=False), RUNNING, WRITERS, []),
    ("reopened after a human stop", dash(SHOWN_HUMAN, open=True), HUMAN_STOP, WRITERS, [("resumed", "human")]),
    ("open, human stop not mirrored", dash(SHOWN_RUNNING, open=True), HUMAN_STOP, WRITERS, []),
    ("box checked while stopped", dash(SHOWN_TARGET, checkbox=True), TARGET_STOP, WRITERS, []),
    # made by someone without write access, or by nobody GitHub names: nothing, a pause included
    ("box checked by a reader", dash(checkbox=True, by="mallory"), RUNNING, WRITERS, []),
    ("box checked, no editor named", dash(checkbox=True, by=""), RUNNING, WRITERS, []),
    ("box checked by a writer and a reader", dash(checkbox=True, made_by={BOX: ("alice", "mallory")}), RUNNING,
     WRITERS, []),
    ("box checked by two writers", dash(checkbox=True, made_by={BOX: ("alice", "bob")}), RUNNING, WRITERS,
     [("paused", "human")]),
    ("label added by a triage user", dash(label=True, by="tri"), RUNNING, WRITERS, []),
    ("label removed by a triage user", dash(SHOWN_PAUSED, label=False, by="tri"), PAUSED, WRITERS, []),
    ("closed by a triage user", dash(open=False, by="tri"), RUNNING, WRITERS, []),
    ("closed, no actor named", dash(open=False, by=""), RUNNING, WRITERS, []),
    ("reopened by a triage user", dash(SHOWN_HUMAN, open=True, by="tri"), HUMAN_STOP, WRITERS, []),
    ("a reader's box does not win over a writer's label",
     dash(Shown("paused", paused=True, label=True), checkbox=True, label=False,
          made_by={BOX: ("mallory",), LABEL: ("alice",)}), PAUSED, WRITERS, [("resumed", "human")]),
    # comments
    ("/mlr stop from a writer", dash(commands=[Command(5, "alice", "stop")]), RUNNING, WRITERS, [("stopped", "human")]),
    ("/mlr stop from a reader", dash(commands=[Command(5, "mallory", "stop")]), RUNNING, WRITERS, []),
    ("/mlr stop when stopped", dash(SHOWN_TARGET, commands=[Command(5, "alice", "stop")]), TARGET_STOP, WRITERS, []),
    ("/mlr pause", dash(commands=[Command(5, "alice", "pause")]), RUNNING, WRITERS, [("paused", "human")]),
    ("/mlr resume a pause", dash(SHOWN_PAUSED, commands=[Command(5, "alice", "resume")]), PAUSED, WRITERS,
     [("resumed", "human")]),
    ("/mlr resume a human stop", dash(SHOWN_HUMAN, open=False, commands=[Command(5, "alice", "resume")]), HUMAN_STOP,
     WRITERS, [("resumed", "human")]),
    ("/mlr resume a target stop", dash(SHOWN_TARGET, commands=[Command(5, "alice", "resume")]), TARGET_STOP, WRITERS, []),
    ("command already seen", dash(Shown("running", seen=5), commands=[Command(5, "alice", "stop")]), RUNNING, WRITERS, []),
    ("command already answered", dash(commands=[Command(5, "mallory", "stop")], replied=[5]), RUNNING, WRITERS, []),
    ("marker gone: only commands", dash(None, open=False, checkbox=True, commands=[Command(5, "alice", "pause")]),
     RUNNING, WRITERS, [("paused", "human")]),
    ("stop then pause in one tick", dash(commands=[Command(5, "alice", "stop"), Command(6, "alice", "pause")]), RUNNING,
     WRITERS, [("stopped", "human")]),
]


@pytest.mark.parametrize("name,dashboard,state,writers,expected", CASES, ids=[c[0] for c in CASES])
def test_controls_become_rows(name, dashboard, state, writers, expected):
    assert events(control_rows(dashboard, state, writers=writers, ts=TS)) == expected


def test_a_command_in_the_ledger_is_not_acted_on_again():
    state = state_of("stopped", reason="human", comment_id=5)
    resumed = fold([*state.events, EventRow(event="resumed", ts=TS, reason="human")])
    out = control_rows(dash(commands=[Command(5, "alice", "stop")]), resumed, writers=WRITERS, ts=TS)
    assert out.rows == []


def test_rows_say_who_and_how():
    (row,) = control_rows(dash(open=False), RUNNING, writers=WRITERS, ts=TS).rows
    assert row.detail == "@alice closed the dashboard issue #7" and getattr(row, "by") == "alice"
    (row,) = control_rows(dash(checkbox=True), RUNNING, writers=WRITERS, ts=TS).rows
    assert row.detail == "@alice checked the pause box on the dashboard issue #7" and getattr(row, "control") == BOX
    out = control_rows(dash(commands=[Command(9, "bob", "stop")]), RUNNING, writers=WRITERS, ts=TS)
    assert getattr(out.rows[0], "comment_id") == 9 and "@bob" in out.rows[0].detail
    assert out.seen == 9 and out.reply is None


def test_a_reader_gets_one_reply_and_is_never_obeyed():
    out = control_rows(dash(commands=[Command(5, "mallory", "stop")]), RUNNING, writers=WRITERS, ts=TS)
    assert out.rows == []
    assert out.reply.startswith("@mallory only people with write access") and "<!-- mlr-action:reply 5 -->" in out.reply
    assert "\n/mlr" not in out.reply  # a reply can never read as a command


def test_everything_ignored_in_a_tick_gets_one_reply():
    commands = [Command(i, "mallory", "resume") for i in range(10, 60)] + [Command(70, "eve", "stop")]
    out = control_rows(dash(label=True, by="tri", commands=commands), RUNNING, writers=WRITERS, ts=TS)
    assert out.rows == []
    assert out.reply.count("@mallory") == 1 and "(50 times)" in out.reply and "@eve" in out.reply
    assert f"@tri added the `{PAUSED_LABEL}` label to this issue" in out.reply
    assert "<!-- mlr-action:reply 10 11 " in out.reply and " 70 -->" in out.reply
    assert any("@tri added" in note for note in out.ignored)
    assert len(out.ignored) == 3  # one line for the label, one per person and command


def test_a_reply_names_a_bounded_number_of_people():
    commands = [Command(i, f"user{i}", "stop") for i in range(1, 31)]
    out = control_rows(dash(commands=commands), RUNNING, writers=WRITERS, ts=TS)
    assert out.reply.count("@user") == REPLY_LINES and f"and {30 - REPLY_LINES} more" in out.reply


def test_the_bots_own_write_is_no_request_and_gets_no_reply():
    d = dash(label=True, made_by={LABEL: (BOT,)})
    d = Dashboard(**{**d.__dict__, "bot": BOT})
    out = control_rows(d, RUNNING, writers=WRITERS, ts=TS)
    assert out.rows == [] and out.reply is None and out.ignored == ()
    out = control_rows(d, RUNNING, writers={*WRITERS, BOT}, ts=TS)  # a person's token: its owner may write
    assert events(out) == [("paused", "human")]


def test_an_unnamed_maker_is_said_so():
    out = control_rows(dash(open=False, by=""), RUNNING, writers=WRITERS, ts=TS)
    assert "someone GitHub does not name closed this issue" in out.reply


# -- what a comment commands -------------------------------------------------------------

COMMANDS = [
    ("/mlr stop", "stop"),
    ("  /MLR Pause please", "pause"),
    ("Enough for today.\n/mlr stop", "stop"),
    ("Looks expensive.\n/mlr stop\nthanks", "stop"),
    ("first\n\n/mlr resume", "resume"),
    ("\\/mlr stop", "stop"),  # an escaped slash still reads "/mlr stop"
    ("a line  \n/mlr pause", "pause"),  # after a hard break
    ("<details><summary>x</summary>\n\nhidden\n\n</details>\n\n/mlr stop", "stop"),  # after the block closed
    ("/mlr stopping", None),
    ("I think /mlr stop is wrong", None),
    ("> /mlr stop", None),
    ("> quoted\n/mlr stop", None),  # a lazy continuation line is still in the quote
    ("```\n/mlr stop\n```", None),
    ("    /mlr stop", None),
    ("`/mlr stop`", None),
    ("see `this\n/mlr stop` x", None),
    ("<!-- /mlr stop -->", None),
    ("<!--\n\n/mlr stop\n\n-->", None),
    ("a <!--\n/mlr stop --> b", None),
    ("<details>\n\n/mlr stop\n\n</details>", None),
    ("<div>\n<details>\n\n/mlr stop\n\n</details>\n</div>", None),
    ("some <b>bold</b> words\n/mlr stop", "stop"),
    ("text <details>\n/mlr stop", None),  # inside the element the paragraph opened
    ("- /mlr stop", None),
    ("1. /mlr stop", None),
    ("/mlr stop | x\n--- | ---\na | b", None),
    ("**/mlr stop**", None),
    ("[/mlr stop](https://example.invalid)", None),
    ("# /mlr stop", None),
]


@pytest.mark.parametrize("text,verb", COMMANDS, ids=[t for t, _ in COMMANDS])
def test_only_a_plain_line_of_a_top_level_paragraph_is_a_command(text, verb):
    assert find_command(text) == verb


# -- who made a control -----------------------------------------------------------------


def ev(*items):
    return list(items)


@pytest.mark.parametrize("name,d,wanted,newest_first,expected", [
    ("the last close", dash(open=False), {CLOSE}, ev(("closed", "tri", ""), ("reopened", "alice", ""),
                                                     ("closed", "alice", "")), {CLOSE: ("tri",)}),
    ("a reopen newer than the close", dash(SHOWN_HUMAN, open=True), {REOPEN},
     ev(("labeled", "x", "other"), ("reopened", "tri", ""), ("closed", "alice", "")), {REOPEN: ("tri",)}),
    ("the issue is closed but the last event is a reopen", dash(open=False), {CLOSE},
     ev(("reopened", "alice", "")), {CLOSE: ()}),
    ("the label's last event", dash(label=True), {LABEL},
     ev(("labeled", "tri", PAUSED_LABEL), ("unlabeled", "alice", PAUSED_LABEL)), {LABEL: ("tri",)}),
    ("another label is not ours", dash(label=True), {LABEL},
     ev(("labeled", "tri", "bug"), ("labeled", "alice", PAUSED_LABEL)), {LABEL: ("alice",)}),
    ("the label is there but its last event removed it", dash(label=True), {LABEL},
     ev(("unlabeled", "alice", PAUSED_LABEL)), {LABEL: ()}),
    ("no event at all", dash(open=False), {CLOSE}, ev(), {}),
    ("a deleted account", dash(open=False), {CLOSE}, ev(("closed", "", "")), {CLOSE: ()}),
])
def test_who_made_an_issue_control(name, d, wanted, newest_first, expected):
    assert event_actors(newest_first, wanted=wanted, dash=d) == expected


def test_events_are_read_only_as_far_as_needed():
    read = []

    def events():
        for i in range(1000):
            read.append(i)
            yield ("labeled", "alice", PAUSED_LABEL) if i == 2 else ("commented", "x", "")

    assert event_actors(events(), wanted={LABEL}, dash=dash(label=True)) == {LABEL: ("alice",)}
    assert len(read) == 3
    assert event_actors(events(), wanted={CLOSE}, dash=dash(open=False), limit=50) == {}  # gave up: nobody named


def e(n: int, who: str) -> tuple[str, str, str]:
    return (f"id{n}", f"2026-01-01T00:00:{n:02d}Z", who)


@pytest.mark.parametrize("name,chunks,total,kept,expected", [
    ("after the bot's last write", [[e(1, BOT), e(2, "alice"), e(3, BOT), e(4, "mallory")]], 4, False, ("mallory",)),
    ("several people", [[e(1, BOT), e(2, "alice"), e(3, "mallory"), e(4, "alice")]], 4, False, ("alice", "mallory")),
    ("newest first, twice over", [[e(4, "alice"), e(3, BOT), e(2, "mallory")], [e(4, "alice"), e(3, BOT)]], 3, False,
     ("alice",)),
    ("a kept click reaches back one write", [[e(1, BOT), e(2, "mallory"), e(3, BOT)]], 3, True, ("mallory",)),
    ("never written by the bot, all there", [[e(1, "alice")]], 1, False, ("alice",)),
    ("no person since the bot wrote", [[e(1, "alice"), e(2, BOT)]], 2, False, (BOT,)),
    ("a person's token runs the bot: their click is the bot's login", [[e(1, "owner"), e(2, "owner")]], 2, False,
     ("owner",)),
    ("the same second as the bot's write", [[e(1, BOT), ("x", "2026-01-01T00:00:01Z", "mallory")]], 2, False,
     ("mallory",)),
    ("too many edits to reach the bot's", [[e(1, BOT)], [e(8, "alice"), e(9, "alice")]], 60, False, ()),
    ("a gap, but the bot's write is in the newest chunk", [[e(1, "mallory")], [e(8, BOT), e(9, "alice")]], 60, False,
     ("alice",)),
    ("a deleted account", [[e(1, BOT), e(2, "")]], 2, False, ("",)),
])
def test_who_edited_the_body(name, chunks, total, kept, expected):
    bot = "owner" if "token" in name else BOT
    assert body_editors(chunks, total=total, bot=bot, kept=kept) == expected


def test_the_logins_to_check_are_the_makers_and_the_pending_commenters():
    d = dash(checkbox=True, made_by={BOX: ("alice", ""), LABEL: ("tri",)},
             commands=[Command(3, "mallory", "stop")])
    assert logins_to_check(d, RUNNING) == {"alice", "tri", "mallory"}


@pytest.mark.parametrize("name,d,state,expected", [
    ("nothing changed", dash(), RUNNING, set()),
    ("closed while running", dash(open=False), RUNNING, {CLOSE}),
    ("closed after a stop", dash(SHOWN_TARGET, open=False), TARGET_STOP, set()),
    ("reopened after a human stop", dash(SHOWN_HUMAN), HUMAN_STOP, {REOPEN}),
    ("box and label", dash(checkbox=True, label=True), RUNNING, {BOX, LABEL}),
    ("marker gone", dash(None, open=False, checkbox=True), RUNNING, set()),
])
def test_makers_are_looked_up_only_for_what_changed(name, d, state, expected):
    assert asked(d, state) == expected


def test_a_writers_comment_is_parsed_and_a_readers_is_only_answered():
    quoted = [Command(5, "alice", "stop", "> /mlr stop\n\nno"), Command(6, "mallory", "stop", "```\n/mlr stop\n```")]
    out = control_rows(dash(commands=quoted), RUNNING, writers=WRITERS, ts=TS)
    # The reader's comment is not parsed (what it costs to read is bounded by what writers post): any line that
    # looks like a command is answered, even one in a code block.
    assert out.rows == [] and "@alice" not in out.reply and "@mallory" in out.reply
    out = control_rows(dash(commands=[Command(5, "alice", "stop", "why\n\n/mlr pause")]), RUNNING, writers=WRITERS, ts=TS)
    assert events(out) == [("paused", "human")]  # the verb is the parsed one

