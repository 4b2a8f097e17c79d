"""The words mlr-action says to people: stop reports, escalations, and their shared pieces.

Guarantees:

- Pure rendering: no clock reads and no I/O. ``now`` is passed in (an aware
  datetime or an ISO string) and only printed, so the same inputs give the
  same text.
- User-facing messages live together so they can be read as a set:
  :data:`ESCALATIONS` here (what went wrong, what was spent, how to fix it),
  and the stop reasons in :mod:`mlr_action.render.stop_reasons` (why a
  campaign stopped, and what the user can do about it). The final writeup
  (:func:`final_writeup`) is shared with :mod:`mlr_action.render.summary`.
- Every string that comes from outside (errors, hypotheses, configs, Hub
  URLs, log tails, validation problems) passes through
  :func:`mlr_action.core.redaction.redact` before it is rendered, so no token
  reaches a file, an issue or a comment; and it is shown, never rendered:
  as code, a fenced block or a word that cannot render
  (:mod:`mlr_action.core.markup`). A Hub URL is shown as code, never as a link.
- Every escalation says truthfully what the step spent: that it spent nothing
  (jobs already in flight run to their end), or, when it submitted a job or
  paid for an LLM call before the error, exactly that (:func:`mlr_action.core.spent.spent_text`);
  and what the user can do.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from mlr_action.core.budget import Usage
from mlr_action.core.durations import format_duration
from mlr_action.core.ledger import EventRow, ExperimentRow
from mlr_action.core.markup import block, code, plain
from mlr_action.core.program import Program
from mlr_action.core.redaction import redact
from mlr_action.core.spent import NOTHING_SPENT
from mlr_action.core.state import CampaignState
from mlr_action.core.metric import format_metric
from mlr_action.render.stop_reasons import goal_words, next_steps, stop_reason_short, stop_reason_text
from mlr_action.render.words import format_now, format_usd, shown_config, shorten, tail


def campaign_name(program: Program, state: CampaignState) -> str:
    return state.campaign_id or program.campaign.name or "campaign"


# --- The final writeup, shared by the summary and the stop report -------------


def experiments_line(state: CampaignState) -> str:
    """``5 (2 kept, 1 ended in error, 1 still in flight)``."""
    experiments = list(state.experiments.values())
    total = len(experiments)
    parts = [f"{sum(1 for e in experiments if e.decision == 'keep')} kept"]
    errored = sum(1 for e in experiments if e.status == "error")
    if errored:
        parts.append(f"{errored} ended in error")
    flying = sum(1 for e in state.in_flight if e.final_of is None)
    if flying:
        parts.append(f"{flying} still in flight")
    return f"{total} ({', '.join(parts)})"


def budget_spent_line(program: Program, used: Usage) -> str:
    env = program.envelope
    parts = [
        f"{used.jobs} of {env.max_jobs} jobs",
        f"{format_duration(used.walltime_s)} of {format_duration(env.max_walltime)} walltime",
        format_usd(used.cost_usd)
        + (f" of {format_usd(env.max_cost_usd)}" if env.max_cost_usd is not None else "")
        + " for hardware",
    ]
    if used.llm_usd or env.max_llm_usd:
        parts.append(
            f"{format_usd(used.llm_usd)} on LLM calls"
            + (f" of {format_usd(env.max_llm_usd)}" if env.max_llm_usd is not None else "")
        )
    return ", ".join(parts)


def result_lines(program: Program, best: ExperimentRow | None, state: CampaignState | None = None) -> list[str]:
    """The best result as Markdown bullets, or one line saying there is none.

    With ``state`` (once stopped), the final evaluation's mean and spread stand next to the search metric.
    """
    if best is None:
        return ["No experiment produced a result that was kept."]
    from mlr_action.render.final_report import result_line

    final = result_line(program, state) if state is not None else None
    lines = [
        f"- **{program.campaign.metric}: {format_metric(best.metric)}** (iter {best.iter}, in the search)"
        if final else f"- **{program.campaign.metric}: {format_metric(best.metric)}** (iter {best.iter})",
        *([final] if final else []),
        f"- config: {shown_config(best.config)}",
    ]
    if best.hub_url:
        lines.append(f"- Hub: {code(redact(best.hub_url))}")
    from mlr_action.render.provenance import code_of

    ran = code_of(best)
    if ran:
        lines.append(f"- code: {ran} (`mlr reproduce {best.iter}` prints its job; "
                     f"`mlr reproduce {best.iter} --run` runs it again)")
    return lines


def final_writeup(program: Program, state: CampaignState, used: Usage, *, final_section: bool = False,
                  prices: dict[str, float] | None = None) -> list[str]:
    """Markdown lines: the result, what was run, what it cost, what to do next.

    ``final_section``: the final evaluation as a section of its own (the stop report; the summary has its own).
    """
    from mlr_action.render.final_report import HEADING, confirmation
    from mlr_action.render.final_report import final_section as final_lines

    reason = state.stopped.reason if state.stopped else ""
    lines = ["**Result**", "", *result_lines(program, state.best, state), ""]
    confirmed = confirmation(program, state)
    lines += [confirmed, ""] if confirmed else []
    lines += [f"**Experiments:** {experiments_line(state)}.", ""]
    lines += [f"**Budget used:** {budget_spent_line(program, used)}.", ""]
    section = final_lines(program, state, prices) if final_section else []
    if section:
        lines += [f"### {HEADING}", "", *section, ""]
    lines += ["**What you can do next**", ""]
    lines += [f"- {step}" for step in next_steps(reason)]
    return lines


def _footer(now: datetime | str) -> str:
    return f"<sub>mlr-action · {plain(format_now(now))}</sub>"


def render_stop_report(
    *,
    program: Program,
    state: CampaignState,
    used: Usage,
    now: datetime | str,
    stop: EventRow | None = None,
    prices: dict[str, float] | None = None,
) -> tuple[str, str]:
    """Title and Markdown body of the stop report, with the final evaluation as a section of its own.

    ``stop`` is the ``stopped`` event; by default the one in ``state``, so the
    step may render the report before or after it appends that row.
    """
    stop = stop or state.stopped
    if stop is not None and state.stopped is not stop:
        state = replace(state, stopped=stop)
    name = campaign_name(program, state)
    reason = stop.reason if stop else ""
    title = f"mlr: campaign {plain(shorten(name, 60))} stopped ({stop_reason_short(reason)})"
    if stop is None:
        lines = [f"The campaign {code(name)} stopped."]
    else:
        lines = [f"The campaign {code(name)} stopped because {stop_reason_text(reason, program)}."]
    if stop is not None and stop.detail:
        lines += ["", f"> {code(shorten(stop.detail, 300))}"]
    if stop is not None and stop.ts:
        lines += ["", f"Stopped at {plain(stop.ts)}. Goal: {goal_words(program)}."]
    lines += ["", *final_writeup(program, state, used, final_section=True, prices=prices), ""]
    lines.append("The full table of experiments is in `runs/summary.md`; every row is in `runs/ledger.jsonl`.")
    lines += ["", _footer(now)]
    return title, "\n".join(lines) + "\n"


# --- Escalations --------------------------------------------------------------

# kind -> (title, what happened, what was spent, what to do). Each is a
# condition the step cannot resolve on its own; the forge posts one report per
# kind and rewrites it while the condition lasts.
ESCALATIONS: dict[str, tuple[str, str, str, str]] = {
    "invalid-program": (
        "mlr: program.md is not valid",
        "program.md on the default branch does not validate, so the campaign did not run.",
        "Nothing was spent in this step: no job is submitted while program.md is invalid (jobs already in "
        "flight run to their end).",
        "Edit program.md (each problem above names the key and the fix), check it with "
        "`mlr validate`, and merge the change on the default branch. The next tick picks it up.",
    ),
    "envelope-breach": (
        "mlr: the next experiment would exceed the budget envelope",
        "The next experiment was not submitted: it would breach the budget envelope.",
        "Nothing was spent beyond the envelope: this job was refused before it was submitted.",
        "To allow it, raise the limits named above (`max_jobs`, `max_walltime`, `max_cost_usd`, "
        "`max_timeout`, `allowed_flavors`) in the `## Budget envelope` block of program.md in a "
        "pull request, and merge it: merging is the approval to spend. "
        "The bot never widens the envelope on its own.",
    ),
    "unrecoverable-error": (
        "mlr: the campaign hit an error it cannot retry",
        "The step stopped on an error that retrying will not fix.",
        "Nothing more was spent: no new job was submitted after the error (jobs already in flight run to "
        "their end).",
        "Fix the cause named above. A bad or expired token: update the `HF_TOKEN` (or "
        "`ANTHROPIC_API_KEY`) secret in the repository settings. A missing script: add it or fix "
        "`script:` in program.md and merge. The next scheduled tick tries again.",
    ),
    "publish-failed": (
        "mlr: runs/ could not be pushed, so nothing more is spent",
        "The step could not commit and push `runs/` (the ledger) before spending, and nothing is spent that "
        "cannot be recorded, so it stopped there.",
        "Nothing more was spent: no job was submitted and no LLM call made after the push failed (jobs already "
        "in flight run to their end).",
        "The push named above was refused. A protected branch (GH006, or a rule that requires pull requests): "
        "set the action's `ledger-branch` input to a branch of its own that no rule protects, such as "
        "`mlr-ledger`, so the bot never pushes to the default branch. Permission denied (403): give the "
        "workflow `permissions: contents: write`. A ledger branch someone rewrote or broke: restore it to its "
        "last good commit and let only the bot push to it. The next tick publishes the rows first, then goes on.",
    ),
    "ledger": (
        "mlr: runs/ledger.jsonl cannot be read",
        "A line of the ledger cannot be read, so the campaign state is unknown.",
        "Nothing was spent in this step: no job is submitted while the ledger cannot be read (jobs already in "
        "flight run to their end).",
        "Fix or remove the line named above in a commit; `git log -p runs/ledger.jsonl` shows how it "
        "changed. The ledger is the record of what was spent, so restoring a line from git is better "
        "than deleting it. The next tick reads it again.",
    ),
}


def render_escalation(
    *, kind: str, problems: list[str], now: datetime | str, detail: str = "", spent: str | None = None
) -> tuple[str, str]:
    """Title and Markdown body of an escalation of ``kind`` (a key of :data:`ESCALATIONS`).

    ``spent`` is :func:`spent_text` of a step that spent something before this; None (or nothing spent)
    keeps the kind's own sentence.
    """
    if kind not in ESCALATIONS:
        raise ValueError(f"unknown escalation kind {kind!r} (known: {', '.join(ESCALATIONS)})")
    title, what, spent_line, fix = ESCALATIONS[kind]
    if spent and spent != NOTHING_SPENT:
        spent_line = f"{spent[0].upper()}{spent[1:]}. Nothing more is submitted until this is fixed."
    lines = [what, ""]
    if problems:
        lines += ["**Problems**", ""]
        lines += [f"- {code(redact(p))}" for p in problems]
        lines.append("")
    if detail.strip():
        lines += ["**Details**", "", block(tail(detail)), ""]
    lines += [spent_line, "", f"**What to do:** {fix}", "", _footer(now)]
    return title, "\n".join(lines) + "\n"
