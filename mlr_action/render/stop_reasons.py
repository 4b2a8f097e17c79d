"""Why a campaign stopped, in words, and what the user can do about it: one table, read as a set.

Guarantees:

- Every stop reason the step records (``target``, ``budget``, ``patience``,
  ``errors``, ``exhausted``, ``human``) has a :class:`StopReason` in
  :data:`STOP_REASONS`: a short form for titles and commit messages, the
  words that complete "The campaign stopped because ...", and the next steps.
  A reason not in the table (an older or edited ledger) still gets words: it
  is shown as code, never rendered, and the next steps say how to resume.
- The next steps tell the truth about resuming: a merged change to the YAML
  blocks of program.md resumes a campaign, except after a stop by a person,
  which only a person undoes.
- Pure: the words depend only on the reason and the program.
"""

from __future__ import annotations

from typing import NamedTuple

from mlr_action.core.markup import code
from mlr_action.core.metric import format_metric
from mlr_action.core.program import Program
from mlr_action.render.words import shorten


def goal_words(program: Program) -> str:
    """The campaign's goal in a few words: ``eval_accuracy ≥ 0.95``, or ``maximize eval_accuracy``."""
    campaign = program.campaign
    if campaign.target is None:
        return f"{campaign.direction} {campaign.metric}"
    op = "≥" if campaign.direction == "maximize" else "≤"
    return f"{campaign.metric} {op} {format_metric(campaign.target)}"


class StopReason(NamedTuple):
    short: str  # for titles and commit messages
    words: str  # completes "The campaign stopped because ..."; {goal} and {patience} come from the program
    next_steps: tuple[str, ...]  # what the user can do about it


# After a stop, a merged change to the YAML blocks of program.md resumes the
# campaign (merging is the approval to spend; see decide.resumption), except
# after a stop by a person, which only a person undoes.
STOP_REASONS: dict[str, StopReason] = {
    "target": StopReason(
        "target reached",
        "the target was reached ({goal})",
        (
            "Use the best result above (its config, and its Hub URL when the job pushed one).",
            "To search for something better, set a more ambitious `target` in program.md and merge the change: "
            "the next tick resumes the campaign.",
        ),
    ),
    "budget": StopReason(
        "budget spent",
        "the budget is spent ({reserve})",
        (
            "To run more experiments, raise `max_jobs`, `max_walltime` or `max_cost_usd` in the "
            "`## Budget envelope` block of program.md in a pull request and merge it: merging is the approval "
            "to spend, and the next tick resumes the campaign.",
        ),
    ),
    "patience": StopReason(
        "no improvement",
        "there was no improvement in {patience} experiments in a row",
        (
            "To keep searching, raise or remove `patience`, or widen `params`, in program.md and merge the "
            "change: the next tick resumes the campaign.",
        ),
    ),
    "errors": StopReason(
        "repeated errors",
        "experiments kept failing with errors that retrying will not fix",
        (
            "Read the errors in the experiments table and fix the training script or the environment "
            "(for example the `HF_TOKEN` secret).",
            "Then merge a change to the `## Budget envelope` or `## Campaign` block of program.md "
            "(raising `max_jobs` will do) to start again.",
        ),
    ),
    "exhausted": StopReason(
        "search space exhausted",
        "every configuration in the search space has been tried",
        (
            "To keep searching, widen `params` in program.md (wider ranges, more choices) and merge the "
            "change: the next tick resumes the campaign.",
        ),
    ),
    "human": StopReason(
        "stopped by a person",
        "a person stopped it",
        (
            "A stop by a person is not undone by a change to program.md. "
            "To continue, resume the campaign from the dashboard issue.",
        ),
    ),
}
_UNKNOWN_NEXT = (
    "To continue, raise the budget envelope or change the search in program.md and merge the change: "
    "the next tick resumes the campaign.",
)


def stop_reason_short(reason: str) -> str:
    known = STOP_REASONS.get(reason)
    return known.short if known else "stopped"


def stop_reason_text(reason: str, program: Program) -> str:
    """Why the campaign stopped, completing "The campaign stopped because ..."."""
    known = STOP_REASONS.get(reason)
    if known is None:
        return f"of {code(shorten(reason)) or 'a reason that was not recorded'}"
    return known.words.format(goal=goal_words(program), patience=program.campaign.patience or "several",
                              reserve=reserve_words(program))


def reserve_words(program: Program) -> str:
    """What the reserve the search keeps is for: the final evaluation when program.md has one, else nothing yet."""
    if program.campaign.final is not None:
        return "what is left is kept for the final evaluation and writeup"
    return ("what is left is kept in reserve, unspent: a `final` block in program.md would spend it on a final "
            "evaluation of the best config")


def next_steps(reason: str) -> list[str]:
    known = STOP_REASONS.get(reason)
    return list(known.next_steps if known else _UNKNOWN_NEXT)
