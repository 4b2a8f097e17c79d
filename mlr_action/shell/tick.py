"""One tick of the CLI or the action: a step, then the steps that lingering brings (:mod:`mlr_action.shell.linger`).

Guarantees: with ``linger_s`` 0 a tick is exactly one step, as before. With
it, the tick follows jobs due before ``started + linger_s`` on the real
clock and takes each next step on the same :class:`~mlr_action.shell.step.Step`
(the same authority snapshot, backend, forge and publish). ``after`` sees
every step's result as soon as it ends (the action pushes runs/ there), and
in GitHub mode no step is taken once the default branch has moved outside
runs/ (:func:`mlr_action.github.catchup.moved_outside_runs`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

from mlr_action.core.jobs import BackendError
from mlr_action.shell.linger import Linger, follow

if TYPE_CHECKING:
    from mlr_action.shell.step import Step
    from mlr_action.shell.step_result import StepResult


def steps(step: Step, *, linger_s: float, started: float, say: Callable[[str], None],
          after: Callable[[StepResult], None] = lambda result: None,
          run: Callable[[], StepResult] | None = None) -> list[StepResult]:
    """Every step this tick took, in order (the first always). ``run`` runs one step (default ``step.run``)."""
    run = run or step.run

    def one() -> StepResult:
        result = run()
        after(result)
        return result

    first = one()
    if linger_s <= 0:
        return [first]
    linger = Linger(until=started + linger_s, clock=time.time, sleep=time.sleep)
    later = follow(first, run_step=one, inspect=lambda job_id: step.backend.inspect(job_id=job_id), linger=linger,
                   may_go_on=lambda: _moved(step), say=say)
    return [first, *later]


def _moved(step: Step) -> str | None:
    if step.snapshot is None:  # local mode: the work tree is the authority, re-read by every step
        return None
    from mlr_action.github.catchup import moved_outside_runs

    try:
        return moved_outside_runs(step.snapshot)
    except BackendError as exc:
        return f"the default branch could not be read ({exc})"
