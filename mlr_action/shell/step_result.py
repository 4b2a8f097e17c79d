"""What a step hands back, and the files it leaves under ``runs/``.

Guarantees:

- A :class:`StepResult` says truthfully what its step did: the exit code
  (:data:`OK` done or nothing to do, :data:`TRANSIENT` the next tick
  retries, :data:`BAD_INPUT` bad input, nothing spent), what it submitted
  and paid for the LLM (:meth:`StepResult.spent` says "nothing was spent"
  only when it submitted and paid for nothing), and which escalations its
  run shows fixed.
- What a step says passes through :func:`clean` before the forge or the
  caller sees it: redacted (:mod:`mlr_action.core.redaction`), with bytes a
  job printed that are not text replaced.
- The files a step writes under ``runs/`` are named once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlr_action.core.budget import Usage
from mlr_action.core.jobs import JobView
from mlr_action.core.program import Program
from mlr_action.core.redaction import redact
from mlr_action.core.spent import spent_text
from mlr_action.core.state import CampaignState

RUNS = Path("runs")
SUMMARY_PATH = RUNS / "summary.md"
BACKEND_CACHE_PATH = RUNS / "backend-cache.json"  # what the backend looked up, sealed by it (see HfBackend.use_cache)
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


def clean(text: str) -> str:
    """``text`` redacted, with lone surrogates (bytes a job printed that are not UTF-8) replaced."""
    return redact(text.encode("utf-8", "replace").decode("utf-8"))
