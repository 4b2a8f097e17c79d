"""Driving whole campaigns over the in-memory backend, on a fake clock."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mlr_action.core.jobs import JobStage
from mlr_action.backends.memory import InMemoryBackend
from mlr_action.forges.files import FileForge
from mlr_action.proposers.search import SearchProposer
from mlr_action.shell.step import Step


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


@dataclass
class JobWorld:
    """Moves the in-memory backend's jobs on a fake clock, as time passes: each job starts ``queue_s`` after its
    submit and runs ``duration(n)`` seconds (``n``: its 0-based order of submission), then prints ``logs``.

    :meth:`sleep` is a ``sleep`` for :mod:`mlr_action.shell.linger`: it moves the clock through every start and end on
    the way, at its own time. ``runs`` holds each job's (start, end) in clock seconds.
    """

    backend: InMemoryBackend
    clock: FakeClock
    duration: object = lambda n: 600.0  # Callable[[int], float]
    queue_s: float = 0.0
    logs: str = "eval_accuracy=0.5\n"
    runs: dict = field(default_factory=dict)
    started: set = field(default_factory=set)
    ended: set = field(default_factory=set)

    def _plan(self) -> None:
        for n, job in enumerate(self.backend.jobs.values()):
            if job.job_id not in self.runs and not job.stage.terminal:
                start = job.submitted_at + self.queue_s
                self.runs[job.job_id] = (start, start + self.duration(n))  # type: ignore[operator]

    def _events(self, until: float) -> list:
        self._plan()
        events = [(s, 0, j) for j, (s, _) in self.runs.items() if j not in self.started and s <= until]
        events += [(e, 1, j) for j, (_, e) in self.runs.items() if j not in self.ended and e <= until]
        return sorted(events)

    def next_event(self) -> float | None:
        """When the next job starts or ends (clock seconds); None when nothing is pending."""
        self._plan()
        times = [s for j, (s, _) in self.runs.items() if j not in self.started]
        times += [e for j, (_, e) in self.runs.items() if j not in self.ended]
        return min(times, default=None)

    def run_until(self, when: float) -> None:
        """Move the clock to ``when``, starting and ending every job due on the way at its own time."""
        while True:
            events = self._events(when)
            if not events:
                break
            at, kind, job_id = events[0]
            self.clock.now = datetime.fromtimestamp(max(at, self.clock.seconds()), timezone.utc)
            if self.backend.jobs[job_id].stage.terminal:  # canceled meanwhile
                self.started.add(job_id)
                self.ended.add(job_id)
            elif kind == 0:
                self.backend.advance(job_id, JobStage.RUNNING)
                self.started.add(job_id)
            else:
                start, end = self.runs[job_id]
                self.backend.advance(job_id, JobStage.COMPLETED, duration_s=end - start, logs=self.logs)
                self.ended.add(job_id)
        self.clock.now = datetime.fromtimestamp(max(when, self.clock.seconds()), timezone.utc)

    def sleep(self, seconds: float) -> None:
        self.run_until(self.clock.seconds() + max(0.0, seconds))
