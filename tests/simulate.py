"""Driving whole campaigns over the in-memory backend, on a fake clock."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mlr_action.backends.base import JobStage
from mlr_action.backends.memory import InMemoryBackend
from mlr_action.forges.files import FileForge
from mlr_action.proposers.search import SearchProposer
from mlr_action.step import Step


@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=timezone.utc))

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def quadratic_accuracy(config: dict) -> float:
    """A smooth synthetic task: best near lr=3e-4, batch_size=32, cosine."""
    lr, bs = config.get("lr", 1e-4), config.get("batch_size", 16)
    score = 0.97 - 0.08 * (math.log10(lr) - math.log10(3e-4)) ** 2 - 0.0001 * (bs - 32) ** 2
    return round(score - (0.02 if config.get("scheduler") == "linear" else 0.0), 4)


def finish_jobs(backend: InMemoryBackend, metric=quadratic_accuracy, *, duration_s: float = 600, fail=lambda spec: None) -> int:
    """Complete every job that has not finished yet; ``fail(spec)`` may return an error message."""
    count = 0
    for job in list(backend.jobs.values()):
        if job.stage.terminal:
            continue
        config = {a.split("=", 1)[0][2:]: parse_arg_value(a.split("=", 1)[1]) for a in job.spec.args}
        error = fail(job.spec)
        if error:
            backend.advance(job.job_id, JobStage.ERROR, duration_s=duration_s / 10, logs=error + "\n", message="exit code 1")
        else:
            backend.advance(job.job_id, JobStage.COMPLETED, duration_s=duration_s, logs=f"training...\neval_accuracy={metric(config)}\n")
        count += 1
    return count


def parse_arg_value(text: str):
    """A --name=value argument's value as the job's argparse would read a number."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def make_step(root: Path, backend: InMemoryBackend | None = None, clock: FakeClock | None = None) -> Step:
    clock = clock or FakeClock()
    backend = backend or InMemoryBackend(clock=clock.seconds)
    return Step(root=root, backend=backend, proposer=SearchProposer(), forge=FileForge(root), clock=clock)


def run_campaign(step: Step, *, max_ticks: int = 200, **finish) -> list:
    """Alternate steps and job completions until the campaign has finished (its final evaluation too); the results of every step."""
    results = []
    for _ in range(max_ticks):
        result = step.run()
        results.append(result)
        if result.finished or result.exit_code == 2:
            break
        step.clock.advance(900)  # type: ignore[attr-defined]
        finish_jobs(step.backend, **finish)  # type: ignore[arg-type]
    return results
