"""Stop reports, escalations, redaction, and the files forge."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from programs import CAMPAIGN, program_text, with_

from mlr_action.core.budget import usage
from mlr_action.forges import make_forge
from mlr_action.forges.files import FileForge
from mlr_action.core.ledger import EventRow, ExperimentRow
from mlr_action.core.program import parse_program
from mlr_action.render.reports import ESCALATIONS, redact, render_escalation, render_stop_report
from mlr_action.render.stop_reasons import STOP_REASONS
from mlr_action.core.state import fold

T = "2025-01-02T03:04:05Z"
PROGRAM = parse_program(program_text())
NOTHING_SPENT = re.compile(r"Nothing (more )?was spent")


def exp(i: int, status: str, **fields) -> ExperimentRow:
    return ExperimentRow(iter=i, ts=T, status=status, timeout="1h", timeout_s=3600, flavor="a10g-large",
                         job_id=f"job-{i}", config={"lr": 0.001 * i, "batch_size": 8 * i}, **fields)


ROWS = [
    EventRow(event="started", ts=T, campaign="demo"),
    exp(1, "completed", metric=0.8, decision="keep", best_so_far=0.8, duration_s=1200),
    exp(2, "completed", metric=0.96, decision="keep", best_so_far=0.96, duration_s=1200,
        hub_url="https://huggingface.co/me/sweep-demo-002"),
    exp(3, "error", error="boom", decision="discard", duration_s=60),
]

# --- Stop report --------------------------------------------------------------


@pytest.mark.parametrize("reason", sorted(STOP_REASONS))
def test_stop_report_has_result_budget_and_next_steps(reason):
    state = fold([*ROWS, EventRow(event="stopped", ts=T, reason=reason, detail="the detail")])
    title, body = render_stop_report(program=PROGRAM, state=state, used=usage(state), now=T)
    assert title == f"mlr: campaign demo stopped ({STOP_REASONS[reason].short})"
    assert "The campaign `demo` stopped because " in body
    assert "**eval_accuracy: 0.96** (iter 2)" in body
    assert "config: `lr=0.002, batch_size=16`" in body
    assert "Hub: `https://huggingface.co/me/sweep-demo-002`" in body  # shown as code, never a link
    assert "**Experiments:** 3 (2 kept, 1 ended in error)." in body
    assert "**Budget used:** 3 of 12 jobs, 41m of 8h walltime" in body
    assert "> `the detail`" in body
    for step in STOP_REASONS[reason].next_steps:
        assert step in body
    assert body.rstrip().endswith(f"<sub>mlr-action · {T}</sub>")


def test_stop_report_before_the_stop_row_is_appended():
    state = fold(ROWS)
    stop = EventRow(event="stopped", ts=T, reason="target")
    title, body = render_stop_report(program=PROGRAM, state=state, used=usage(state), now=T, stop=stop)
    assert title.endswith("(target reached)")
    assert "the target was reached (eval_accuracy ≥ 0.95)" in body


def test_stop_report_without_a_result():
    state = fold([EventRow(event="started", ts=T, campaign="demo"), exp(1, "error", error="x"),
                  EventRow(event="stopped", ts=T, reason="errors")])
    _, body = render_stop_report(program=PROGRAM, state=state, used=usage(state), now=T)
    assert "No experiment produced a result that was kept." in body
    assert "experiments kept failing" in body


def test_every_stop_reason_used_by_the_step_has_words():
    assert set(STOP_REASONS) == {"target", "budget", "patience", "errors", "exhausted", "human"}
    for reason in STOP_REASONS.values():
        assert reason.short and reason.words and reason.next_steps


# --- Escalations --------------------------------------------------------------

ESCALATION_CASES = {
    "invalid-program": (["max_jobs: missing (add it)", "flavor: 'a10g' is not an HF Jobs flavor"], "mlr validate"),
    "envelope-breach": (["max_jobs=12 reached (12 already submitted)"], "Budget envelope"),
    "unrecoverable-error": (["401 Unauthorized: check HF_TOKEN"], "HF_TOKEN"),
    "ledger": (["runs/ledger.jsonl:4 is not valid JSON (Expecting value)"], "git log -p runs/ledger.jsonl"),
    "publish-failed": (["runs/ could not be published: protected branch (GH006)"], "`ledger-branch`"),
}


@pytest.mark.parametrize("kind, problems, fix", [(k, *v) for k, v in ESCALATION_CASES.items()], ids=list(ESCALATION_CASES))
def test_escalation_names_problems_and_says_nothing_was_spent(kind, problems, fix):
    title, body = render_escalation(kind=kind, problems=problems, now=T)
    assert title.startswith("mlr: ")
    for problem in problems:
        assert f"- `{problem}`" in body  # a problem may quote a job, an LLM or the ledger: shown as code
    assert NOTHING_SPENT.search(body)
    assert "**What to do:**" in body and fix in body
    assert T in body


def test_escalation_kinds_are_the_documented_ones():
    assert set(ESCALATIONS) == set(ESCALATION_CASES)
    with pytest.raises(ValueError, match="unknown escalation kind"):
        render_escalation(kind="oops", problems=[], now=T)


def test_escalation_detail_is_redacted_and_fenced():
    token = "hf_" + "x" * 34
    detail = "\n".join(f"log {i}" for i in range(100)) + f"\n```\nAuthorization: Bearer {token}"
    _, body = render_escalation(kind="unrecoverable-error", problems=[f"bad token {token}"], now=T, detail=detail)
    assert token not in body and "bad token ***" in body
    assert "log 99" in body and "log 10\n" not in body  # only the tail of a long log
    # A fence longer than any backtick run in the log, so the log cannot close it.
    assert re.findall(r"^`{3,}", body, re.M) == ["````", "```", "````"]


def test_escalation_is_deterministic():
    first = render_escalation(kind="ledger", problems=["x"], now=T)
    assert first == render_escalation(kind="ledger", problems=["x"], now=T)


# --- Redaction ----------------------------------------------------------------

REDACT_CASES = {
    "hugging face": ("token hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567 rejected", "token *** rejected"),
    "github classic": ("ghp_" + "A1" * 18 + " expired", "*** expired"),
    "github oauth": ("x gho_" + "b" * 36, "x ***"),
    "github app": ("GITHUB=ghs_" + "c" * 36, "GITHUB=***"),
    "github fine-grained": ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "***"),
    "anthropic": ("key sk-ant-api03-AbC_dEf-123456789 is bad", "key *** is bad"),
    "bearer header": ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz", "Authorization: Bearer ***"),
    "ordinary words": ("hf_jobs and ghp_x and sk-ant- are not tokens", "hf_jobs and ghp_x and sk-ant- are not tokens"),
    "empty": ("", ""),
}


@pytest.mark.parametrize("text, expected", REDACT_CASES.values(), ids=REDACT_CASES.keys())
def test_redact_patterns(text, expected, monkeypatch):
    for name in ("HF_TOKEN", "GITHUB_TOKEN", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert redact(text) == expected


@pytest.mark.parametrize("name", ["HF_TOKEN", "GITHUB_TOKEN", "ANTHROPIC_API_KEY"])
def test_redact_env_values(name, monkeypatch):
    monkeypatch.setenv(name, "plain-secret-42")
    assert redact("got plain-secret-42 twice: plain-secret-42") == "got *** twice: ***"


def test_short_env_values_are_not_masked(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "12345678")
    assert redact("iteration 12345678") == "iteration 12345678"


# --- Forges -------------------------------------------------------------------


def test_file_forge_paths(tmp_path):
    forge = FileForge(tmp_path)
    assert forge.publish_stop_report(title="Stopped", body="done") == tmp_path / "runs" / "stop-report.md"
    path = forge.publish_escalation(kind="invalid-program", title="Invalid", body="fix it\n")
    assert path == tmp_path / "runs" / "escalations" / "invalid-program.md"
    assert path.read_text() == "# Invalid\n\nfix it\n"


def test_file_forge_is_idempotent(tmp_path):
    forge = FileForge(tmp_path)
    first = forge.publish_stop_report(title="t", body="b")
    stamp = first.stat().st_mtime_ns
    os.utime(first, ns=(stamp - 10**9, stamp - 10**9))
    assert forge.publish_stop_report(title="t", body="b") == first
    assert first.stat().st_mtime_ns == stamp - 10**9  # same content: not rewritten
    for n in range(3):
        forge.publish_escalation(kind="ledger", title="t", body=f"attempt {n}")
    files = sorted(p.name for p in (tmp_path / "runs" / "escalations").iterdir())
    assert files == ["ledger.md"]
    assert (tmp_path / "runs" / "escalations" / "ledger.md").read_text().endswith("attempt 2\n")


def test_file_forge_writes_atomically(tmp_path, monkeypatch):
    forge = FileForge(tmp_path)
    path = forge.publish_stop_report(title="old", body="old")

    def broken_replace(src, dst, **where):  # safepath renames within one folder descriptor
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        forge.publish_stop_report(title="new", body="new")
    assert path.read_text() == "# old\n\nold\n"
    assert [p.name for p in path.parent.iterdir()] == ["stop-report.md"]  # no temporary file left


def test_file_forge_rejects_path_like_kinds(tmp_path):
    with pytest.raises(ValueError):
        FileForge(tmp_path).publish_escalation(kind="../x", title="t", body="b")


def test_file_forge_resolves_escalations(tmp_path):
    forge = FileForge(tmp_path)
    forge.publish_escalation(kind="ledger", title="t", body="b")
    assert forge.resolve_escalation(kind="ledger") is True
    assert forge.resolve_escalation(kind="ledger") is False


def test_make_forge(tmp_path):
    forge = make_forge("none", root=tmp_path)
    assert isinstance(forge, FileForge) and forge.root == Path(tmp_path)
    with pytest.raises(ValueError, match="unknown forge"):
        make_forge("gitlab", root=tmp_path)


def test_a_budget_stop_promises_a_final_evaluation_only_when_program_md_has_one():
    final = parse_program(program_text(campaign=with_(CAMPAIGN, final={"repeats": 1})))
    state = fold([*ROWS, EventRow(event="stopped", ts=T, reason="budget", detail="max_jobs=12 reached")])
    _, without = render_stop_report(program=PROGRAM, state=state, used=usage(state), now=T)
    assert "kept for the final evaluation" not in without, without
    assert "kept in reserve" in without and "`final` block" in without  # what is left stays unspent, and how to use it
    _, with_final = render_stop_report(program=final, state=state, used=usage(state), now=T)
    assert "kept for the final evaluation" in with_final
