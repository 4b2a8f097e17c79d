"""One step of a campaign: the thin shell that carries out what :mod:`mlr_action.core.decide` decides.

Guarantees:

- Nothing is spent unless program.md validates and the ledger reads.
- Every side effect happens in an order that a crash at any point leaves
  recoverable: an intent row is appended *before* a submit and the job id
  *after* it; the next step adopts a job whose id was never written (it
  carries the campaign's labels) and resubmits an intent whose job never
  reached the backend. Rows are appended whole; the summary is replaced
  atomically.
- The campaign id (the jobs' labels) comes from program.md's ``name`` or the
  folder (:func:`~mlr_action.job.jobspec.campaign_id_for`), never from a ledger
  row; a ledger that names another campaign is noted in a row, not obeyed.
- Spend is what the backend says the campaign's jobs used: the budget and
  ``max_parallel`` count the union of the ledger and the jobs the backend
  lists under the campaign's labels (:func:`mlr_action.core.budget.usage`), so no
  edit of the ledger frees budget or a slot.
- Nothing is spent that cannot be recorded: before a submit and before an LLM
  call, every row so far is handed to ``publish`` (in GitHub Actions: pushed;
  locally the fsynced append is the record). The intents of one tick are
  published together, then submitted; the proposer's LLM spend is reserved in
  a row published before its first call. When the publish fails, nothing
  more is spent in the tick: exit 1 (transient) or 2 (permanent), and the
  next tick starts from the rows on disk (or, after a fresh checkout, from the
  remote and the jobs it adopts by label).
- Only one step runs on a repository at a time (a lock under ``.mlr/``).
  Nothing is written through a symlink (:mod:`mlr_action.core.safepath`): before
  anything else, in every mode, a symlink at ``.mlr``, at a file the bot
  writes there, at ``runs/`` or inside it is refused (exit 2, nothing
  spent), and every writer refuses one on its own.
- An out-of-memory failure is answered by :mod:`mlr_action.core.recovery` before
  the proposer is asked (with the backend's live memory per flavor when it
  has it); costs use the backend's live prices when it has them, and the
  summary says when the built-in table stands in.
- What the backend reports is read right (:mod:`mlr_action.core.observe`): a job
  waiting to start longer than ``scheduling_timeout`` is canceled and
  recorded as an error with what it was charged; a finished job whose log
  is not proven whole is read again on later ticks, then recorded as an
  error that says so; a backend that bills starting time has it reserved on
  every job. program.md is parsed once per step (``Step.program`` may bring
  it parsed; in GitHub mode the snapshot's one parse serves the whole tick:
  the authority's read, every lingering step and the action's report), and what the backend looked up (for HF: the namespace and the
  price list) is kept in ``runs/backend-cache.json`` for the next tick, whose
  content the backend alone vouches for (:meth:`HfBackend.use_cache`).
- After a stop, a ``final`` block's repeats of the best config run from the
  reserve (:mod:`mlr_action.core.final`), with the same order of side effects
  (intents, one publish, the submits) and never past the envelope; the
  final evaluation ends with a ``final`` row. A stop by a person cancels
  what is in flight, final repeats too.
- With ``allow_deletes``, the Hub repos of discarded runs are deleted after
  the stop (:mod:`mlr_action.core.cleanup`) and recorded, so never twice: only
  runs the backend lists under the campaign's labels, finished, discarded by
  the bot's rule replayed on their own logs; never on a ledger row's word.
- Exit codes: 0 done or nothing to do, 1 transient (the next tick retries),
  2 bad input (nothing spent).
- What a step says (``StepResult.events``: the Actions log, commit messages,
  the step summary) is redacted before the forge or the caller sees it, and
  job logs are redacted, with bytes that are not text replaced, before they
  are read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from mlr_action.core import admission, decide, final, observe, reconcile, safepath
from mlr_action.core.jobs import (
    BackendError,
    JobBackend,
    JobStage,
    JobView,
    LogIncomplete,
    PermanentError,
    TransientError,
)
from mlr_action.core.budget import SETTLED, Usage, usage
from mlr_action.forges.files import write_atomic
from mlr_action.job.jobspec import campaign_id_for, job_spec
from mlr_action.core.ledger import (
    LEDGER_PATH,
    EventRow,
    ExperimentRow,
    LedgerError,
    Row,
    append_rows,
    read_ledger,
    repair_ledger,
)
from mlr_action.core.program import Program, ProgramError, load_program
from mlr_action.core.recording import Publish, Unrecorded, record_before
from mlr_action.core.proposal import Proposal, Proposer
from mlr_action.core.spent import spent_text
from mlr_action.core.state import CampaignState, fold
from mlr_action.render.views import describe_row

if TYPE_CHECKING:
    from mlr_action.shell.authority import Snapshot

RUNS = Path("runs")
SUMMARY_PATH = RUNS / "summary.md"
BACKEND_CACHE_PATH = RUNS / "backend-cache.json"  # what the backend looked up, sealed by it (see HfBackend.use_cache)
BACKEND_CACHE_MAX_BYTES = 1_000_000  # a real one is a few kB; more is not read
OK, TRANSIENT, BAD_INPUT = 0, 1, 2


@dataclass
class StepResult:
    exit_code: int
    events: list[str] = field(default_factory=list)
    program: Program | None = None
    state: CampaignState | None = None
    used: Usage | None = None
    prices_note: str | None = None  # why costs use the built-in price table, when they do
    escalated: set[str] = field(default_factory=set)  # escalation kinds published by this step
    submitted: int = 0  # jobs submitted by this step
    submitted_ids: list[str] = field(default_factory=list)  # their ids
    llm_usd: float = 0.0  # LLM spend this step recorded
    recorded: int = 0  # how many of ``events`` a publish of runs/ in this step has committed
    observed: list[JobView] = field(default_factory=list)  # what the backend listed at the reconcile (mlr_action.shell.linger)

    def spent(self) -> str:
        """What this step spent, truthfully: "nothing was spent" only when it submitted and paid for nothing."""
        return spent_text(jobs=self.submitted_ids, llm_usd=self.llm_usd)

    @property
    def stopped(self) -> bool:
        return self.state is not None and self.state.stopped is not None

    @property
    def finished(self) -> bool:
        """Stopped, and the final evaluation (when program.md asks for one) is over: nothing more will happen."""
        from mlr_action.core.final import FINISHED_PHASE, phase

        return self.stopped and self.program is not None and phase(self.program, self.state) == FINISHED_PHASE  # type: ignore[arg-type]

    def fixed_escalations(self) -> set[str]:
        """Escalation kinds whose cause this step shows is gone, for the forge to close.

        A step that read program.md and the ledger and ran to the end proves
        both fine and the backend usable; an envelope breach is over once a job
        was submitted or the campaign stopped (the stop report then says why).
        """
        if self.program is None or self.state is None:
            return set()
        fixed = {"invalid-program", "ledger", "unrecoverable-error", "publish-failed"}
        if self.submitted or self.stopped:
            fixed.add("envelope-breach")
        return fixed - self.escalated


@dataclass
class Step:
    """The parts one step wires together; ``clock`` returns an aware datetime."""

    root: Path
    backend: JobBackend
    proposer: Proposer
    forge: object  # publish_stop_report / publish_escalation, see mlr_action.forges
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    program_path: Path | None = None
    # Puts every row so far where the next tick reads it (a commit message in; raises BackendError when it
    # cannot). None: the rows appended and fsynced on disk are the record (a local step). See mlr_action.core.recording.
    publish: Publish | None = None
    snapshot: Snapshot | None = None  # GitHub mode: program.md and the script as authorized (mlr_action.shell.authority)
    program: Program | None = None  # program.md already parsed by the caller (from the snapshot or the path above)

    @property
    def ledger_path(self) -> Path:
        return self.root / LEDGER_PATH

    @property
    def _commit(self) -> str | None:
        """The commit that authorizes this step's spend (GitHub mode), recorded on its intent and job rows."""
        return self.snapshot.commit if self.snapshot is not None else None

    def ts(self) -> str:
        return self.clock().isoformat(timespec="seconds")

    def run(self) -> StepResult:
        result = StepResult(exit_code=OK)
        self._campaign: str | None = None
        self._listed: list[JobView] = []  # what the backend listed under the campaign's labels this tick
        self._reconciled = False
        self._starting_s = 0.0  # what each job reserves to start, for a backend that bills it (observe.starting_allowance)
        try:
            with _lock(self.root):
                safepath.check_tree(self.root, RUNS)  # runs/ is written below: no link in it, in any mode
                self._run(result)
        except Unrecorded as exc:
            self._unrecorded(result, exc)
        except _Busy:
            result.exit_code = TRANSIENT
            result.events.append("another step is running on this repository; this tick does nothing")
        except ProgramError as exc:
            self._escalate(result, "invalid-program", exc.problems)
        except LedgerError as exc:
            self._escalate(result, "ledger", [str(exc)])
        except PermanentError as exc:
            self._escalate(result, "unrecoverable-error", [_redact(str(exc))])
        except TransientError as exc:
            result.exit_code = TRANSIENT
            said = _redact(str(exc))
            result.events.append(f"transient: {said}" + ("" if _RETRIES.search(said) else " (the next tick retries)"))
        result.events[:] = [_clean(e) for e in result.events]
        return result

    # -- the step, top to bottom --------------------------------------------

    def _run(self, result: StepResult) -> None:
        program = self._load_program()
        if program is None:
            result.exit_code = self._awaiting_program(result)
            return
        result.program = program
        repair_ledger(self.ledger_path, root=self.root)
        self._campaign = campaign_id_for(program, self.root)
        self._starting_s = observe.starting_allowance(program, self.backend)
        self._load_backend_cache(result)
        state = self._identify(program, self._fold(), result)
        resumed = decide.resumption(program, state, ts=self.ts())
        if resumed:
            state = self._append(state, [resumed])
            result.events.append("program.md changed after the stop: campaign resumed")
        controls = self.forge.read_controls(state=state)  # type: ignore[attr-defined]
        result.events += [describe_row(program, r) for r in controls]
        state = self._append(state, controls)
        prices, result.prices_note = self._prices()
        if state.stopped is None:
            state = self._reconcile(program, state, prices, result)
            state = self._advance(program, state, prices, result)
        if state.stopped is not None and final.pending(program, state):  # the stop may be this step's own
            state = self._final(program, state, prices, result)
        elif state.stopped is not None and state.in_flight:
            state = self._wind_down(program, state, prices, result)
        if state.stopped is not None:
            state = self._delete_discarded_repos(program, state, result)
        result.state, result.used = state, self._usage(program, state, prices)
        self._save_backend_cache()
        self._write_summary(program, state, result.used, result.prices_note, prices)
        if state.stopped is not None:
            self._publish_stop_report(program, state, result.used, prices)
        result.events[:] = [_clean(e) for e in result.events]  # the forge puts them in a commit message
        self.forge.finish_step(step=result)  # type: ignore[attr-defined]

    def _load_program(self) -> Program | None:
        """The snapshot's program (GitHub mode) or the work tree's program.md; None when there is none yet."""
        if self.program is not None:
            return self.program
        if self.snapshot is not None:
            return None if self.snapshot.text is None else self.snapshot.load()
        path = self.program_path or self.root / "program.md"
        return load_program(path) if path.exists() else None

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

    def _awaiting_program(self, result: StepResult) -> int:
        """No program.md: nothing may be spent; the forge says (or does) what comes next."""
        result.events.append(self.forge.onboard())  # type: ignore[attr-defined]
        return OK if getattr(self.forge, "onboards", False) else BAD_INPUT

    def _identify(self, program: Program, state: CampaignState, result: StepResult) -> CampaignState:
        """The campaign id is ours; a ledger whose ``started`` row names another is noted once, never obeyed."""
        if state.ledger_campaign == self._campaign:
            return state
        row = EventRow(event="started", ts=self.ts(), campaign=self._campaign, program=program.fingerprint)
        if state.ledger_campaign is None:
            result.events.append(f"campaign {self._campaign} started")
        else:
            row.reason = "campaign-id"
            row.detail = (f"the ledger named the campaign {state.ledger_campaign!r}; its id is {self._campaign!r}, from "
                          "program.md's name or the folder, and a ledger row never changes it")
            result.events.append(f"noted: {row.detail}")
        return self._append(state, [row])

    def _reconcile(self, program: Program, state: CampaignState, prices, result: StepResult) -> CampaignState:
        listed, observed, stuck = self._observe(program, state, result)
        wanted = {e.job_id for e in state.in_flight if e.job_id} | {v.job_id for v in listed if v.job_id not in state.known_jobs}
        finished = [j for j in wanted - stuck if observed[j].stage.terminal and observed[j].stage is not JobStage.DELETED]
        logs, pending, unreadable = self._finished_logs(observed, finished, result)
        rows = reconcile.reconcile(program, state, observed=observed, listed=listed, logs=logs, ts=self.ts(), prices=prices,
                                   pending=pending, unreadable=unreadable)
        for row in rows:
            if isinstance(row, EventRow) and row.reason == "duplicate-job":
                with contextlib.suppress(BackendError):
                    self.backend.cancel(job_id=str(getattr(row, "job_id")))
        result.events += [describe_row(program, r) for r in rows]
        return self._append(state, rows)

    def _observe(self, program: Program, state: CampaignState,
                 result: StepResult) -> tuple[list[JobView], dict[str, JobView], set[str]]:
        """The campaign's jobs as the backend lists them and each in flight as it reports it, after canceling
        those that waited too long to start (their ids: recorded as errors, with no log to read)."""
        listed = self.backend.list_jobs(campaign=self._campaign or "")
        observed: dict[str, JobView] = {v.job_id: v for v in listed}
        for exp in state.in_flight:
            if exp.job_id and exp.job_id not in observed:
                observed[exp.job_id] = self.backend.inspect(job_id=exp.job_id)
        stuck = observe.stuck_jobs(program, state.in_flight, observed)
        repeats = {e.job_id for e in state.in_flight if e.final_of is not None}
        for job_id, why in stuck.items():
            self.backend.cancel(job_id=job_id)
            # A search job that never started is an error (three in a row stop the campaign); a final repeat is
            # canceled, which runs it again once (mlr_action.core.final.to_run).
            stage = JobStage.CANCELED if job_id in repeats else JobStage.ERROR
            observed[job_id] = observed[job_id].model_copy(update={"stage": stage, "message": why})
            result.events.append(f"iter {observed[job_id].iter}: {why}")
        self._listed = [observed[v.job_id] if v.job_id in stuck else v for v in listed]  # canceled: no slot held
        self._reconciled = True
        result.observed = self._listed
        return listed, observed, set(stuck)

    def _finished_logs(self, observed: dict[str, JobView], job_ids: list[str],
                       result: StepResult) -> tuple[dict[str, str], frozenset[str], dict[str, str]]:
        """Logs read whole; jobs whose log is read again next tick; and why the others' never could be."""
        logs, incomplete = self._read_logs(job_ids)
        pending, unreadable = set(), {}
        for job_id, why in incomplete.items():
            wait, text = observe.log_verdict(observed[job_id], why, now=self.clock())
            if wait:
                pending.add(job_id)
                result.events.append(text)
            else:
                unreadable[job_id] = text
        return logs, frozenset(pending), unreadable

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

    def _work_tree(self, program: Program):
        """Local mode: the campaign folder as the work tree has it (read once per step); GitHub mode: None (the
        snapshot carries the commit's)."""
        if self.snapshot is not None:
            return None
        if getattr(self, "_shipped", None) is None:
            from mlr_action.job.committed import local_snapshot

            self._shipped = local_snapshot(Path(program.root) if program.root not in ("", ".") else self.root)
        return self._shipped

    def _refuse(self, result: StepResult, iteration: int, problems: list[str]) -> None:
        result.events.append(f"iter {iteration} not submitted: " + "; ".join(problems))
        result.escalated.add("envelope-breach")
        title, body = _reports().render_escalation(kind="envelope-breach", problems=problems, now=self.ts())
        self.forge.publish_escalation(kind="envelope-breach", title=title, body=body)  # type: ignore[attr-defined]

    # -- helpers -------------------------------------------------------------

    def _fold(self) -> CampaignState:
        return fold(read_ledger(self.ledger_path), campaign_id=self._campaign)

    def _append(self, state: CampaignState, rows: list[Row]) -> CampaignState:
        if not rows:
            return state
        append_rows(self.ledger_path, rows, root=self.root)
        return self._fold()

    def _usage(self, program: Program, state: CampaignState, prices) -> Usage:
        """The budget used: the ledger and what the backend listed this tick, each job at the larger charge."""
        return usage(state, prices, listed=self._listed, envelope=program.envelope, starting_s=self._starting_s)

    def _read_logs(self, job_ids: list[str]) -> tuple[dict[str, str], dict[str, str]]:
        """The logs of finished jobs that were read whole, and why the others were not (see observe.log_verdict)."""
        logs, incomplete = {}, {}
        for job_id in job_ids:
            try:
                logs[job_id] = _clean(self.backend.logs(job_id=job_id))
            except LogIncomplete as exc:
                incomplete[job_id] = _redact(str(exc))
        return logs, incomplete

    def _load_backend_cache(self, result: StepResult) -> None:
        """Hand the backend what it looked up on an earlier tick; it checks it is its own (anything else: ignored).

        The file is data anyone who can push may write: one too big, too deeply nested or not JSON is ignored
        with one line, and the backend looks things up again.
        """
        use = getattr(self.backend, "use_cache", None)
        path = self.root / BACKEND_CACHE_PATH
        if use is None or not path.is_file():
            return
        try:
            with path.open("rb") as handle:
                raw = handle.read(BACKEND_CACHE_MAX_BYTES + 1)
            if len(raw) > BACKEND_CACHE_MAX_BYTES:
                raise ValueError(f"over {BACKEND_CACHE_MAX_BYTES // 1_000_000} MB")
            use(json.loads(raw.decode("utf-8")))
        except (OSError, ValueError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else _redact(str(exc))[:200]
            result.events.append(f"{BACKEND_CACHE_PATH} ignored ({why}); the backend looks things up again")

    def _save_backend_cache(self) -> None:
        data = self.backend.cache() if hasattr(self.backend, "cache") else None  # type: ignore[attr-defined]
        if data is not None:
            write_atomic(self.root / BACKEND_CACHE_PATH, json.dumps(data, indent=1) + "\n", root=self.root)

    def _record_before(self, result: StepResult, what: str) -> None:
        """Nothing is spent that cannot be recorded: publish every row so far before ``what``, or spend nothing."""
        result.recorded = record_before(self.publish, result.events, what, since=result.recorded)

    def _unrecorded(self, result: StepResult, exc: Unrecorded) -> None:
        """The publish before a spend failed: nothing more is spent; a permanent failure is escalated as such."""
        result.exit_code = exc.exit_code
        said = _redact(str(exc.error))
        result.events.append(f"could not publish runs/ before {exc.what}: {said}. Nothing more is spent in this tick; "
                             "the next tick publishes first, then goes on")
        if exc.exit_code == BAD_INPUT:
            kind = "publish-failed"
            result.escalated.add(kind)
            title, body = _reports().render_escalation(kind=kind, now=self.ts(), spent=result.spent(),
                                                       problems=[f"runs/ could not be published: {said}"])
            with contextlib.suppress(BackendError):
                self.forge.publish_escalation(kind=kind, title=title, body=body)  # type: ignore[attr-defined]

    def _prices(self) -> tuple[dict[str, float] | None, str | None]:
        """Live prices, or None and (for a backend that has live prices) why the built-in table is used."""
        try:
            prices = self.backend.prices()
        except TransientError as exc:
            return None, f"live prices could not be read ({_redact(str(exc))}); costs use the built-in price table, rounded up"
        return prices, None if prices else getattr(self.backend, "prices_note", None)

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
                    refused[repo] = _redact(str(exc))
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
        title, body = _reports().render_stop_report(program=program, state=state, used=used, now=self.ts(), prices=prices)
        self.forge.publish_stop_report(title=title, body=body)  # type: ignore[attr-defined]

    def _escalate(self, result: StepResult, kind: str, problems: list[str]) -> None:
        result.exit_code = BAD_INPUT
        result.escalated.add(kind)
        spent = result.spent()
        problems = [_true_to(spent, p) for p in problems]
        said = "; ".join(problems)
        result.events.append(f"{kind}: {said}" + ("" if said.endswith(spent) else f" ({spent})"))
        title, body = _reports().render_escalation(kind=kind, problems=problems, now=self.ts(), spent=spent)
        try:
            self.forge.publish_escalation(kind=kind, title=title, body=body)  # type: ignore[attr-defined]
        except BackendError as exc:  # the forge itself may be what failed (say, no issues permission)
            result.events.append(f"could not publish the {kind} report: {_redact(str(exc))}")


def _reports():
    from mlr_action.render import reports

    return reports


def _redact(text: str) -> str:
    from mlr_action.core.redaction import redact

    return redact(text)


def _clean(text: str) -> str:
    """``text`` redacted, with lone surrogates (bytes a job printed that are not UTF-8) replaced."""
    return _redact(text.encode("utf-8", "replace").decode("utf-8"))


# A message that already says the next tick (or step) retries needs no "(the next tick retries)" after it.
_RETRIES = re.compile(r"\bnext (tick|step) retries\b", re.IGNORECASE)
# What an error text says about spend, at its end ("...; nothing was spent"): true only of a step that spent nothing.
_NOTHING_SPENT = re.compile(r"[;,.]?\s*\(?nothing was spent\)?\.?\s*$", re.IGNORECASE)


def _true_to(spent: str, problem: str) -> str:
    """``problem`` without its closing "nothing was spent" when this step did spend (the step says what instead).

    The ledger's texts end so because reading it fails before a spend; the step re-reads it after its submits too.
    """
    return problem if spent == _reports().NOTHING_SPENT else _NOTHING_SPENT.sub("", problem)


class _Busy(Exception):
    pass


STATE_DIR = Path(".mlr")
# What the bot writes under .mlr/: the folder, its .gitignore, the step's lock, the local backend's registry.
STATE_PATHS = (STATE_DIR / ".gitignore", STATE_DIR / "step.lock", STATE_DIR / "jobs" / "lock")


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[None]:
    """One step per repository at a time; the lock dies with the process that holds it.

    Nothing under ``.mlr/`` is written through a symlink (a committed ``.mlr/step.lock -> ../.git/config``
    would otherwise be truncated): every path the bot writes there is checked first, then opened without
    following a link and without truncating (:mod:`mlr_action.core.safepath`).
    """
    for path in STATE_PATHS:
        safepath.check(root, path)
    safepath.create(root, STATE_PATHS[0], b"*\n")
    fd = safepath.open_lock(root, STATE_PATHS[1])
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _Busy() from None
        yield
    finally:
        os.close(fd)  # closing releases the flock
