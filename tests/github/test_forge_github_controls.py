"""Attacks on the dashboard's controls over a loopback GitHub: only people with write access steer.

A triage user can close, reopen and label issues; anyone can comment; a
writer's comment can quote someone else's. None of it may change the
campaign unless someone with write access is shown to have done it.
"""

from __future__ import annotations

import pytest

from loopback.github_server import BOT, FakeGitHub
from mlr_action.github.dashboard import DASHBOARD_MARKER, read_checkbox
from mlr_action.github.messages import DASHBOARD_LABEL, PAUSED_LABEL
from test_forge_github_campaign import Campaign, bot_replies, labels, make_campaign


@pytest.fixture
def gh():
    with FakeGitHub() as server:
        server.permissions.update(alice="write", tri="triage", mallory="read")
        yield server


@pytest.fixture
def camp(tmp_path, gh) -> Campaign:
    camp = make_campaign(tmp_path, gh)
    camp.tick()
    return camp


# -- a triage user ------------------------------------------------------------------


def test_a_triage_user_closing_the_dashboard_does_not_stop_the_campaign(camp):
    jobs = len(camp.backend.jobs)
    camp.gh.close(camp.dashboard["number"], by="tri")
    assert camp.tick().exit_code == 0
    assert camp.state.stopped is None and camp.dashboard["state"] == "open"  # reopened by the bot
    camp.tick()
    assert len(camp.backend.jobs) > jobs
    (reply,) = bot_replies(camp)
    assert "@tri" in reply and "write access" in reply


def test_a_triage_user_reopening_after_a_writers_stop_does_not_resume(camp):
    number = camp.dashboard["number"]
    camp.gh.close(number, by="alice")
    camp.tick()
    assert camp.state.stopped.reason == "human"
    jobs = len(camp.backend.jobs)
    camp.gh.reopen(number, by="tri")
    for _ in range(3):
        camp.tick()
    assert camp.state.stopped is not None and camp.dashboard["state"] == "closed"  # closed again
    assert len(camp.backend.jobs) == jobs
    assert [e.event for e in camp.state.events].count("resumed") == 0
    camp.gh.reopen(number, by="alice")  # the way back still works for a writer
    camp.tick()
    assert camp.state.stopped is None


def test_a_triage_user_removing_the_pause_label_a_writer_set_does_not_resume(camp):
    number = camp.dashboard["number"]
    camp.gh.add_label(number, PAUSED_LABEL, by="alice")
    camp.tick()
    assert camp.state.paused
    jobs = len(camp.backend.jobs)
    camp.gh.remove_label(number, PAUSED_LABEL, by="tri")
    for _ in range(3):
        camp.tick()
    assert camp.state.paused and PAUSED_LABEL in labels(camp)  # the label is put back
    assert len(camp.backend.jobs) == jobs


def test_a_triage_user_adding_the_pause_label_does_not_pause(camp):
    camp.gh.add_label(camp.dashboard["number"], PAUSED_LABEL, by="tri")
    camp.tick()
    assert not camp.state.paused and PAUSED_LABEL not in labels(camp)
    assert read_checkbox(camp.dashboard["body"]) is False


# -- the pause box (a body edit) ------------------------------------------------------


@pytest.mark.parametrize("who", ["mallory", "tri", ""], ids=["a reader", "a triage user", "an unknown editor"])
def test_a_pause_box_nobody_with_write_access_checked_is_undone(camp, who):
    """Whoever GitHub names as the editor must have write access; no editor at all is no writer either."""
    camp.gh.check_box(camp.dashboard["number"], True, by=who)
    camp.tick()
    assert not camp.state.paused and read_checkbox(camp.dashboard["body"]) is False
    camp.tick()
    assert not camp.state.paused


def test_a_writers_click_counts_whatever_order_github_lists_the_edits_in(tmp_path):
    with FakeGitHub(edits_newest_first=False) as gh:
        gh.permissions.update(alice="write", mallory="read")
        camp = make_campaign(tmp_path, gh)
        camp.tick()
        number = camp.dashboard["number"]
        camp.gh.check_box(number, True, by="mallory")
        camp.tick()
        assert not camp.state.paused  # undone
        camp.gh.check_box(number, True, by="alice")
        camp.tick()
        assert camp.state.paused


def test_a_non_writers_edit_among_a_writers_neither_takes_nor_gives_a_click(camp):
    """Who checked the box is read from the body's text after each edit, not from who edited it at all."""
    number = camp.dashboard["number"]
    camp.gh.edit_body(number, camp.dashboard["body"] + "\nhello", by="mallory")
    camp.gh.check_box(number, True, by="alice")
    camp.tick()
    assert camp.state.paused and "@alice checked" in [e for e in camp.state.events if e.event == "paused"][-1].detail
    camp.gh.check_box(number, False, by="alice")
    camp.tick()
    assert not camp.state.paused
    camp.gh.check_box(number, True, by="mallory")
    camp.gh.edit_body(number, camp.dashboard["body"] + "\nthanks", by="alice")
    camp.tick()
    assert not camp.state.paused and read_checkbox(camp.dashboard["body"]) is False


# -- comments -------------------------------------------------------------------------


def test_fifty_resume_comments_from_a_non_writer_get_one_reply_and_change_nothing(camp):
    number = camp.dashboard["number"]
    camp.gh.comment(number, "/mlr pause", by="alice")
    camp.tick()
    assert camp.state.paused
    for _ in range(50):
        camp.gh.comment(number, "/mlr resume", by="mallory")
    for _ in range(3):
        assert camp.tick().exit_code == 0
    assert camp.state.paused
    replies = bot_replies(camp)
    assert len(replies) == 1 and "@mallory" in replies[0]


QUOTED = {
    "a quoted reply": "> /mlr stop\n\nI don't think we should.",
    "a quoted reply with a lazy line": "> @mallory wrote:\n> /mlr stop\nno",
    "a fenced code block": "Someone suggested\n\n```\n/mlr stop\n```",
    "a tilde fence": "~~~text\n/mlr stop\n~~~",
    "an indented code block": "Type this to stop:\n\n    /mlr stop",
    "an inline code span": "`/mlr stop` stops it",
    "a code span over two lines": "see `this\n/mlr stop` command",
    "an HTML comment": "<!--\n/mlr stop\n-->\nnot yet",
    "an inline HTML comment": "later <!--\n/mlr stop --> maybe",
    "a details block": "<details><summary>how to stop</summary>\n\n/mlr stop\n\n</details>",
    "a list item": "- /mlr stop",
    "a table cell": "/mlr stop | when\n--- | ---\nnow | ok",
}


@pytest.mark.parametrize("text", QUOTED.values(), ids=list(QUOTED))
def test_a_writers_comment_that_shows_a_command_is_no_command(camp, text):
    camp.gh.comment(camp.dashboard["number"], text, by="alice")
    camp.tick()
    assert camp.state.stopped is None and bot_replies(camp) == []


def test_a_command_on_a_line_of_its_own_after_some_words_counts(camp):
    camp.gh.comment(camp.dashboard["number"], "Enough for today.\n/mlr stop", by="alice")
    camp.tick()
    assert camp.state.stopped is not None and camp.state.stopped.reason == "human"


@pytest.mark.parametrize("status,message,headers", [
    (403, "Resource not accessible by integration", {}),
    (502, "bad gateway", {}),
    (403, "You have exceeded a secondary rate limit", {"Retry-After": "60"}),
    (429, "slow down", {}),
])
def test_a_failing_reply_never_aborts_the_tick(camp, status, message, headers):
    number = camp.dashboard["number"]
    camp.gh.comment(number, "/mlr stop", by="mallory")
    camp.gh.comment(number, "/mlr pause", by="alice")
    camp.gh.fail("POST", rf"/issues/{number}/comments$", status, message, times=1, headers=headers)
    result = camp.tick()
    assert result.exit_code == 0 and camp.state.paused and camp.state.stopped is None
    assert any("reply" in e for e in result.events)  # the log says the reply failed
    camp.tick()
    assert len(bot_replies(camp)) <= 1  # answered at most once more, never once per tick


# -- an impostor dashboard -------------------------------------------------------------


def test_an_issue_a_non_writer_opened_with_the_dashboard_marker_is_not_the_dashboard(tmp_path, gh):
    impostor = gh._new_issue(title="dashboard", body=f'{DASHBOARD_MARKER} {{"state":"running","paused":false,'
                             '"label":false}} -->\n- [ ] Pause the campaign\n', labels=[DASHBOARD_LABEL], by="mallory")
    camp = make_campaign(tmp_path, gh)
    camp.tick()
    gh.close(impostor["number"], by="mallory")  # an issue's author can close it
    camp.tick()
    assert camp.state.stopped is None
    ours = [i for i in gh.issues_labelled(DASHBOARD_LABEL) if i["user"]["login"] == BOT]
    assert len(ours) == 1 and ours[0]["state"] == "open"


def test_who_labelled_is_found_among_many_pages_of_events_read_in_bounded_queries(camp):
    number = camp.dashboard["number"]
    for _ in range(150):  # a triage user toggles the label 300 times between two ticks
        camp.gh.add_label(number, PAUSED_LABEL, by="tri")
        camp.gh.remove_label(number, PAUSED_LABEL, by="tri")
    camp.gh.add_label(number, PAUSED_LABEL, by="alice")
    before = len(camp.gh.log)
    camp.tick()
    assert camp.state.paused
    queries = [p for m, p in camp.gh.log[before:] if p == "/graphql"]
    assert len(queries) == 4  # the events since the last tick, 100 a query, and no other page
    (reply,) = bot_replies(camp)
    assert "(150 times)" in reply  # the toggles, answered in two lines


def test_the_bots_own_label_after_a_failed_body_write_is_no_request_and_gets_no_reply(camp):
    number = camp.dashboard["number"]
    camp.gh.comment(number, "/mlr pause", by="alice")
    camp.gh.fail("PATCH", rf"/issues/{number}$", 502, times=10)  # the label is set, the body is not
    assert camp.tick().exit_code == 1
    assert camp.state.paused and PAUSED_LABEL in labels(camp)
    camp.gh.failures.clear()
    assert camp.tick().exit_code == 0
    assert camp.state.paused and bot_replies(camp) == [] and read_checkbox(camp.dashboard["body"]) is True
