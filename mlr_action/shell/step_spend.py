"""Spending: the jobs a tick submits (new, readmitted, final repeats) and the proposer's LLM calls, each recorded first.

A mixin of :class:`~mlr_action.shell.step.Step`. It relies on the Step's
``root``, ``backend``, ``proposer``, ``forge``, ``publish``, ``snapshot``,
``ts()``, ``_commit``, ``_campaign``, ``_reconciled``, and its methods
``_append``, ``_usage``, ``_refuse``, ``_work_tree`` and ``_reconcile``
(:mod:`.step_observe`).

Guarantees:

- Nothing is spent that cannot be recorded: the intent rows of one tick are
  appended, published together (:func:`mlr_action.core.recording.record_before`),
  then submitted, and each job id is appended after its submit. A proposer
  that calls an LLM first reserves what its calls may cost, in a row
  published before the first call; when that publish fails the reservation
  is released by a row and no call is made. A failed publish ends the
  tick's spending: exit 1, or 2 escalated as ``publish-failed``.
- An intent whose job never reached the backend is checked against
  program.md again before it is resubmitted; one that no longer fits is
  refused (an envelope-breach escalation).
- An out-of-memory failure is answered by :mod:`mlr_action.core.recovery`
  before the proposer is asked (with the backend's live memory per flavor
  when it has it); a proposer that says more than asked gets no more slots,
  and one that finds nothing while nothing is in flight stops the campaign.
- After a stop, a ``final`` block's repeats of the best config run from the
  reserve (:mod:`mlr_action.core.final`) with the same order of side effects,
  never past the envelope; the final evaluation ends with a ``final`` row.
"""

from __future__ import annotations

import contextlib

from mlr_action.core import admission, decide, final
from mlr_action.core.budget import SETTLED
from mlr_action.core.jobs import BackendError
from mlr_action.core.ledger import EventRow, ExperimentRow
from mlr_action.core.program import Program
from mlr_action.core.proposal import Proposal
from mlr_action.core.recording import Unrecorded, record_before
from mlr_action.core.redaction import redact
from mlr_action.core.state import CampaignState
from mlr_action.job.jobspec import job_spec
from mlr_action.render.reports import render_escalation
from mlr_action.render.views import describe_row
from mlr_action.shell.step_result import BAD_INPUT, StepResult


class Spending:
    """The spending half of a step: plan, admit, reserve, publish, submit."""

    def _advance(self, program: Program, state: CampaignState, prices, result: StepResult) -> CampaignState:
        plan = decide.plan_next(program, state, used=self._usage(program, state, prices), prices=prices)
        if plan.stop:
            stop = EventRow(event="stopped", ts=self.ts(), reason=plan.stop, detail=plan.detail, program=program.fingerprint)
            result.events.append(f"stopped ({plan.stop}): {plan.detail}")
            return self._append(state, [stop])
        if plan.waiting:
            result.events.append(plan.waiting)
        state, intents = self._readmit(program, state, plan.resubmit, prices, result)
        if plan.propose:
            state, admitted = self._propose(program, state, plan.propose, prices, result)
            intents += admitted
        if intents:  # one publish for the tick's intents, then the submits
            self._record_before(result, f"submitting {len(intents)} job(s)")
            for intent in intents:
                state = self._submit(program, state, intent, result)
        return state

    def _readmit(self, program: Program, state: CampaignState, resubmit: tuple[ExperimentRow, ...],
                 prices, result: StepResult) -> tuple[CampaignState, list[ExperimentRow]]:
        """Intents whose job never reached the backend, checked again (search or final) and made program.md's own."""
        intents: list[ExperimentRow] = []
        for intent in resubmit:
            problems = admission.readmit_problems(program, state, intent, used=self._usage(program, state, prices),
                                                  prices=prices)
            if problems:
                self._refuse(result, intent.iter, problems)
                continue
            again, note = admission.readmitted(program, state, intent, commit=self._commit, ts=self.ts())
            if again is not intent:  # recorded before the publish that precedes the submit
                state = self._append(state, [again])
                result.events += [note] if note else []
            intents.append(again)
        return state, intents

    def _final(self, program: Program, state: CampaignState, prices, result: StepResult) -> CampaignState:
        """The final evaluation after the stop (mlr_action.core.final): repeats of the best config, from the reserve.

        As the search does it: reconcile, then the intent rows, one publish, the submits; or the row that ends it.
        """
        if not self._reconciled:
            state = self._reconcile(program, state, prices, result)
        plan = final.plan(program, state, used=self._usage(program, state, prices), prices=prices, ts=self.ts(),
                          commit=self._commit)
        if plan.done is not None:
            result.events.append(describe_row(program, plan.done))
            return self._append(state, [plan.done])
        result.events += [plan.waiting] if plan.waiting else []
        state, intents = self._readmit(program, state, plan.resubmit, prices, result)
        state = self._append(state, list(plan.new))
        intents += plan.new
        if intents:
            self._record_before(result, f"submitting {len(intents)} final evaluation job(s)")
            for intent in intents:
                state = self._submit(program, state, intent, result)
        return state

    def _propose(self, program: Program, state: CampaignState, count: int, prices,
                 result: StepResult) -> tuple[CampaignState, list[ExperimentRow]]:
        """Proposals admitted into intent rows (appended, not yet submitted); may stop the campaign (exhausted)."""
        def check(proposal: Proposal) -> list[str]:
            return admission.proposal_problems(program, state, proposal, used=self._usage(program, state, prices), prices=prices)

        proposals = self._recovery(program, state, prices, result)
        if count > len(proposals):
            state = self._reserve_llm(program, state, count - len(proposals), prices, result)
            try:
                proposals += self.proposer.propose(program=program, state=state, count=count - len(proposals), check=check,
                                                   used=self._usage(program, state, prices), prices=prices)
            finally:  # the proposer's rows (LLM spend, what settles its reservation) are kept even after an error
                events = self.proposer.take_events()
                result.llm_usd += sum(float(getattr(r, "llm_usd", 0) or 0) for r in events)
                state = self._append(state, events)
                result.events += [describe_row(program, r) for r in events]
        if not proposals and not state.in_flight:
            stop = EventRow(event="stopped", ts=self.ts(), reason="exhausted", program=program.fingerprint,
                            detail="the proposer found no untried config in the search space")
            result.events.append("stopped (exhausted): no untried config left in the search space")
            return self._append(state, [stop]), []
        admitted: list[ExperimentRow] = []
        for proposal in proposals[:count]:  # a proposer that says more than asked gets no more slots
            row = admission.admit(program, state, proposal, iteration=state.next_iter,
                                  used=self._usage(program, state, prices), prices=prices, ts=self.ts(), commit=self._commit)
            if isinstance(row, list):
                self._refuse(result, state.next_iter, row)
                break
            state = self._append(state, [row])
            admitted.append(row)
        return state, admitted

    def _reserve_llm(self, program: Program, state: CampaignState, count: int, prices, result: StepResult) -> CampaignState:
        """A proposer that calls an LLM first reserves what its calls may cost; the reservation is published first."""
        row = self.proposer.reserve(program=program, state=state, count=count,
                                    used=self._usage(program, state, prices), ts=self.ts())
        if row is None:
            return state
        state = self._append(state, [row])
        result.events.append(describe_row(program, row))
        try:
            self._record_before(result, "calling the LLM")
        except Unrecorded:  # no call is made: the reservation is released (it is charged until this row is read)
            self._append(state, [EventRow(event="llm", ts=self.ts(), reason=SETTLED, settles=getattr(row, "reservation"),
                                          llm_usd=0.0, detail="released: runs/ could not be published, so no call was made")])
            raise
        return state

    def _recovery(self, program: Program, state: CampaignState, prices, result: StepResult) -> list[Proposal]:
        """The seed's out-of-memory policy goes before the proposer (see mlr_action.core.recovery)."""
        from mlr_action.core.recovery import recovery_proposal

        memory = getattr(self.backend, "flavor_memory", lambda: None)()
        proposal = recovery_proposal(program, state, used=self._usage(program, state, prices), prices=prices, memory=memory)
        if proposal is None:
            return []
        result.events.append(proposal.reason)
        return [proposal]

    def _submit(self, program: Program, state: CampaignState, intent: ExperimentRow, result: StepResult) -> CampaignState:
        spec = job_spec(program, self._campaign or "", intent, self.root, self.snapshot, self._work_tree(program))
        job_id = self.backend.submit(spec=spec)
        runner, note = getattr(self.backend, "runner", None), getattr(self.backend, "runner_note", None)
        row = intent.model_copy(update={"ts": self.ts(), "status": "submitted", "job_id": job_id, "commit": self._commit,
                                        "folder_hash": spec.folder_hash, "runner": runner})
        if note and not any(getattr(e, "runner", None) == runner for e in state.experiments.values() if e.job_id):
            result.events.append(f"note: {note}")  # once, with the first job it applies to; the summary keeps saying it
        what = f" (final evaluation of iter {intent.final_of}, repeat {intent.repeat})" if intent.final_of else ""
        result.events += [f"note: {n}" for n in [getattr(spec.folder, "note", None)] if n and f"note: {n}" not in result.events]
        result.events.append(f"iter {intent.iter} submitted {job_id} ({intent.flavor}, {intent.timeout}){what}")
        result.submitted += 1
        result.submitted_ids.append(job_id)
        return self._append(state, [row])

    def _record_before(self, result: StepResult, what: str) -> None:
        """Nothing is spent that cannot be recorded: publish every row so far before ``what``, or spend nothing."""
        result.recorded = record_before(self.publish, result.events, what, since=result.recorded)

    def _unrecorded(self, result: StepResult, exc: Unrecorded) -> None:
        """The publish before a spend failed: nothing more is spent; a permanent failure is escalated as such."""
        result.exit_code = exc.exit_code
        said = redact(str(exc.error))
        result.events.append(f"could not publish runs/ before {exc.what}: {said}. Nothing more is spent in this tick; "
                             "the next tick publishes first, then goes on")
        if exc.exit_code == BAD_INPUT:
            kind = "publish-failed"
            result.escalated.add(kind)
            title, body = render_escalation(kind=kind, now=self.ts(), spent=result.spent(),
                                                       problems=[f"runs/ could not be published: {said}"])
            with contextlib.suppress(BackendError):
                self.forge.publish_escalation(kind=kind, title=title, body=body)  # type: ignore[attr-defined]
