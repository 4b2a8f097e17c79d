"""``mlr step --dry-run``: what one step would do, with nothing spent and nothing written.

Guarantees: reads ``program.md`` (the authorized snapshot's in GitHub mode,
see :mod:`mlr_action.shell.authority`) and the ledger and nothing else. It never
calls a job backend, an LLM or a forge, never takes the step lock and never
writes a file, so it is safe anywhere, including on a pull request. The next
experiments come from the search proposer (no API key, no spend) and pass the
same validator a real step applies; jobs in flight are listed, not inspected,
and prices come from the built-in table. The campaign id is the one the step
uses (:func:`mlr_action.job.jobspec.campaign_id_for`: program.md's ``name`` or the
folder), never the ledger's ``started`` row, and a ledger that names another
is pointed out. The budget figures are the ledger's view, and the output says
so, as ``mlr status`` does: a real step also counts what the backend lists.
After a stop, a pending final evaluation's next move is shown the same way
(:func:`mlr_action.core.final.plan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlr_action.shell.authority import Snapshot

OK, BAD_INPUT = 0, 2
HEADLINE = "dry run: nothing was submitted, spent, committed or posted"


@dataclass
class DryRun:
    exit_code: int = OK
    lines: list[str] = field(default_factory=list)


def dry_run(root: Path, program_path: Path | None = None, *, proposer: str = "search",
            snapshot: Snapshot | None = None) -> DryRun:
    """What a step would do; with a ``snapshot`` (GitHub mode) on the authorized program.md, else the work tree's."""
    from mlr_action.core import decide, final
    from mlr_action.core.budget import usage
    from mlr_action.job.jobspec import campaign_id_for
    from mlr_action.core.ledger import LEDGER_PATH, LedgerError, read_ledger
    from mlr_action.core.program import ProgramError, load_program
    from mlr_action.core.state import fold
    from mlr_action.render.views import LEDGER_VIEW, budget_text

    result = DryRun(lines=[HEADLINE])
    say = result.lines.append
    path = program_path or root / "program.md"
    name = snapshot.where if snapshot else path.name
    missing = snapshot.text is None if snapshot else not path.exists()
    if missing:
        say(f"no {name} yet: a real step would start onboarding (the github forge opens the onboarding PR "
            "and the approval issue; locally, run `mlr init`)")
        return result
    try:
        program = snapshot.load() if snapshot else load_program(path)
        rows = read_ledger(root / LEDGER_PATH)
        campaign = campaign_id_for(program, root)
        state = fold(rows, campaign_id=campaign)
    except ProgramError as exc:
        result.exit_code = BAD_INPUT
        say(f"{name} is not valid, so a real step would spend nothing and report:")
        result.lines += [f"  - {p}" for p in exc.problems]
        return result
    except LedgerError as exc:
        result.exit_code = BAD_INPUT
        say(f"the ledger cannot be read, so a real step would spend nothing: {exc}")
        return result

    ts = "1970-01-01T00:00:00+00:00"  # never written anywhere
    resumed = decide.resumption(program, state, ts=ts)
    if resumed:
        say("program.md changed since the campaign stopped: a real step would resume it")
        rows.append(resumed)
        state = fold(rows, campaign_id=campaign)
    used = usage(state)  # no backend here: the ledger's view
    started = "" if state.ledger_campaign else " (not started yet)"
    say(f"campaign {campaign}{started} · {budget_text(program, used)} ({LEDGER_VIEW})")
    if state.ledger_campaign and state.ledger_campaign != campaign:
        say(f"the ledger names the campaign {state.ledger_campaign!r}; a real step uses {campaign!r} (program.md's "
            "name or the folder) and notes the difference on the ledger")
    for exp in state.in_flight:
        say(f"would inspect iter {exp.iter} ({exp.job_id or 'not yet submitted'}, {exp.status}, {exp.flavor})")
    if final.pending(program, state):
        _final(program, state, used, say)
        return result
    plan = decide.plan_next(program, state, used=used)
    if plan.stop:
        say(f"would stop ({plan.stop}): {plan.detail}")
        if program.campaign.final is not None and plan.stop in final.ELIGIBLE and state.best is not None:
            say(f"then would start the final evaluation: {program.final_jobs} repeat(s) of iter {state.best.iter}'s "
                "config, from the reserve")
    elif plan.waiting:
        say(f"would submit nothing: {plan.waiting}")
    for intent in plan.resubmit:
        say(f"would resubmit iter {intent.iter} ({intent.flavor}, {intent.timeout}), whose submit was never confirmed")
    if plan.propose:
        _proposals(program, rows, campaign, plan.propose, proposer, say)
    return result


def _final(program, state, used, say) -> None:
    """What the final evaluation's next move would be (mlr_action.core.final), on the ledger's view of the budget."""
    from mlr_action.core import final

    plan = final.plan(program, state, used=used, prices=None, ts="1970-01-01T00:00:00+00:00")
    if plan.done is not None:
        say(f"would end the final evaluation ({plan.done.reason}): {plan.done.detail}")
    elif plan.waiting:
        say(f"would submit nothing: {plan.waiting}")
    for intent in (*plan.resubmit, *plan.new):
        say(f"would submit iter {intent.iter}: final evaluation of iter {intent.final_of}, repeat {intent.repeat}, "
            f"on {intent.flavor}, timeout {intent.timeout}")


def _proposals(program, rows: list, campaign: str, count: int, proposer: str, say) -> None:
    from mlr_action.core import admission
    from mlr_action.core.budget import usage
    from mlr_action.proposers.search import SearchProposer
    from mlr_action.render.words import format_config
    from mlr_action.core.state import fold

    state = fold(rows, campaign_id=campaign)
    if proposer != "search":
        say(f"with --proposer {proposer} a real step may ask Claude; this dry run shows the search proposer's "
            "pick instead (no LLM call, no spend)")

    def check(proposal) -> list[str]:
        return admission.proposal_problems(program, state, proposal, used=usage(state), prices=None)

    proposals = SearchProposer().propose(program=program, state=state, count=count, check=check, used=usage(state))
    if not proposals:
        say("would stop (exhausted): the proposer finds no untried config in the search space")
    for proposal in proposals:
        # Each admitted intent is charged before the next is checked, as in a real step.
        admitted = admission.admit(program, state, proposal, iteration=state.next_iter, used=usage(state),
                                prices=None, ts="1970-01-01T00:00:00+00:00")
        if isinstance(admitted, list):
            say(f"would refuse iter {state.next_iter}: " + "; ".join(admitted))
            break
        say(f"would submit iter {admitted.iter}: {format_config(admitted.config)} on {admitted.flavor}, "
            f"timeout {admitted.timeout}")
        rows = [*rows, admitted]
        state = fold(rows, campaign_id=campaign)
