"""What a run spent, in the words every message uses (the action's refusals, escalations, the step summary).

Guarantees: standard library only, so the action's ``--check-inputs`` (run
before its environment is built) says it with the same words as a step.
"nothing was spent" (:data:`NOTHING_SPENT`) is said only when a step
submitted no job and paid for no LLM call (:func:`spent_text`).
"""

from __future__ import annotations

NOTHING_SPENT = "nothing was spent"


def spent_text(*, jobs: list[str], llm_usd: float) -> str:
    """What one step spent, for a message: "nothing was spent" only when it submitted nothing and paid nothing."""
    parts = []
    if jobs:
        parts.append(f"submitted {len(jobs)} job{'s' if len(jobs) != 1 else ''} ({', '.join(jobs)})")
    if llm_usd > 0:
        parts.append(f"spent ${llm_usd:.4f} on LLM calls")
    if not parts:
        return NOTHING_SPENT
    return "this step " + " and ".join(parts) + " before stopping; the ledger records it and the budget counts it"
