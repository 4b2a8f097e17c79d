"""The Claude proposer: a grounded hypothesis per experiment, research on the seed's cadence.

Guarantees:

- Importing this module or building a :class:`ClaudeProposer` does not import
  ``anthropic``; the first call does (see :mod:`mlr_action.proposers.llm`).
- Each decision is one structured-output call with a bounded context
  (:mod:`mlr_action.proposers.prompt`). An answer that is refused, cut off,
  unparseable or rejected by ``check`` (the validator) gets exactly one repair
  call with the problems quoted; if that fails too, or the API refuses the
  request, the search proposer decides instead and an ``llm`` event row says
  why. Its budget checks and the envelope its prompt shows start from what
  the step counts as used (``used``: the ledger and the backend's listing, at
  the step's prices), never the ledger's view alone. With several free
  slots, a later proposal is checked with this step's earlier ones charged on
  top, and none is asked for once they use what is left. Nothing the model
  says is submitted without passing ``check`` here and the validator again in
  the step: the model can never widen the envelope.
- Research (:mod:`mlr_action.proposers.research`) runs first when the ledger
  says it is due, and writes ``runs/research/NNN.md`` and one ``research``
  event row; later proposals quote the latest note as data.
- LLM spend is on rows: every decision and every research attempt appends an
  event row with ``llm_usd`` (and tokens, calls, searches), including calls
  whose answer was useless; spend not yet on a row when an error ends the call
  is flushed as an ``llm`` row with reason ``interrupted``. Before every call
  the worst-case estimate is checked against ``max_llm_usd``; over it, the
  call is not made, search decides, and the row says so.
- Nothing is spent that cannot be recorded (see
  :mod:`mlr_action.proposers.claude_budget`): :meth:`ClaudeProposer.reserve`
  gives the step, before any call of a tick, a reservation row (an ``llm`` row
  with reason ``reserved``) for the most this tick's calls may cost, capped by
  what ``max_llm_usd`` leaves; the step records and publishes it before
  ``propose``. Within the tick the calls' worst-case estimates never add up to
  more than the reservation, and the last row ``propose`` hands over settles it
  (reason ``settled``). A reservation never settled (a crash, a push that
  failed) stays charged in full, so ``max_llm_usd`` holds whatever is lost.
- Transient API errors (overloaded, rate limits, timeouts) propagate as
  :class:`~mlr_action.core.jobs.TransientError`: the step exits 1 and the
  next tick retries.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from mlr_action.core import admission
from mlr_action.core.budget import Usage, usage
from mlr_action.core.ledger import EventRow
from mlr_action.core.proposal import Proposal, Proposer
from mlr_action.proposers import prompt, research
from mlr_action.proposers.claude_budget import (
    PROPOSAL_MAX_TOKENS,
    RESEARCH_MAX_TOKENS,
    Budget,
    Reservation,
    Reservations,
    room_for_another,
    with_pending,
)
from mlr_action.proposers.llm import ClaudeClient, LlmUnavailable, api_key_from_env
from mlr_action.proposers.pricing import DEFAULT_MODEL, estimate_usd, price_for
from mlr_action.proposers.search import SearchProposer
from mlr_action.render.words import shorten
from mlr_action.core.state import CampaignState, config_key

WHY_CHARS = 300

NO_KEY = (
    "--proposer claude needs the ANTHROPIC_API_KEY environment variable (in GitHub Actions, a repository "
    "secret passed as env); set it, or use --proposer auto (Claude when the key is set, search otherwise) "
    "or --proposer search"
)


class ClaudeProposer(Reservations, Proposer):
    """Proposals from Claude, checked and repaired once, with the search proposer as the fallback."""

    name = "claude"

    def __init__(
        self, *, model: str | None = None, api_key: str | None = None, client: Any = None,
        fallback: Proposer | None = None, clock: Callable[[], datetime] | None = None,
    ):
        self.model = model or DEFAULT_MODEL
        if client is None:
            key = api_key or api_key_from_env()
            if not key:
                raise ValueError(NO_KEY)
            client = ClaudeClient(model=self.model, api_key=key)
        self.client = client
        self.fallback = fallback or SearchProposer()
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.price_note = price_for(self.model)[1]
        self._events: list[EventRow] = []
        self._reservation: Reservation | None = None

    def take_events(self) -> list[EventRow]:
        events, self._events = self._events, []
        return events

    def propose(self, *, program, state: CampaignState, count: int, check=None, used: Usage | None = None,
                prices: dict[str, float] | None = None) -> list[Proposal]:
        if count <= 0:
            return []
        budget = Budget(usage(state, prices) if used is None else used, prices)
        if check is None:

            def check(proposal: Proposal) -> list[str]:
                return admission.proposal_problems(program, state, proposal, used=budget.used, prices=prices)

        try:
            why = research.research_due(state)
            if why:
                self._research(program, state, why, budget.used)
            return self._proposals(program, state, count, check, budget)
        finally:
            self._flush("interrupted", "spend of calls cut short by an error (the next tick retries)")
            self._settle()

    # -- proposals -------------------------------------------------------------

    def _proposals(self, program, state, count: int, check, budget: Budget) -> list[Proposal]:
        note, note_name = research.read_latest_note(Path(program.root), state)
        out: list[Proposal] = []
        for _slot in range(count):
            if out and not room_for_another(program, budget.with_pending(program, state, out), budget.prices):
                break  # this step's proposals already use what is left
            iteration = state.next_iter + len(out)
            proposal, why = self._decide(program, state, budget, note, note_name, out, check)
            self._decision_event(iteration, proposal, why)
            if proposal is None:
                return out + self._fallback(program, state, out, count - len(out), why, budget)
            out.append(proposal)
        return out

    def _decide(self, program, state, budget: Budget, note, note_name, pending, check) -> tuple[Proposal | None, str]:
        """A proposal that passes ``check``, or None and why Claude could not give one."""
        used = budget.used
        base = prompt.context(program, state, used=used, note=note, note_name=note_name, pending=pending)
        output = prompt.answer_model(program)
        schema_chars = len(json.dumps(output.model_json_schema()))
        user, problems, answer = base, [], ""
        for attempt in range(2):  # the answer, then one repair
            if attempt:
                user = prompt.repair_text(base, answer, problems)
            chars = len(prompt.SYSTEM) + len(user) + schema_chars
            estimate = estimate_usd(self.model, prompt_chars=chars, max_tokens=PROPOSAL_MAX_TOKENS)
            over = self._over_cap(program, used, estimate)
            if over:
                return None, over
            try:
                parsed = self.client.parse(system=prompt.SYSTEM, user=user, output=output,
                                           max_tokens=PROPOSAL_MAX_TOKENS, estimate_usd=estimate)
            except LlmUnavailable as exc:
                return None, f"Claude is unavailable: {exc}"
            proposal, problems = self._judge(parsed, program, state, pending, check, budget)
            answer = parsed.text
            if proposal is not None:
                return proposal, ""
        return None, "the answer was still refused after one repair: " + "; ".join(problems)

    @staticmethod
    def _judge(parsed, program, state: CampaignState, pending: list[Proposal], check,
               budget: Budget) -> tuple[Proposal | None, list[str]]:
        if parsed.problems:
            return None, list(parsed.problems)
        proposal, problems = prompt.to_proposal(parsed.answer)
        if proposal is None:
            return None, problems
        problems = list(check(proposal))
        if pending:  # ``check`` sees what is used before this step's proposals; the earlier ones will be charged too
            more = admission.proposal_problems(program, with_pending(program, state, pending), proposal,
                                            used=budget.with_pending(program, state, pending), prices=budget.prices)
            problems += [p for p in more if p not in problems]
        key = config_key(proposal.config)
        if key not in state.failed_configs and (key in state.tried_configs or key in {config_key(p.config) for p in pending}):
            problems.append("this exact config was already tried or is in flight; propose one not tried yet")
        return (None, problems) if problems else (proposal, [])

    def _fallback(self, program, state, pending: list[Proposal], count: int, why: str,
                  budget: Budget) -> list[Proposal]:
        if count <= 0:
            return []
        proposals = self.fallback.propose(program=program, state=with_pending(program, state, pending), count=count,
                                          used=budget.with_pending(program, state, pending), prices=budget.prices)
        note = f" (Claude fallback: {shorten(why, WHY_CHARS)})"
        return [p.model_copy(update={"reason": (p.reason + note).strip()}) for p in proposals]

    # -- research --------------------------------------------------------------

    def _research(self, program, state: CampaignState, why: str, used: Usage) -> None:
        number, done = research.note_number(state), len(state.finished)
        user = research.research_prompt(program, state, why=why)
        estimate = estimate_usd(self.model, prompt_chars=len(research.SYSTEM) + len(user),
                                max_tokens=RESEARCH_MAX_TOKENS, searches=research.MAX_SEARCHES)
        base = {"after": done, "why": why}
        over = self._over_cap(program, used, estimate)
        if over:
            return self._research_event("over-cap", f"research skipped: {over}", **base)
        try:
            outcome = self.client.search(
                system=research.SYSTEM, user=user, max_uses=research.MAX_SEARCHES, max_tokens=RESEARCH_MAX_TOKENS,
                estimate_usd=estimate, before_call=lambda: self._over_cap(program, used, estimate),
            )
        except LlmUnavailable as exc:
            return self._research_event("unavailable", f"research skipped, web search unavailable: {exc}; "
                                        "proposals go on without it", **base)
        if not outcome.sources and (outcome.errors or not outcome.text.strip()):
            errors = ", ".join(outcome.errors) or "no results"
            return self._research_event("unavailable", f"web search returned nothing usable ({errors}); "
                                        "proposals go on without new research", **base)
        relative = research.note_path(number)
        text = research.render_note(number=number, model=self.model, finished=done, why=why,
                                    outcome=outcome, ts=self._ts())
        research.write_note(Path(program.root), relative, text)
        found = research.plural(len(outcome.sources), "source", "sources")
        detail = (f"research note {number:03d}: {found} from {research.plural(outcome.searches, 'search', 'searches')} "
                  f"({why})" + (f"; search errors: {', '.join(outcome.errors)}" if outcome.errors else ""))
        self._research_event("note", detail, note=relative.as_posix(), **base)

    # -- rows ------------------------------------------------------------------

    def _ts(self) -> str:
        return self.clock().isoformat(timespec="seconds")

    def _spend_fields(self) -> dict[str, Any]:
        spend = self.client.take_spend()
        fields = {"model": self.model, "llm_usd": round(spend.usd, 6), "calls": spend.calls,
                  "input_tokens": spend.input_tokens, "output_tokens": spend.output_tokens}
        if spend.web_searches:
            fields["web_searches"] = spend.web_searches
        if spend.estimated:
            fields["usage_missing"] = spend.estimated  # charged the worst-case estimate
        if self.price_note:
            fields["price_note"] = self.price_note
        return fields

    def _decision_event(self, iteration: int, proposal: Proposal | None, why: str) -> None:
        fields = self._spend_fields()
        cost = f"{research.plural(fields['calls'], 'call', 'calls')}, ${fields['llm_usd']:.4f}"
        if proposal is not None:
            reason, detail = "proposal", f"iter {iteration}: proposed by {self.model} ({cost})"
        else:
            reason = "fallback"
            detail = f"iter {iteration}: the search proposer stands in for Claude: {shorten(why, WHY_CHARS)} ({cost})"
        self._events.append(EventRow(event="llm", ts=self._ts(), reason=reason, detail=detail, iter=iteration, **fields))

    def _research_event(self, reason: str, detail: str, **extra: Any) -> None:
        fields = self._spend_fields()
        detail = f"{detail} (${fields['llm_usd']:.4f})"
        self._events.append(EventRow(event="research", ts=self._ts(), reason=reason, detail=detail, **extra, **fields))

    def _flush(self, reason: str, detail: str) -> None:
        if self.client.pending_usd() > 0:
            self._events.append(EventRow(event="llm", ts=self._ts(), reason=reason, detail=detail, **self._spend_fields()))

