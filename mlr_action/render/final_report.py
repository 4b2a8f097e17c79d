"""The final evaluation in words: its own section of the summary, the dashboard and the stop report.

Guarantees: pure rendering of :func:`mlr_action.core.final_outcome.outcome` (no clock, no I/O).
The section says what ran
(the search result, its config, each repeat's seed, the final block's arguments), what it found (the final
metric as mean and spread over the repeats, next to the search metric), what it cost, and, after a stop on the
target, whether it confirmed the target. When it did not run or ran short it says why, and what the rest would
cost. What comes from a job or the ledger (configs, errors, job ids, Hub URLs, commits) is shown through
:mod:`mlr_action.core.markup`, never rendered.
"""

from __future__ import annotations

from mlr_action.core.durations import format_duration
from mlr_action.core.final import FINAL, Spread, canceled_words, given_up, ran, seeds
from mlr_action.core.final_outcome import Outcome, outcome
from mlr_action.core.ledger import ExperimentRow
from mlr_action.core.markup import cell, code, plain
from mlr_action.core.program import Program
from mlr_action.core.redaction import redact
from mlr_action.core.state import CampaignState

HEADING = "Final evaluation"


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def shorten(text: str | None, limit: int) -> str:
    from mlr_action.render.words import shorten as cut

    return cut(text, limit)


def spread_text(spread: Spread | None, asked: int | None = None) -> str:
    return spread.text(asked) if spread is not None else "no repeat gave a metric"


def metric_cell(state: CampaignState, row: ExperimentRow) -> str:
    """A search result's metric, with its repeats' mean and spread when the final evaluation ran it again."""
    from mlr_action.core.metric import format_metric

    text = format_metric(row.metric)
    spread = Spread.of(state.repeats_of(row.iter).values()) if state.finals else None
    if spread is None:
        return text
    return f"{text} (final {spread.short()}, n={spread.n})"


def result_line(program: Program, state: CampaignState) -> str | None:
    """The final metric as one bullet for the writeup's result, next to the search metric; None without a block."""
    found = outcome(program, state)
    if found is None or found.of is None or state.stopped is None:
        return None
    name = program.final_metric
    if found.spread is not None:
        head = f"- **final {code(name)}: {spread_text(found.spread, _repeats(program))}**"
    elif found.phase == FINAL:
        head = f"- final {code(name)}: none yet"
    else:
        why = _WHY_NONE.get(found.event.reason if found.event else "", "")
        head = f"- final {code(name)}: not measured" + (f" ({why})" if why and found.rows == () else "")
    done = sum(1 for r in found.rows if r.status == "completed")
    if found.phase == FINAL:
        head += f" (running: {done} of {_repeats(program)} repeats finished)"
    elif found.not_run and not found.rows:
        head += f" ({found.not_run})"
    return head


_WHY_NONE = {"unaffordable": "the envelope could not pay for a repeat", "refused": "it could not run"}


def confirmation(program: Program, state: CampaignState) -> str | None:
    """After a stop on the target (one run reached it): whether the final evaluation confirmed it."""
    from mlr_action.core.metric import format_metric

    found = outcome(program, state)
    stop = state.stopped
    if found is None or stop is None or stop.reason != "target" or program.campaign.target is None:
        return None
    target = format_metric(program.campaign.target)
    op, under = ("≥", "below") if program.campaign.direction == "maximize" else ("≤", "above")
    if found.phase == FINAL:
        return f"**Target {target}:** reached by one run; the final evaluation, still running, will say if it holds."
    if found.confirmed is None or found.spread is None:
        why = found.not_run or (found.event.detail if found.event is not None else "") or "no repeat gave a metric"
        return (f"**Target {target}:** reached by one run, not confirmed: the final evaluation gave no mean "
                f"({code(shorten(why, 300))}).")
    counted = f"{found.reached} of {found.spread.n} repeats reached it"
    mean = format_metric(found.spread.mean)
    if found.confirmed:
        return f"**Target {target}: confirmed** by the final evaluation: the mean {mean} {op} {target} ({counted})."
    return (f"**Target {target}: not confirmed.** One run reached it in the search, but the final evaluation's mean "
            f"{mean} is {under} it ({counted}): the search result was likely a lucky run.")


def final_section(program: Program, state: CampaignState, prices: dict[str, float] | None = None) -> list[str]:
    """The section's Markdown lines (without its heading); empty without a ``final`` block or before the stop."""
    found = outcome(program, state, prices)
    if found is None or state.stopped is None:
        return []
    lines = [_status(program, state, found), ""]
    if found.of is not None and (found.rows or found.not_run is None):
        lines += [_what_ran(program, found.of, bool(found.rows)), ""]
    if found.rows:
        lines += [_table(program, found, prices), ""]
        lines += [f"**{code(program.final_metric)}: {spread_text(found.spread, _repeats(program))}**; in the search, "
                  f"{code(program.campaign.metric)} {_search_metric(found.of)} at iter {found.of.iter}.", ""]
        lines += [f"**Cost of the final evaluation:** {len(found.attempts)} job(s), {format_duration(found.walltime_s)} of "
                  f"walltime, {_usd(found.cost_usd)} (in the budget above; it is paid from the reserve the search "
                  "kept).", ""]
    return lines[:-1] if lines and lines[-1] == "" else lines


def _repeats(program: Program) -> int:
    return program.campaign.final.repeats if program.campaign.final else 0


def _search_metric(row: ExperimentRow | None) -> str:
    from mlr_action.core.metric import format_metric

    return format_metric(row.metric if row is not None else None)


def _status(program: Program, state: CampaignState, found: Outcome) -> str:
    finished = sum(1 for r in found.rows if r.status == "completed")
    if found.phase == FINAL:
        return (f"**Running:** {finished} of {_repeats(program)} repeats finished, {found.in_flight} in flight. It runs "
                "after the stop, from the reserve, never past the envelope.")
    event = found.event
    if event is None and found.rows:  # a person stopped the campaign while its repeats ran
        return (f"**Ended early:** {found.not_run or 'it was stopped'}; {finished} of {_repeats(program)} repeats "
                "had finished, and the rest were canceled.")
    if event is None:
        return f"**Not run:** {found.not_run or 'it has not started'}."
    if event.reason == "finished":
        canceled = canceled_words(given_up(state, found.of.iter)) if found.of is not None else ""
        return (f"**Finished:** {ran({r.repeat or 0: r for r in found.rows})} of {_repeats(program)} repeats ran, "
                f"{finished} with a result" + (f"; {canceled}" if canceled else "") + ".")
    if event.reason == "unaffordable":
        return (f"**Ended short:** {code(shorten(event.detail, 400))}. To run the rest, raise `max_jobs`, `max_walltime` or "
                "`max_cost_usd` (or lower `final.repeats` or `final.timeout`) in program.md and merge: the campaign "
                "resumes, and its next stop runs the repeats that have not run yet (none runs twice).")
    return f"**Not run:** {code(shorten(event.detail or event.reason, 400))}."


def _what_ran(program: Program, of: ExperimentRow, found_rows: bool) -> str:
    from mlr_action.render.words import format_config

    final = program.campaign.final
    assert final is not None
    again = "run again" if found_rows else "to be run again"
    parts = [f"The best search result, iter {of.iter} ({code(program.campaign.metric)} {_search_metric(of)}), {again} "
             f"{final.repeats} time{'s' if final.repeats > 1 else ''} with its config {code(format_config(of.config))}"]
    chosen = seeds(program)
    if final.seed_param and chosen:
        parts.append(f"`--{final.seed_param}` set to {', '.join(map(str, chosen))}")
    if final.fixed:
        parts.append("and " + code(" ".join(f"--{k}={v}" for k, v in final.fixed.items())))
    text = ", ".join(parts[:2]) + (" " + parts[2] if len(parts) > 2 else "") + "."
    if of.commit:
        text += f" Commit {plain(redact(of.commit[:12]))}."
    if of.hub_url:
        text += f" Hub: {code(redact(of.hub_url))}."
    return text


def _table(program: Program, found: Outcome, prices: dict[str, float] | None) -> str:
    from mlr_action.core.budget import charged_cost
    from mlr_action.core.metric import format_metric
    from mlr_action.render.words import short_error

    header = ["repeat", "iter", "seed", "status", program.final_metric, "duration", "cost", "job", "Hub", "error"]
    rows = [
        [str(r.repeat), str(r.iter), str(r.final_seed) if r.final_seed is not None else "—", r.status,
         format_metric(r.metric), format_duration(r.duration_s) if r.duration_s is not None else "—",
         _usd(charged_cost(r, prices)), plain(redact(r.job_id or "")) or "—", code(redact(r.hub_url or "")) or "—",
         code(short_error(r.error, 80))]
        for r in found.attempts
    ]
    lines = ["| " + " | ".join(cell(plain(h)) for h in header) + " |",
             "| ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | --- | --- |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
