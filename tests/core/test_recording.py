"""The one builder of runs/ commit messages: the subject says what this commit adds, the body every added event."""

from __future__ import annotations

import pytest

from mlr_action.core.recording import SUBJECT_CHARS, commit_message

DONE, SUBMITTED = "iter 2 completed: eval_accuracy=0.91 (keep)", "iter 3 submitted 6745aa00bb11cc22 (a10g-large, 1h)"
RESERVED = "llm: reserved $0.2083 for this tick's calls to claude-sonnet-5-5 (settled by the row that records them)"


@pytest.mark.parametrize("events, since, before, subject", [
    ([], 0, None, "mlr: update runs/"),
    (["iter 3 submitted 6745abc (a10g-large, 1h)"], 0, None, "mlr: iter 3 submitted 6745abc (a10g-large, 1h)"),
    ([SUBMITTED], 0, None, "mlr: iter 3 submitted 6745… (a10g-large, 1h)"),  # a long job id is shortened
    (["iter 2 completed: eval_accuracy=0.9 (keep)", "iter 3 failed: OOM"], 0, None,
     "mlr: iter 2 completed: eval_accuracy=0.9 (keep); iter 3 failed: OOM"),
    ([DONE, SUBMITTED], 0, None, "mlr: iter 2 completed: eval_accuracy=0.91 (keep) (+1 more)"),
    ([RESERVED, "stopped (budget): max_jobs reached"], 0, None, "mlr: stopped (budget): max_jobs reached (+1 more)"),
    (["x" * 200], 0, None, "mlr: " + "x" * (SUBJECT_CHARS - 6) + "…"),
    # In the middle of a step: what it is about to do, then what it did since its last publish.
    ([DONE, RESERVED], 0, "calling the LLM", "mlr: record before calling the LLM: iter 2 completed: eval_ac… (+1 more)"),
    ([DONE, RESERVED, "llm: iter 3: proposed (1 call)"], 2, "submitting 1 job(s)",
     "mlr: record before submitting 1 job(s): llm: iter 3: proposed (1 call)"),
    ([DONE, RESERVED], 2, "submitting 1 job(s)", "mlr: record before submitting 1 job(s)"),
    # At the end of a step that published before: only what came after.
    ([DONE, RESERVED, SUBMITTED], 2, None, "mlr: iter 3 submitted 6745… (a10g-large, 1h)"),
    ([DONE, RESERVED], 2, None, "mlr: update runs/"),
])
def test_the_subject_says_what_this_commit_adds(events, since, before, subject):
    message = commit_message(events, since=since, before=before)
    assert message.splitlines()[0] == subject and len(subject) <= SUBJECT_CHARS
    added = events[since:]
    if len(added) == 1 and subject.endswith(f": {added[0]}"):
        assert f"- {added[0]}" not in message  # said in full in the subject: not again below
        assert before or message == subject + "\n"
    else:
        assert all(f"- {e}" in message for e in added)  # every added event in full, job ids whole
    assert not any(f"- {e}" in message for e in events[:since])  # an earlier commit of the step said those
    assert (f"(recorded before {before})" in message) is bool(before)
