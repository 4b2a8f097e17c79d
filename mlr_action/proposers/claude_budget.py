"""What the Claude proposer may spend: the tick's reservation, the cap, and this step's earlier proposals charged.

:class:`Reservations` is the part of :class:`~mlr_action.proposers.claude.ClaudeProposer`
that keeps LLM spend within ``max_llm_usd``. Guarantees:

- :meth:`Reservations.reserve` gives the step, before any call of a tick, a
  reservation row (an ``llm`` row with reason ``reserved``) for the most this
  tick's calls may cost (every proposal answered and repaired, a research
  turn with its continuations, at the longest prompts they can have), capped
  by what ``max_llm_usd`` leaves; None when not even the smallest call fits.
- Within a reserved tick, :meth:`Reservations._over_cap` lets a call through
  only while the calls' worst-case estimates and what they spent stay within
  the reservation; without one, only while ``max_llm_usd`` holds. Its answer
  says what to raise to go on.
- The settling row (reason ``settled``) says what the tick's calls spent; a
  reservation never settled stays charged in full.
- :class:`Budget` charges this step's earlier proposals as the intent rows the
  step will admit, so a later proposal (and the search fallback) is checked
  against what is left after them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime
from typing import Any, Callable

from mlr_action.core.budget import RESERVED, SETTLED, Usage, budget_problems, plus_intents
from mlr_action.core.flavors import price_per_hour
from mlr_action.core.ledger import EventRow, ExperimentRow
from mlr_action.core.proposal import Proposal
from mlr_action.proposers import prompt, research
from mlr_action.proposers.llm import MAX_CONTINUATIONS
from mlr_action.proposers.pricing import estimate_usd
from mlr_action.core.state import CampaignState

PROPOSAL_MAX_TOKENS = 4096
RESEARCH_MAX_TOKENS = 4096


@dataclasses.dataclass(frozen=True)
class Reservation:
    """What this tick's calls may cost in all, as recorded before the first of them ("" id: nothing reserved)."""

    id: str
    usd: float


class Reservations:
    """The tick's reservation and the cap; the proposer that inherits it gives ``model``, ``client``,
    ``clock``, ``_events`` and ``_ts``."""

    model: str
    client: Any
    clock: Callable[[], datetime]
    _events: list[EventRow]
    _reservation: Reservation | None

    def reserve(self, *, program, state: CampaignState, count: int, used: Usage, ts: str) -> EventRow | None:
        """The row to record (and publish) before this tick's calls: the most they may cost, within max_llm_usd.

        None when no call can fit: then ``propose`` makes none and search decides.
        """
        self._reservation = None
        if count <= 0:
            return None
        worst, smallest = self._worst_case(program, state, count, used)
        cap = program.envelope.max_llm_usd
        amount = math.floor((worst if cap is None else min(worst, cap - used.llm_usd)) * 1e6) / 1e6
        if amount < smallest:
            self._reservation = Reservation("", 0.0)
            return None
        number = 1 + sum(1 for e in state.events if e.event == "llm" and e.reason == RESERVED)
        self._reservation = Reservation(f"{state.next_iter}.{number}", amount)
        detail = (f"reserved ${amount:.4f} for this tick's calls to {self.model} (settled by the row that records "
                  "what they cost; charged in full until then)")
        return EventRow(event="llm", ts=ts, reason=RESERVED, detail=detail, reservation=self._reservation.id,
                        llm_usd=amount, model=self.model)

    def _worst_case(self, program, state: CampaignState, count: int, used: Usage) -> tuple[float, float]:
        """(the most ``propose`` may spend now, the least one proposal call may cost)."""
        output = prompt.answer_model(program)
        base = len(prompt.SYSTEM) + len(json.dumps(output.model_json_schema()))
        base += len(prompt.context(program, state, used=used))
        smallest = estimate_usd(self.model, prompt_chars=base, max_tokens=PROPOSAL_MAX_TOKENS)
        # A note written this tick, this tick's earlier proposals, and a repair's refused answer and problems.
        longest = base + prompt.NOTE_CHARS + 500 + count * 1000 + prompt.ANSWER_CHARS + 12 * 320 + 500
        worst = 2 * count * estimate_usd(self.model, prompt_chars=longest, max_tokens=PROPOSAL_MAX_TOKENS)
        why = research.research_due(state)
        if why:
            chars = len(research.SYSTEM) + len(research.research_prompt(program, state, why=why))
            turn = estimate_usd(self.model, prompt_chars=chars, max_tokens=RESEARCH_MAX_TOKENS,
                                searches=research.MAX_SEARCHES)
            worst += (1 + MAX_CONTINUATIONS) * turn
        return worst, smallest

    def _settle(self) -> None:
        reservation, self._reservation = self._reservation, None
        if reservation is None or not reservation.id:
            return
        spent = self._spent_this_tick()
        self._events.append(EventRow(
            event="llm", ts=self._ts(), reason=SETTLED, settles=reservation.id, llm_usd=0.0, model=self.model,
            detail=f"reservation {reservation.id} (${reservation.usd:.4f}) settled: ${spent:.4f} spent by this tick's calls"))

    def _spent_this_tick(self) -> float:
        return sum(float(getattr(e, "llm_usd", 0) or 0) for e in self._events) + self.client.pending_usd()


    def _over_cap(self, program, used: Usage, estimate: float) -> str | None:
        cap, reservation = program.envelope.max_llm_usd, self._reservation
        if reservation is not None and reservation.id:  # ``used`` holds the reservation: the tick spends within it
            if self._spent_this_tick() + estimate <= reservation.usd + 1e-12:
                return None
            return (f"this tick's reservation of ${reservation.usd:.3f} (within max_llm_usd) is used and the next "
                    f"Claude call may cost up to ${estimate:.3f}; the next tick reserves again")
        if cap is None:
            return None
        spent = used.llm_usd + self._spent_this_tick()
        if reservation is None and spent + estimate <= cap + 1e-12:
            return None
        return (f"max_llm_usd: ${spent:.2f} of ${cap:.2f} is spent and the next Claude call may cost up to "
                f"${estimate:.3f} (raise max_llm_usd in program.md to go on with Claude)")


@dataclasses.dataclass(frozen=True)
class Budget:
    """What the step counts as used (the ledger and the backend's listing) and the prices it charges them at."""

    used: Usage
    prices: dict[str, float] | None

    def with_pending(self, program, state: CampaignState, pending: list[Proposal]) -> Usage:
        """``used`` with this step's earlier proposals charged as the intents the step will admit."""
        return plus_intents(self.used, _pending_rows(program, state, pending), self.prices)


def room_for_another(program, used: Usage, prices: dict[str, float] | None) -> bool:
    """Could even the smallest job (cheapest allowed flavor, one minute) still fit the budget?"""
    cheapest = min(program.envelope.allowed_flavors, key=lambda flavor: price_per_hour(flavor, prices))
    return not budget_problems(program.envelope, used, flavor=cheapest, timeout_s=60, prices=prices,
                               keep_jobs=program.final_jobs)


def _pending_rows(program, state: CampaignState, pending: list[Proposal]) -> list[ExperimentRow]:
    """This step's earlier proposals as the intent rows the step would admit them as."""
    return [ExperimentRow(iter=state.next_iter + offset, ts="", status="proposed", config=dict(p.config),
                          flavor=p.flavor or program.default_flavor, timeout_s=p.timeout_s or program.default_timeout_s)
            for offset, p in enumerate(pending)]


def with_pending(program, state: CampaignState, pending: list[Proposal]) -> CampaignState:
    """``state`` with this step's earlier proposals as in-flight rows, so the fallback avoids them."""
    if not pending:
        return state
    experiments = dict(state.experiments)
    experiments.update((row.iter, row) for row in _pending_rows(program, state, pending))
    return dataclasses.replace(state, experiments=experiments)
