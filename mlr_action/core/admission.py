"""Admission: the gate from a proposal (or an intent read back from the ledger) to a submission.

Guarantees, all without I/O or a clock of its own (given the same inputs, the same answer):

- :func:`admit` validates a proposal against the envelope (``max_parallel``
  too, counting jobs in flight as the ledger or the backend says, whichever is
  more) and the search space, and returns either the intent row to write before
  submitting, or every reason it was refused. The search keeps the reserve and
  the final evaluation's repeats out of what it may spend
  (:func:`search_budget_problems`); an exact config that failed on a flavor is
  never retried on it.
- :func:`readmit_problems` checks an intent whose job never reached the backend
  again, without counting it twice; its row is data, so a timeout that reads as
  none or a repeat the final block does not ask for is refused.
- :func:`readmitted` gives an intent read back from the ledger the output repo
  program.md gives its iter, whatever the row named: a ledger row never decides
  where a job writes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mlr_action.core.budget import Usage, budget_problems, charged_cost, charged_seconds
from mlr_action.core.durations import format_duration
from mlr_action.core.ledger import ExperimentRow
from mlr_action.core.program import Program
from mlr_action.core.program_paths import output_repo_for
from mlr_action.core.proposal import Proposal
from mlr_action.core.state import CampaignState, config_key


def _failed(program: Program, state: CampaignState) -> set[tuple[str, str]]:
    """(config, flavor) of every failed experiment: the same config on a larger flavor is another experiment."""
    return {(config_key(e.config), e.flavor or program.default_flavor) for e in state.experiments.values() if e.status == "error"}


def search_budget_problems(program: Program, used: Usage, *, flavor: str, timeout_s: int,
                           prices: dict[str, float] | None) -> list[str]:
    """Why one more search job would not fit: the reserve kept, and the final evaluation's repeats kept out of max_jobs."""
    return budget_problems(program.envelope, used, flavor=flavor, timeout_s=timeout_s, prices=prices,
                           keep_jobs=program.final_jobs)


def space_problems(program: Program, config: dict[str, Any]) -> list[str]:
    """Why ``config`` is not a point of the search space; empty when it is."""
    problems = []
    space = program.campaign.params
    for name in sorted(set(config) - set(space)):
        problems.append(f"{name} is not a param in program.md (the search space is {', '.join(space)})")
    for name, spec in space.items():
        if name not in config:
            problems.append(f"{name} is missing from the config")
        elif not spec.contains(config[name]):
            allowed = spec.choices if spec.choices is not None else f"{spec.type} in [{spec.low:g}, {spec.high:g}]"
            problems.append(f"{name}={config[name]!r} is outside the search space ({allowed})")
    return problems


def proposal_problems(program: Program, state: CampaignState, proposal: Proposal, *, used: Usage,
                      prices: dict[str, float] | None, repeat: bool = False) -> list[str]:
    """Every reason ``proposal`` may not be submitted; empty when it may.

    ``repeat``: a repeat of the final evaluation (:mod:`mlr_action.core.final`), which spends the reserve (checked
    against the whole envelope, no jobs kept back) and runs the best config again (so no failed-config rule).
    """
    config = proposal.config
    problems = space_problems(program, config)
    flavor = proposal.flavor or program.default_flavor
    timeout_s = proposal.timeout_s or program.default_timeout_s
    if flavor not in program.envelope.allowed_flavors:
        problems.append(f"flavor {flavor} is not in allowed_flavors {program.envelope.allowed_flavors}")
    if timeout_s <= 0:
        problems.append(f"timeout {timeout_s}s is not a positive duration")
    elif timeout_s > program.envelope.max_timeout:
        problems.append(f"timeout {format_duration(timeout_s)} is over max_timeout {format_duration(program.envelope.max_timeout)}")
    if not repeat and (config_key(config), flavor) in _failed(program, state):
        problems.append(f"this exact config already failed on {flavor}; the seed's rule: never retry the identical failing thing")
    if repeat:
        problems += budget_problems(program.envelope, used, flavor=flavor, timeout_s=timeout_s, prices=prices, reserve=0)
    else:
        problems += search_budget_problems(program, used, flavor=flavor, timeout_s=timeout_s, prices=prices)
    return problems


def readmit_problems(
    program: Program, state: CampaignState, intent: ExperimentRow, *, used: Usage, prices: dict[str, float] | None
) -> list[str]:
    """Why an intent whose job never reached the backend (a search iter or a final repeat) may not be submitted now.

    The intent is already charged in ``used``; it is checked against the budget
    without itself, so the envelope it was admitted under is not counted twice.
    Its row is data: a timeout that reads as none (the job would run with it,
    charged nothing) or a repeat the final block does not ask for is refused.
    """
    problems = []
    if intent.charged_timeout_s <= 0:
        problems.append(f"timeout {intent.timeout or intent.timeout_s!r} is not a positive duration")
    final, repeat = program.campaign.final, intent.final_of is not None
    if repeat and (final is None or intent.repeat is None or intent.repeat > final.repeats):
        problems.append(f"repeat {intent.repeat} is not one of the final block's {final.repeats if final else 0}")
    proposal = Proposal(config=intent.config, flavor=intent.flavor, timeout_s=intent.charged_timeout_s or None)
    return problems + proposal_problems(program, state, proposal, used=without_intent(used, intent, prices),
                                        prices=prices, repeat=repeat)


def without_intent(used: Usage, intent: ExperimentRow, prices: dict[str, float] | None) -> Usage:
    """``used`` less what it charges ``intent`` (an intent is charged as a job in flight, see budget.usage)."""
    own = Usage(jobs=1, walltime_s=charged_seconds(intent, used.starting_s),
                cost_usd=charged_cost(intent, prices, used.starting_s))
    return replace(used, jobs=used.jobs - own.jobs, walltime_s=used.walltime_s - own.walltime_s,
                   cost_usd=used.cost_usd - own.cost_usd)


def readmitted(program: Program, state: CampaignState, intent: ExperimentRow, *, commit: str | None,
               ts: str) -> tuple[ExperimentRow, str | None]:
    """An intent to resubmit as program.md gives it: its own iter's output repo and this step's ``commit``.

    A ledger row never decides where a job writes: the row is rewritten (the job spec ignores it anyway), and a
    note says so when the row named another repo. Returns the row unchanged when it already agrees.
    """
    repo = output_repo_for(program.envelope, state.campaign_id or "", intent.iter) or None
    if (intent.output_repo, intent.commit) == (repo, commit):
        return intent, None
    note = None
    if intent.output_repo != repo:
        note = (f"iter {intent.iter}: the intent named the output repo {intent.output_repo or 'none'}, which is not the "
                f"one program.md gives this iter ({repo or 'none'}); it is resubmitted with {repo or 'none'}")
    return intent.model_copy(update={"ts": ts, "output_repo": repo, "commit": commit}), note


def admit(
    program: Program, state: CampaignState, proposal: Proposal, *, iteration: int, used: Usage,
    prices: dict[str, float] | None, ts: str, commit: str | None = None,
) -> ExperimentRow | list[str]:
    """The intent row to write before submitting ``proposal``, or why it is refused.

    ``commit``: the commit that authorizes the spend (GitHub mode), recorded on the row.
    """
    problems = proposal_problems(program, state, proposal, used=used, prices=prices)
    intents = sum(1 for e in state.in_flight if not e.job_id)
    live = max(len(state.in_flight), used.in_flight + intents)
    if live >= program.envelope.max_parallel:
        problems.append(f"max_parallel={program.envelope.max_parallel} reached ({live} in flight)")
    if problems:
        return problems
    from mlr_action.core.ledger import experiment_row

    return experiment_row(
        iter=iteration, ts=ts, status="proposed", config=dict(proposal.config),
        timeout_s=proposal.timeout_s or program.default_timeout_s,
        flavor=proposal.flavor or program.default_flavor,
        hypothesis=proposal.hypothesis, reason=proposal.reason, proposer=proposal.proposer,
        output_repo=output_repo_for(program.envelope, state.campaign_id or "", iteration) or None, commit=commit,
    )
