"""The program.md comment on a pull request: its text, and one comment edited in place over loopback."""

from __future__ import annotations

import pytest

from comment_server import CommentServer
from mlr_action.pr_comment import MARKER, CommentError, envelope_changes, render_validation, upsert_comment
from mlr_action.program import parse_program
from programs import CAMPAIGN, ENVELOPE, program_text, with_


def program(**envelope):
    return parse_program(program_text(with_(ENVELOPE, **envelope), CAMPAIGN))


def test_a_valid_program_says_merging_approves_and_shows_the_worst_case():
    body = render_validation(path="program.md", program=program(), sha="abcdef123456")
    assert body.startswith(MARKER)
    assert "merging this pull request approves this budget" in body
    assert "at most 12 jobs, 8h of job walltime" in body
    assert "max_timeout" in body and "abcdef1" in body


def test_changes_against_the_approved_envelope_are_listed():
    approved, proposed = program(), program(max_jobs=20, max_walltime="10h")
    assert envelope_changes(approved, proposed)[:2] == ["`max_jobs`: 12 → 20", "`max_walltime`: 8h → 10h"]
    assert envelope_changes(approved, proposed)[2].startswith("worst case: 8h")
    body = render_validation(path="program.md", program=proposed, approved=approved, base="main")
    assert "**Changes to the envelope approved on `main`:**" in body and "`max_jobs`: 12 → 20" in body
    same = render_validation(path="program.md", program=approved, approved=approved, base="main")
    assert "The envelope is the one already approved on `main`." in same
    first = render_validation(path="program.md", program=approved, base="main")
    assert "has no approved program.md yet" in first


def test_an_invalid_program_lists_every_problem_in_a_fence_that_cannot_be_broken():
    body = render_validation(path="program.md", problems=["max_jobs: must be > 0", "weird ``` backticks"])
    assert "❌ `program.md` is not valid" in body
    assert "- max_jobs: must be > 0" in body
    assert "````text" in body  # a longer fence than any backticks inside


def test_one_comment_is_created_then_edited_in_place():
    with CommentServer(page_size=2) as server:
        server.add(7, "a person's comment", bot=False)
        server.add(7, f"{MARKER} quoted by a person", bot=False)  # not ours: a person wrote it
        server.add(7, "another", bot=False)
        kwargs = dict(api_url=server.url, repo="me/repo", number=7, token="t0ken")
        assert upsert_comment(body=f"{MARKER}\nfirst", **kwargs) == "created"
        assert upsert_comment(body=f"{MARKER}\nfirst", **kwargs) == "unchanged"
        assert upsert_comment(body=f"{MARKER}\nsecond", **kwargs) == "updated"
        ours = [c for c in server.comments[7] if c["user"]["type"] == "Bot"]
        assert [c["body"] for c in ours] == [f"{MARKER}\nsecond"]
        assert len(server.comments[7]) == 4
        assert any("page=2" in path for _, path, _ in server.requests)  # it read past the first page


def test_a_read_only_token_says_what_happened_and_what_to_do():
    with CommentServer(deny=True) as server:
        with pytest.raises(CommentError, match="fork"):
            upsert_comment(api_url=server.url, repo="me/repo", number=1, token="t0ken", body=MARKER)
    with pytest.raises(CommentError, match="no github-token"):
        upsert_comment(api_url="http://127.0.0.1:9", repo="me/repo", number=1, token="", body=MARKER)


def test_an_unreachable_api_is_an_error_with_no_token_in_it():
    with pytest.raises(CommentError) as caught:
        upsert_comment(api_url="http://127.0.0.1:9", repo="me/repo", number=1, token="s3cret-token", body=MARKER)
    assert "s3cret-token" not in str(caught.value)
