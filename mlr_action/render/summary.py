"""runs/summary.md: the campaign at a glance, rendered from the folded ledger (DESIGN.md section 3).

Guarantees:

- Pure: the text depends only on the arguments (``now`` is passed in and only
  printed), so the same ledger renders the same file and an unchanged
  campaign never produces a diff beyond the timestamp.
- Sections, in order: title with the campaign id and state (running, paused,
  stopped, and whether the final evaluation runs or ran); once stopped, the
  stop reason and final writeup, and with a ``final`` block the final
  evaluation with its cost (:mod:`mlr_action.render.final_report`); best so far;
  budget used, limit and left; jobs in flight; when an LLM proposer wrote
  rows, its spend, research notes and fallbacks; a table of every experiment;
  which code the experiments ran and where it changed (:mod:`mlr_action.render.provenance`);
  a chart of the metric and best so far per iteration (:mod:`mlr_action.render.chart`).
- Every string that comes from outside (hypotheses, errors, configs, Hub
  URLs, the prices note) is redacted (:func:`mlr_action.core.redaction.redact`) and
  shown, never rendered: as code or as a word that cannot render
  (:mod:`mlr_action.core.markup`), so no link, image, HTML, heading, mention or
  reference from a job, an LLM or the ledger reaches the page. Table cells
  have ``|`` escaped and newlines flattened, so a row can never break the
  table.
"""

from __future__ import annotations

import re
from datetime import datetime

from mlr_action.core.budget import RESERVE, Usage
from mlr_action.core.durations import format_duration
from mlr_action.core.ledger import ExperimentRow
from mlr_action.core.markup import cell, code, plain
from mlr_action.core.program import Program
from mlr_action.render.chart import chart_section
from mlr_action.render.provenance import code_section
from mlr_action.render.reports import campaign_name, final_writeup, result_lines
from mlr_action.render.stop_reasons import stop_reason_text
from mlr_action.core.metric import format_metric
from mlr_action.render.words import format_now, format_usd, short_error, shorten, shown_config
from mlr_action.core.state import CampaignState

HYPOTHESIS_CHARS = 80
ERROR_CHARS = 80


def render_summary(
    *,
    program: Program,
    state: CampaignState,
    used: Usage,
    now: datetime | str,
    prices_note: str | None = None,
    prices: dict[str, float] | None = None,
) -> str:
    """The Markdown text of runs/summary.md; ``prices`` (live, per flavor) price the final evaluation's cost."""
    sections = [
        _title(program, state, now),
        _stopped(program, state, used) if state.stopped else "",
        _final(program, state, prices),
        _best(program, state),
        _budget(program, used, prices_note),
        _in_flight(state),
        _proposer(state),
        _experiments(state),
        code_section(state),
        chart_section(program, state),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def campaign_status(state: CampaignState) -> str:
    """``stopped``, ``paused`` or ``running``: a stop outranks a pause."""
    if state.stopped is not None:
        return "stopped"
    return "paused" if state.paused else "running"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list[str]], align: str = "") -> str:
    rule = [("---:" if a == "r" else "---") for a in align.ljust(len(header), "l")]
    return "\n".join(["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |", *map(_row, rows)])


def _timeout(row: ExperimentRow) -> str:
    seconds = row.charged_timeout_s
    return format_duration(seconds) if seconds > 0 else (plain(row.timeout) or "—")


# --- Sections -----------------------------------------------------------------


def _goal_line(program: Program) -> str:
    campaign = program.campaign
    goal = f"{campaign.direction} {code(campaign.metric)}"
    if campaign.target is not None:
        op = "≥" if campaign.direction == "maximize" else "≤"
        goal += f" until it is {op} {format_metric(campaign.target)}"
    return goal


def _title(program: Program, state: CampaignState, now: datetime | str) -> str:
    status = campaign_status(state)
    lines = [
        f"# Campaign {code(campaign_name(program, state))}: {status}{_phase_words(program, state)}",
        "",
        f"Goal: {_goal_line(program)}. Updated {plain(format_now(now))} from `runs/ledger.jsonl`, "
        "the campaign's record; edits to this file are overwritten.",
    ]
    if status == "paused":
        lines += [
            "",
            "**Paused** by a person: no new experiments are submitted; jobs in flight are still followed.",
        ]
    return "\n".join(lines)


def _stopped(program: Program, state: CampaignState, used: Usage) -> str:
    stop = state.stopped
    assert stop is not None
    lines = ["## Stopped", "", f"The campaign stopped because {stop_reason_text(stop.reason, program)}."]
    if stop.detail:
        lines += ["", f"> {code(shorten(stop.detail, 300))}"]
    if stop.ts:
        lines += ["", f"Stopped at {plain(stop.ts)}."]
    return "\n".join([*lines, "", *final_writeup(program, state, used)])


def _phase_words(program: Program, state: CampaignState) -> str:
    """After the stop, with a ``final`` block: whether the final evaluation runs or is over."""
    from mlr_action.core.final import FINAL, phase

    if state.stopped is None or program.campaign.final is None:
        return ""
    if phase(program, state) == FINAL:
        return " · final evaluation running"
    return " · final evaluation done" if state.final_event is not None else ""


def _final(program: Program, state: CampaignState, prices: dict[str, float] | None) -> str:
    from mlr_action.render.final_report import HEADING, final_section

    lines = final_section(program, state, prices)
    return "\n".join([f"## {HEADING}", "", *lines]) if lines else ""


def _best(program: Program, state: CampaignState) -> str:
    if state.best is None:
        return "## Best so far\n\nNo result yet."
    return "\n".join(["## Best so far", "", *result_lines(program, state.best, state)])


def _left(limit: float, used: float) -> float:
    return max(0.0, limit - used)


def _budget(program: Program, used: Usage, prices_note: str | None) -> str:
    env = program.envelope
    rows = [
        ["jobs", str(used.jobs), str(env.max_jobs), str(max(0, env.max_jobs - used.jobs))],
        [
            "walltime",
            format_duration(used.walltime_s),
            format_duration(env.max_walltime),
            format_duration(_left(env.max_walltime, used.walltime_s)),
        ],
    ]
    if env.max_cost_usd is not None:
        rows.append(
            ["dollars", format_usd(used.cost_usd), format_usd(env.max_cost_usd), format_usd(_left(env.max_cost_usd, used.cost_usd))]
        )
    else:
        rows.append(["dollars", format_usd(used.cost_usd), "no limit", "—"])
    if env.max_llm_usd is not None:
        rows.append(
            ["LLM dollars", format_usd(used.llm_usd), format_usd(env.max_llm_usd), format_usd(_left(env.max_llm_usd, used.llm_usd))]
        )
    elif used.llm_usd:
        rows.append(["LLM dollars", format_usd(used.llm_usd), "no limit", "—"])
    note = (
        "Walltime counts the actual duration of finished jobs and the full timeout of jobs in flight. "
        f"{RESERVE:.0%} of the walltime and dollars is kept in reserve"
        + (f" for the final evaluation and writeup, and the search keeps {program.final_jobs} of max_jobs for the "
           "final evaluation's repeats." if program.final_jobs else
           " (unspent: a `final` block in program.md would spend it on a final evaluation of the best config).")
    )
    if prices_note:
        note += " " + code(shorten(prices_note, 400))
    return "\n".join(["## Budget", "", _table(["", "used", "limit", "left"], rows, "lrrr"), "", note])


PROPOSER_NOTES = 5  # fallbacks and research attempts listed; older ones stay in the ledger


def _proposer(state: CampaignState) -> str:
    """LLM spend, research notes and fallbacks to search: empty unless an LLM proposer wrote rows."""
    llm = [e for e in state.events if e.event == "llm"]
    research = [e for e in state.events if e.event == "research"]
    if not llm and not research:
        return ""
    spent = sum(float(getattr(e, "llm_usd", 0) or 0) for e in (*llm, *research))
    calls = sum(int(getattr(e, "calls", 0) or 0) for e in (*llm, *research))
    by_claude = sum(1 for e in llm if e.reason == "proposal")
    fallbacks = [e for e in llm if e.reason == "fallback"]
    models = sorted({plain(shorten(str(getattr(e, "model")), 60)) for e in (*llm, *research) if getattr(e, "model", None)})
    lines = [
        "## Proposer",
        "",
        f"Claude ({', '.join(models) or 'no model'}) proposed {by_claude} experiments; the search proposer stood in "
        f"{len(fallbacks)} times. LLM spend: ${spent:.4f} over {calls} calls (every call, repairs and research included).",
    ]
    notes = [e for e in research if getattr(e, "note", None)]
    if notes:
        lines += ["", "Research notes: " + ", ".join(_note_link(e) for e in notes) + "."]
    other = [e for e in research if not getattr(e, "note", None)][-PROPOSER_NOTES:]
    if other:
        lines += ["", "Research not done:", *(f"- {code(shorten(e.detail or e.reason, 200))}" for e in other)]
    if fallbacks:
        lines += ["", "Search stood in for Claude:", *(f"- {code(shorten(e.detail or e.reason, 200))}" for e in fallbacks[-PROPOSER_NOTES:])]
    return "\n".join(lines)


def _note_link(event) -> str:
    """A link to a note under runs/research/ (relative to runs/summary.md); plain text for anything else."""
    name = str(getattr(event, "note", "")).rsplit("/", 1)[-1]
    after = getattr(event, "after", 0)
    after = f" (after {after if isinstance(after, int) and not isinstance(after, bool) else plain(str(after))} experiments)"
    if re.fullmatch(r"\d{1,6}\.md", name):
        return f"[{name}](research/{name}){after}"
    return code(shorten(name, 40)) + after


def _in_flight(state: CampaignState) -> str:
    flying = state.in_flight
    if not flying:
        return "## In flight\n\nNothing in flight."
    rows = [[str(e.iter), plain(e.job_id) or "—", plain(e.flavor) or "—", _timeout(e)] for e in flying]
    return "\n".join(["## In flight", "", _table(["iter", "job", "flavor", "timeout"], rows, "r")])


def _experiments(state: CampaignState) -> str:
    from mlr_action.render.final_report import metric_cell

    if not state.experiments:
        return "## Experiments\n\nNo experiments yet."
    header = ["iter", "status", "decision", "metric", "best so far", "config", "flavor", "duration", "hypothesis", "error"]
    rows = [
        [
            str(e.iter),
            e.status,
            e.decision or "—",
            metric_cell(state, e),
            format_metric(e.best_so_far),
            shown_config(e.config),
            plain(e.flavor) or "—",
            format_duration(e.duration_s) if e.duration_s is not None else "—",
            code(shorten(e.hypothesis, HYPOTHESIS_CHARS)),
            code(short_error(e.error, ERROR_CHARS)),
        ]
        for e in state.experiments.values()
    ]
    return "\n".join(["## Experiments", "", _table(header, rows, "rllrr")])
