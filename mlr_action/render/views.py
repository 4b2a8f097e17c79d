"""What the CLI prints: the envelope with its worst case, one line per step, and the status.

Guarantees: everything here only reads; ``campaign_status`` never takes the
step lock, calls a backend or writes a file, so ``mlr status`` is safe to run
at any time, even while a step runs. So its budget numbers are the ledger's
view (``budget_source: ledger``), and it says so: a step counts what the
backend reports too, which can only be more. What a line quotes from a job
or the ledger (:func:`describe_row`) is one line with no terminal escapes or
other control characters, so it can neither repaint a terminal nor forge a
line of the log.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mlr_action.core.budget import Usage, charged_cost, usage, worst_case
from mlr_action.core.durations import format_duration
from mlr_action.core.final_outcome import reserve_note
from mlr_action.core.flavors import price_per_hour
from mlr_action.job.jobspec import campaign_id_for
from mlr_action.core.ledger import LEDGER_PATH, EventRow, Row, read_ledger
from mlr_action.core.metric import ANSI_ESCAPE
from mlr_action.core.program import Program, load_program
from mlr_action.core.state import CampaignState, fold

# What a reader that calls no backend (``mlr status``, the dry run) says of its budget figures.
LEDGER_VIEW = "budget as the ledger records it; a step also counts what the backend reports, never less"


def describe_envelope(program: Program, prices: dict[str, float] | None = None) -> str:
    env, camp = program.envelope, program.campaign
    starting = camp.scheduling_timeout
    walltime, dollars = worst_case(env, prices, starting_s=starting)
    source = "live prices" if prices else "the built-in price table (rounded up)"
    flavors = ", ".join(f"{f} (${price_per_hour(f, prices):.2f}/h)" for f in env.allowed_flavors)
    lines = [
        "Budget envelope",
        f"  max_jobs        {env.max_jobs}",
        f"  max_walltime    {format_duration(env.max_walltime)}",
        f"  max_timeout     {format_duration(env.max_timeout)} per job",
        f"  allowed_flavors {flavors}",
        f"  max_parallel    {env.max_parallel}",
        f"  max_cost_usd    {'$%.2f' % env.max_cost_usd if env.max_cost_usd is not None else 'not set'}",
        f"  max_llm_usd     {'$%.2f' % env.max_llm_usd if env.max_llm_usd is not None else 'not set'}",
        f"  output_repos    {', '.join(env.output_repos) or 'none'} (deletes {'allowed' if env.allow_deletes else 'never'})",
        "",
        "Worst case",
        f"  {env.max_jobs} jobs x ({format_duration(env.max_timeout)} + {format_duration(starting)} to start on HF) = "
        f"{format_duration(env.max_jobs * (env.max_timeout + starting))}, capped by max_walltime at {format_duration(walltime)}",
        f"  at most ${dollars:.2f} on the priciest allowed flavor, from {source}",
        f"  one job on {program.default_flavor} for its {format_duration(program.default_timeout_s)} timeout: at most "
        f"${price_per_hour(program.default_flavor, prices) * program.default_timeout_s / 3600:.2f}",
        "",
        "Campaign",
        f"  {camp.direction} {camp.metric}" + (f" to {camp.target:g}" if camp.target is not None else "")
        + (f", patience {camp.patience}" if camp.patience else ""),
        f"  script {camp.script} on {program.default_flavor}, timeout {format_duration(program.default_timeout_s)}",
        f"  params {', '.join(camp.params) or 'none: the script runs once as it is (a baseline)'}" + (f"; fixed {', '.join(f'{k}={v}' for k, v in camp.fixed.items())}" if camp.fixed else ""),
    ]
    if camp.min_delta:
        lines.append(f"  an improvement must beat the best by more than {camp.min_delta:g} (min_delta)")
    final = reserve_note(program, prices)
    lines += ["", "Final evaluation (after the stop)", f"  {final}"] if final else []
    return "\n".join(lines)


def _best_text(program: Program | None, state: CampaignState | None) -> str:
    if state is None or state.best is None or program is None:
        return "best: none yet"
    return f"best {program.campaign.metric}={state.best.metric:g} (iter {state.best.iter})"


def budget_text(program: Program, used: Usage) -> str:
    env = program.envelope
    parts = [
        f"jobs {used.jobs}/{env.max_jobs}",
        f"walltime {format_duration(used.walltime_s)}/{format_duration(env.max_walltime)}",
        f"${used.cost_usd:.2f}" + (f"/${env.max_cost_usd:.2f}" if env.max_cost_usd is not None else ""),
    ]
    if used.llm_usd:
        parts.append(f"LLM ${used.llm_usd:.4f}" + (f"/${env.max_llm_usd:.2f}" if env.max_llm_usd is not None else ""))
    return " · ".join(parts)


def step_line(result: Any) -> str:
    """One line: exit state, budget used, best so far."""
    if result.program is None or result.used is None:
        return f"[exit {result.exit_code}] {result.spent()}"
    state = ("stopped" if result.finished else "stopped, final evaluation running") if result.stopped else "running"
    return f"[{state}] {budget_text(result.program, result.used)} · {_best_text(result.program, result.state)}"


def _state_name(state: CampaignState) -> str:
    if state.stopped is not None:
        return "stopped"
    return "paused" if state.paused else "running"


def campaign_status(repo: Path, program_path: Path, *, program: Program | None = None) -> dict[str, Any]:
    """The ``mlr status --json`` object (DESIGN.md section 6); ``program`` stands in for the file when given."""
    if program is None and not program_path.exists():
        return {"state": "awaiting_program", "stop_reason": None, "jobs_used": 0, "jobs_max": None,
                "walltime_used_s": 0, "walltime_max_s": None, "cost_used_usd": 0.0, "best_metric": None,
                "best_iter": None, "in_flight": 0, "in_flight_jobs": []}
    program = program or load_program(program_path)
    state = fold(read_ledger(repo / LEDGER_PATH), campaign_id=campaign_id_for(program, repo))
    used = usage(state)  # no backend here: the ledger's view
    best = state.best
    from mlr_action.core.final import phase

    return {
        "state": _state_name(state),
        "phase": phase(program, state),  # searching | final_evaluation | finished
        "final": _final_status(program, state),
        "stop_reason": state.stopped.reason if state.stopped else None,
        "stop_detail": state.stopped.detail if state.stopped else None,
        "campaign": state.campaign_id,
        "metric": program.campaign.metric,
        "jobs_used": used.jobs,
        "jobs_max": program.envelope.max_jobs,
        "walltime_used_s": round(used.walltime_s, 1),
        "walltime_max_s": program.envelope.max_walltime,
        "cost_used_usd": round(used.cost_usd, 4),
        "cost_max_usd": program.envelope.max_cost_usd,
        "budget_source": "ledger",
        "llm_used_usd": round(used.llm_usd, 4),
        "llm_max_usd": program.envelope.max_llm_usd,
        "best_metric": best.metric if best else None,
        "best_iter": best.iter if best else None,
        "best_config": best.config if best else None,
        "experiments": len(state.experiments),
        "in_flight": len(state.in_flight),
        "in_flight_jobs": [
            # A job in flight reserves its full timeout at the built-in (rounded-up) price: status calls no backend.
            {"iter": e.iter, "job_id": e.job_id, "status": e.status, "flavor": e.flavor, "timeout": e.timeout,
             "cost_usd": round(charged_cost(e), 4)}
            for e in state.in_flight
        ],
    }


def _final_status(program: Program, state: CampaignState) -> dict[str, Any] | None:
    """The final evaluation in ``mlr status --json``: None without a ``final`` block."""
    from mlr_action.core.final_outcome import outcome

    found = outcome(program, state)
    if found is None:
        return None
    spread = found.spread
    return {
        "of_iter": found.of.iter if found.of else None, "repeats": program.final_jobs, "ran": len(found.rows),
        "completed": sum(1 for r in found.rows if r.status == "completed"), "in_flight": found.in_flight,
        "metric": program.final_metric, "mean": spread.mean if spread else None,
        "sd": spread.sd if spread else None, "values": list(spread.values) if spread else [],
        "outcome": found.event.reason if found.event else None, "not_run": found.not_run,
        "confirmed": found.confirmed, "walltime_s": round(found.walltime_s, 1), "cost_usd": round(found.cost_usd, 4),
    }


def _llm_text(status: dict[str, Any]) -> str:
    used, cap = status.get("llm_used_usd") or 0.0, status.get("llm_max_usd")
    if not used and not cap:  # no LLM spend and none allowed: nothing to show
        return ""
    return f" · LLM ${used:.4f}" + (f"/${cap:.2f}" if cap is not None else "")


def render_status(status: dict[str, Any]) -> str:
    if status["state"] == "awaiting_program":
        return "awaiting program.md: run `mlr init` to draft one, then merge it to approve the budget"
    lines = [f"campaign {status['campaign'] or '(not started)'}: {status['state']}"]
    if status["stop_reason"]:
        lines.append(f"  stopped: {status['stop_reason']} ({status['stop_detail']})")
    lines.append(
        f"  jobs {status['jobs_used']}/{status['jobs_max']} · walltime "
        f"{format_duration(status['walltime_used_s'])}/{format_duration(status['walltime_max_s'])} · "
        f"${status['cost_used_usd']:.2f}" + (f"/${status['cost_max_usd']:.2f}" if status["cost_max_usd"] else "")
        + _llm_text(status)
    )
    if status.get("budget_source") == "ledger":
        lines.append(f"  ({LEDGER_VIEW})")
    if status["best_metric"] is not None:
        config = ", ".join(f"{k}={v}" for k, v in (status["best_config"] or {}).items())
        lines.append(f"  best {status['metric']}={status['best_metric']:g} at iter {status['best_iter']} ({config})")
    else:
        lines.append("  best: none yet")
    final = status.get("final")
    if final and status["state"] == "stopped":
        lines.append("  " + _final_text(final))
    for job in status["in_flight_jobs"]:
        reserved = f", ${job['cost_usd']:.2f} reserved" if job.get("cost_usd") is not None else ""
        lines.append(f"  in flight: iter {job['iter']} {job['job_id'] or '(submitting)'} {job['status']} on {job['flavor']}, timeout {job['timeout']}{reserved}")
    return "\n".join(_CONTROL.sub(" ", line) for line in lines)  # ledger values cannot repaint the terminal


def _final_text(final: dict[str, Any]) -> str:
    if final["mean"] is not None:
        spread = f" ± {final['sd']:.2g}" if final["sd"] is not None else ""
        found = f"{final['metric']}={final['mean']:.4g}{spread} over {final['completed']} repeat(s)"
    else:
        found = "no result yet" if final["outcome"] is None else "no repeat gave a result"
    if final["outcome"] is None and final["not_run"]:
        return f"final evaluation: not run ({final['not_run']})"
    state = "running" if final["outcome"] is None else final["outcome"]
    return (f"final evaluation ({state}): {found}, {final['ran']} of {final['repeats']} repeats, "
            f"${final['cost_usd']:.2f}" + ({True: ", target confirmed", False: ", target not confirmed"}
                                           .get(final["confirmed"], "")))


_CONTROL = re.compile(ANSI_ESCAPE.pattern + r"|[\x00-\x1f\x7f-\x9f]")
EVENT_CHARS = 300


def _said(text: str) -> str:
    """Outside text in an event: one line, no terminal escapes or control characters, at most EVENT_CHARS."""
    line = " ".join(_CONTROL.sub(" ", text).split())
    return line if len(line) <= EVENT_CHARS else line[: EVENT_CHARS - 1] + "…"


def describe_row(program: Program, row: Row) -> str:
    """One line for a ledger row, as a step prints it (the log, the commit message, the step summary)."""
    if isinstance(row, EventRow) and row.event == "final":
        from mlr_action.core.final import WORDS

        return f"final evaluation {WORDS.get(row.reason, 'ended')}: {_said(row.detail or row.reason)}"
    if isinstance(row, EventRow):
        return f"{row.event}: {_said(row.detail or row.reason)}"
    final = row.final_of is not None
    name = f"iter {row.iter} (final evaluation of iter {row.final_of}, repeat {row.repeat})" if final else f"iter {row.iter}"
    if row.status == "completed":
        note = getattr(row, "hub_url_note", None)
        dropped = " (its hub_url was dropped: not an https URL on the Hub)" if note else ""
        metric = program.final_metric if final else program.campaign.metric
        return f"{name} completed: {metric}={row.metric:g}" + ("" if final else f" ({row.decision})") + dropped
    if row.status == "error":
        first = (row.error or "").splitlines()[0] if row.error else "failed"
        return f"{name} failed: {_said(first)}"
    return f"{name} {row.status} ({_said(row.job_id or '')})"
