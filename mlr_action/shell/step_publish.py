"""What a step leaves for people: the summary, the stop report, escalations, and the end of a stopped campaign.

A mixin of :class:`~mlr_action.shell.step.Step`. It relies on the Step's
``root``, ``backend``, ``forge``, ``ts()``, ``_campaign``, ``_append``, and
on ``_reconcile`` and ``_read_logs`` (:mod:`.step_observe`).

Guarantees:

- ``runs/summary.md`` is replaced atomically and stamped with the last
  row's time, so an unchanged ledger gives an unchanged summary.
- An escalation exits 2 and says truthfully what the step spent (a
  problem's closing "nothing was spent" is dropped when the step did
  spend); a forge that cannot publish it is said in the events, not raised.
- After a stop by a person, what is in flight is canceled (final repeats
  too) and recorded; an intent whose job never reached the backend is
  closed as canceled, so it stops being charged.
- With ``allow_deletes``, the Hub repos of discarded runs are deleted after
  the stop (:mod:`mlr_action.core.cleanup`) and recorded, so never twice,
  even when a transient error ends the round: only runs the backend lists
  under the campaign's labels, finished, discarded by the bot's rule
  replayed on their own logs; never on a ledger row's word.
"""

from __future__ import annotations

import re

from mlr_action.core.budget import Usage
from mlr_action.core.jobs import BackendError, JobStage, PermanentError
from mlr_action.core.program import Program
from mlr_action.core.redaction import redact
from mlr_action.core.spent import NOTHING_SPENT
from mlr_action.core.state import CampaignState
from mlr_action.forges.files import write_atomic
from mlr_action.render.reports import render_escalation, render_stop_report
from mlr_action.shell.step_result import BAD_INPUT, SUMMARY_PATH, StepResult

# What an error text says about spend, at its end ("...; nothing was spent"): true only of a step that spent nothing.
_SPENT_CLAUSE = re.compile(r"[;,.]?\s*\(?nothing was spent\)?\.?\s*$", re.IGNORECASE)


class Publishing:
    """The words and the ending of a step: summary, reports, escalations, wind-down, cleanup."""

    def _wind_down(self, program: Program, state: CampaignState, prices, result: StepResult) -> CampaignState:
        """After a stop by a person, cancel what is still in flight and record how it ended.

        Intents whose job never reached the backend are closed as canceled, so
        they stop being charged; a job adopted later is canceled on the next tick.
        """
        for exp in state.in_flight:
            if exp.job_id:
                self.backend.cancel(job_id=exp.job_id)
                result.events.append(f"iter {exp.iter}: canceled {exp.job_id} (the campaign was stopped)")
        state = self._reconcile(program, state, prices, result)
        orphans = [e.model_copy(update={"ts": self.ts(), "status": "canceled", "decision": "discard",
                                        "error": "the campaign stopped before this job was submitted"})
                   for e in state.in_flight if not e.job_id]
        return self._append(state, orphans)

    def _delete_discarded_repos(self, program: Program, state: CampaignState, result: StepResult) -> CampaignState:
        """allow_deletes: at the stop, delete the Hub repos of discarded runs, once, and record it.

        The ledger only proposes (:func:`mlr_action.core.cleanup.candidates`); what is deleted is decided from the
        jobs the backend lists under the campaign's labels and their own logs (:mod:`mlr_action.core.cleanup`).
        """
        from mlr_action.core.cleanup import candidates, deleted_row, repos_to_delete

        delete = getattr(self.backend, "delete_repo", None)
        if delete is None or not candidates(program, state):
            return state
        listed = self.backend.list_jobs(campaign=self._campaign or "")
        logs, _ = self._read_logs([v.job_id for v in listed if v.stage is JobStage.COMPLETED])  # a log not whole: kept
        plan = repos_to_delete(program, state, listed=listed, logs=logs)
        deleted: list[str] = []
        missing: list[str] = []
        refused: dict[str, str] = {}
        try:
            for repo in plan.delete:
                try:
                    (deleted if delete(repo_id=repo) else missing).append(repo)
                except PermanentError as exc:
                    refused[repo] = redact(str(exc))
        finally:  # what was done is recorded even when a transient error ends the round
            if deleted or missing or refused or plan.keep:
                row = deleted_row(ts=self.ts(), deleted=deleted, missing=missing, refused=refused, kept=plan.keep)
                result.events.append(row.detail)
                state = self._append(state, [row])
        return state

    def _write_summary(self, program: Program, state: CampaignState, used: Usage, prices_note: str | None = None,
                       prices: dict[str, float] | None = None) -> None:
        from mlr_action.render.summary import render_summary

        # Stamped with the last row's time, so an unchanged ledger gives an unchanged summary.
        stamps = [r.ts for r in (*state.experiments.values(), *state.finals.values(), *state.events)]
        now = max(stamps) if stamps else self.ts()
        write_atomic(self.root / SUMMARY_PATH, render_summary(program=program, state=state, used=used, now=now, prices=prices,
                                                              prices_note=prices_note), root=self.root)

    def _publish_stop_report(self, program: Program, state: CampaignState, used: Usage, prices=None) -> None:
        title, body = render_stop_report(program=program, state=state, used=used, now=self.ts(), prices=prices)
        self.forge.publish_stop_report(title=title, body=body)  # type: ignore[attr-defined]

    def _escalate(self, result: StepResult, kind: str, problems: list[str]) -> None:
        result.exit_code = BAD_INPUT
        result.escalated.add(kind)
        spent = result.spent()
        problems = [_true_to(spent, p) for p in problems]
        said = "; ".join(problems)
        result.events.append(f"{kind}: {said}" + ("" if said.endswith(spent) else f" ({spent})"))
        title, body = render_escalation(kind=kind, problems=problems, now=self.ts(), spent=spent)
        try:
            self.forge.publish_escalation(kind=kind, title=title, body=body)  # type: ignore[attr-defined]
        except BackendError as exc:  # the forge itself may be what failed (say, no issues permission)
            result.events.append(f"could not publish the {kind} report: {redact(str(exc))}")


def _true_to(spent: str, problem: str) -> str:
    """``problem`` without its closing "nothing was spent" when this step did spend (the step says what instead).

    The ledger's texts end so because reading it fails before a spend; the step re-reads it after its submits too.
    """
    return problem if spent == NOTHING_SPENT else _SPENT_CLAUSE.sub("", problem)
