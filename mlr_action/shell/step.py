"""One step of a campaign: the thin shell that carries out what :mod:`mlr_action.core.decide` decides.

:class:`Step` holds the parts and runs the step top to bottom; its halves are
mixins, each stating what it keeps of the guarantees below:
:mod:`.step_observe` (what the backend reports, reconciled),
:mod:`.step_spend` (intents, the LLM reservation, publish, submit) and
:mod:`.step_publish` (summary, reports, escalations, wind-down, cleanup);
:mod:`.step_result` is what it hands back, :mod:`.steplock` its lock.

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

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from mlr_action.core import decide, final, observe, safepath
from mlr_action.core.budget import Usage, usage
from mlr_action.core.jobs import JobBackend, JobView, PermanentError, TransientError
from mlr_action.core.ledger import LEDGER_PATH, LedgerError, Row, append_rows, read_ledger, repair_ledger
from mlr_action.core.program import Program, ProgramError, load_program
from mlr_action.core.proposal import Proposer
from mlr_action.core.recording import Publish, Unrecorded
from mlr_action.core.redaction import redact
from mlr_action.core.state import CampaignState, fold
from mlr_action.job.jobspec import campaign_id_for
from mlr_action.render.reports import render_escalation
from mlr_action.render.views import describe_row
from mlr_action.shell.step_observe import Observing
from mlr_action.shell.step_publish import Publishing
from mlr_action.shell.step_result import BAD_INPUT, OK, RUNS, TRANSIENT, StepResult, clean
from mlr_action.shell.step_spend import Spending
from mlr_action.shell.steplock import Busy, lock

if TYPE_CHECKING:
    from mlr_action.shell.authority import Snapshot

# A message that already says the next tick (or step) retries needs no "(the next tick retries)" after it.
_RETRIES = re.compile(r"\bnext (tick|step) retries\b", re.IGNORECASE)


@dataclass
class Step(Observing, Spending, Publishing):
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
            with lock(self.root):
                safepath.check_tree(self.root, RUNS)  # runs/ is written below: no link in it, in any mode
                self._run(result)
        except Unrecorded as exc:
            self._unrecorded(result, exc)
        except Busy:
            result.exit_code = TRANSIENT
            result.events.append("another step is running on this repository; this tick does nothing")
        except ProgramError as exc:
            self._escalate(result, "invalid-program", exc.problems)
        except LedgerError as exc:
            self._escalate(result, "ledger", [str(exc)])
        except PermanentError as exc:
            self._escalate(result, "unrecoverable-error", [redact(str(exc))])
        except TransientError as exc:
            result.exit_code = TRANSIENT
            said = redact(str(exc))
            result.events.append(f"transient: {said}" + ("" if _RETRIES.search(said) else " (the next tick retries)"))
        result.events[:] = [clean(e) for e in result.events]
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
        result.events[:] = [clean(e) for e in result.events]  # the forge puts them in a commit message
        self.forge.finish_step(step=result)  # type: ignore[attr-defined]

    def _load_program(self) -> Program | None:
        """The snapshot's program (GitHub mode) or the work tree's program.md; None when there is none yet."""
        if self.program is not None:
            return self.program
        if self.snapshot is not None:
            return None if self.snapshot.text is None else self.snapshot.load()
        path = self.program_path or self.root / "program.md"
        return load_program(path) if path.exists() else None

    def _awaiting_program(self, result: StepResult) -> int:
        """No program.md: nothing may be spent; the forge says (or does) what comes next."""
        result.events.append(self.forge.onboard())  # type: ignore[attr-defined]
        return OK if getattr(self.forge, "onboards", False) else BAD_INPUT

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
        title, body = render_escalation(kind="envelope-breach", problems=problems, now=self.ts())
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

    def _prices(self) -> tuple[dict[str, float] | None, str | None]:
        """Live prices, or None and (for a backend that has live prices) why the built-in table is used."""
        try:
            prices = self.backend.prices()
        except TransientError as exc:
            return None, f"live prices could not be read ({redact(str(exc))}); costs use the built-in price table, rounded up"
        return prices, None if prices else getattr(self.backend, "prices_note", None)
