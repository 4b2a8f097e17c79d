"""A proposed experiment, and the one validator every proposal passes.

Guarantees: :func:`validate_proposal` is pure and is the only gate between a
proposer (search or an LLM) and a submit. It checks every param against its
declared range and type, that no undeclared param is set, that the flavor is
allowed, that the timeout is within ``max_timeout``, that the config is not
identical to one that already failed, and that the job fits in what is left
of the budget. A proposal can never widen the envelope or the search space.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict



class Proposal(BaseModel):
    """What a proposer wants to run next. Only the validator decides if it may."""

    model_config = ConfigDict(frozen=True)

    config: dict[str, Any]
    flavor: str | None = None
    timeout_s: int | None = None
    hypothesis: str = ""
    reason: str = ""
    proposer: str = "search"


class Proposer:
    """The seam every proposer implements: ``propose`` returns up to ``count`` proposals.

    ``check(proposal)`` returns the validator's problems for a proposal (empty
    when it may be submitted); a proposer may use it to repair its answer, but
    the step validates every proposal again whatever the proposer did.
    ``take_events`` hands over ledger rows the proposer wants recorded (LLM
    spend, a fallback and why, research notes) and forgets them.
    ``used`` is what the step counts as used (the ledger and the backend's
    listing, see :func:`mlr_action.core.budget.usage`) and ``prices`` the prices it
    charges at; a proposer that checks the budget itself starts from them
    (None: the ledger's view at the built-in prices), so it never fills a slot
    the step's admit then refuses.
    ``reserve`` is asked before ``propose``: a proposer that spends (an LLM)
    returns the row that reserves the most the next ``propose`` may spend, and
    the step records and publishes it before calling ``propose``; the rows
    ``take_events`` hands over afterwards settle it.
    """

    name = "base"

    def reserve(self, *, program, state, count: int, used, ts: str):
        """The row reserving what the next ``propose`` may spend; None when it spends nothing."""
        return None

    def propose(self, *, program, state, count: int, check=None, used=None,
                prices=None) -> list[Proposal]:  # pragma: no cover - interface
        raise NotImplementedError

    def take_events(self) -> list:
        return []
