"""Shared pieces of the reliability tests: small campaigns, their worlds, and the checks every one must pass.

The *world* is what outlives a step (the job backend, Hub repos, GitHub); the
*step* is rebuilt after every crash, as a new process would be. A grid
proposer keeps the campaigns fast and, like every real proposer, decides from
the ledger alone, so a run that crashed and a run that did not propose the
same configs.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from programs import CAMPAIGN, ENVELOPE, program_text, with_
from simulate import parse_arg_value

from mlr_action.core.jobs import JobStage
from mlr_action.backends.memory import InMemoryBackend, MemoryJob
from mlr_action.core.budget import usage
from mlr_action.core.final import RERUNS
from mlr_action.forges.files import FileForge
from mlr_action.core.ledger import EventRow, read_ledger
from mlr_action.core.program import Program, load_program
from mlr_action.core.proposal import Proposal, Proposer
from mlr_action.core.state import CampaignState, config_key, fold

GRID = [{"lr": lr, "batch_size": bs, "scheduler": sched}
        for lr in (1e-4, 3e-4, 1e-3) for bs in (16, 32) for sched in ("cosine", "linear")]
OPEN = with_(CAMPAIGN, target=None, patience=None)

# The local backend's campaigns (crash and race tests): a tiny script, so a job ends in a moment.
LOCAL_CAMPAIGN = with_(OPEN, flavor="cpu-basic", timeout="1m")
LOCAL_TRAIN = """
import sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
print(f"eval_accuracy={0.5 + int(args['batch_size']) / 1000 + float(args['lr']):.6f}")
"""


@pytest.fixture
def no_fsync(monkeypatch):
    """fsync guards against power loss, not process death (what these tests simulate); it costs seconds here."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def metric_of(config: dict) -> float:
    """Deterministic, different for every grid point, and not monotonic in grid order (so some runs are discarded)."""
    return round(0.5 + (GRID.index(config) * 7 % len(GRID)) / 100 if config in GRID else 0.4, 4)


class GridProposer(Proposer):
    """The first untried grid configs; ``hostile``: the last of several proposals asks for a forbidden flavor."""

    name = "grid"

    def __init__(self, *, hostile: bool = False) -> None:
        self.hostile = hostile

    def propose(self, *, program, state, count: int, check=None, used=None, prices=None) -> list[Proposal]:
        tried = state.tried_configs
        out = [Proposal(config=c, hypothesis=f"grid point {GRID.index(c)}", proposer="grid")
               for c in GRID if config_key(c) not in tried][:count]
        if self.hostile and count >= 2 and len(out) >= 2:
            out[-1] = out[-1].model_copy(update={"flavor": "h200x8", "timeout_s": 10**6})
        return out


class DeletingBackend(InMemoryBackend):
    """The in-memory backend plus Hub repos: a finished job has pushed its MLR_OUTPUT_REPO."""

    def __init__(self, clock) -> None:
        super().__init__(clock=clock)
        self.repos: set[str] = set()
        self.deleted: list[str] = []
        self.vanished: dict[str, Any] = {}  # jobs the backend forgot (as HF forgets old jobs), kept for the checks

    def _create(self, spec, labels) -> str:  # ids are never reused, even after a job vanished
        job_id = f"mem-{len(self._jobs) + len(self.vanished) + 1:04d}"
        self._jobs[job_id] = MemoryJob(job_id=job_id, spec=spec, labels=labels, submitted_at=self._clock())
        return job_id

    def vanish(self, job_id: str, *, ran_s: float) -> None:
        """The job ran ``ran_s`` and then the backend forgot it: inspect says DELETED from now on."""
        self.vanished[job_id] = self.advance(job_id, JobStage.COMPLETED, duration_s=ran_s)
        del self._jobs[job_id]

    # What the HF backend keeps between ticks in runs/backend-cache.json (HfBackend.use_cache, cache): here
    # something looked up once, so a crash around the step handing it over and writing it is tested too.
    def use_cache(self, data: Any) -> None:
        self.cached = data

    def cache(self) -> dict[str, Any] | None:
        return None if getattr(self, "cached", None) else {"looked_up": "once"}

    def flavor_memory(self) -> None:
        return None  # no live catalog: the built-in table

    def delete_repo(self, *, repo_id: str) -> bool:
        if repo_id not in self.repos:
            return False
        self.repos.discard(repo_id)
        self.deleted.append(repo_id)
        return True


def finish_memory_jobs(world: InMemoryBackend, *, unless: Callable[[int], bool] = lambda iteration: False,
                       vanish: Callable[[int], bool] = lambda iteration: False) -> None:
    """Complete every live job (except those ``unless(iter)`` holds back) with its grid metric;
    ``vanish(iter)``: the job runs, then the backend forgets it."""
    for job in list(world.jobs.values()):
        iteration = int(job.labels["mlr-iter"])
        if job.stage.terminal or unless(iteration):
            continue
        if vanish(iteration) and isinstance(world, DeletingBackend):
            world.vanish(job.job_id, ran_s=600)
            continue
        config = {a.split("=", 1)[0][2:]: parse_arg_value(a.split("=", 1)[1]) for a in job.spec.args}
        config = {k: v for k, v in config.items() if k in GRID[0]}
        world.advance(job.job_id, JobStage.COMPLETED, duration_s=600, logs=f"eval_accuracy={metric_of(config)}\n")
        if isinstance(world, DeletingBackend) and job.spec.env.get("MLR_OUTPUT_REPO"):
            world.repos.add(job.spec.env["MLR_OUTPUT_REPO"])


class StoppingForge(FileForge):
    """The file forge, with a person who stops the campaign once the ledger shows ``after`` experiments."""

    def __init__(self, root: Path, *, after: int) -> None:
        super().__init__(root)
        self.after = after

    def read_controls(self, *, state) -> list:
        asked = any(e.event == "stopped" and e.reason == "human" for e in state.events)
        if asked or len(state.experiments) < self.after:
            return []
        return [EventRow(event="stopped", ts="2026-01-01T00:00:00+00:00", reason="human", detail="stopped by @alice")]


def make_repo(root: Path, envelope: dict, campaign: dict = OPEN, train: str = "print('eval_accuracy=0.5')\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(train)
    (root / "program.md").write_text(program_text(envelope, campaign))
    return root


def state_at(root: Path) -> CampaignState:
    return fold(read_ledger(root / "runs" / "ledger.jsonl"))


def essence(state: CampaignState) -> list[tuple]:
    """What a campaign found, timestamps aside: the final row of every experiment and of every repeat of the final
    evaluation, how it stopped and how the final evaluation ended."""
    rows = [(e.iter, e.status, e.config, e.metric, e.decision) for e in state.experiments.values()]
    rows += [(e.iter, e.status, e.config, e.metric, "final", e.final_of, e.repeat) for e in state.finals.values()]
    rows += [("final", state.final_event.reason)] if state.final_event is not None else []
    return rows + [("stopped", state.stopped.reason if state.stopped else None)]


# --- the checks ------------------------------------------------------------------------


@dataclass(frozen=True)
class RanJob:
    """Ground truth of one job, from the backend's own record."""

    job_id: str
    iter: int
    flavor: str
    timeout_s: int
    finished: bool
    duration_s: float | None
    canceled: bool = False

    @property
    def started(self) -> bool:
        """Whether it may have run: in flight, or finished with a duration (one canceled while queued never ran)."""
        return not self.finished or self.duration_s is not None or not self.canceled


def memory_truth(world: InMemoryBackend, now: float) -> list[RanJob]:
    jobs = [*world.jobs.values(), *getattr(world, "vanished", {}).values()]
    return [RanJob(j.job_id, int(j.labels["mlr-iter"]), j.spec.flavor, j.spec.timeout_s, j.stage.terminal, j.duration_s(now),
                   j.stage is JobStage.CANCELED) for j in jobs]


def assert_exactly_once(state: CampaignState, jobs: list[RanJob], *, raced: bool = False) -> None:
    """One job per iteration, every job the backend created in the ledger (once), under its own iter.

    ``raced``: two steps ran at once with no concurrency group, so one may have created a duplicate; it must
    have been canceled before it started, and be in the ledger as a ``duplicate-job`` row, never as a result.
    """
    duplicates = {str(getattr(e, "job_id", "")) for e in state.events if e.reason == "duplicate-job"}
    results = [j for j in jobs if j.job_id not in duplicates] if raced else jobs
    iters = [j.iter for j in results]
    assert len(iters) == len(set(iters)), f"an iteration got two jobs: {sorted(iters)}"
    assert {j.job_id for j in results} == set(state.job_rows), (
        f"backend {sorted(j.job_id for j in results)} != ledger {sorted(state.job_rows)}")
    for job in results:
        assert state.job_rows[job.job_id].iter == job.iter, f"{job.job_id} is recorded under another iter"
    for job in jobs:
        if job.job_id in duplicates:
            assert raced and job.canceled and not job.started, f"duplicate {job} ran"
            assert job.job_id not in state.job_rows
    # A repeat runs once; one whose job was canceled before it finished runs again, once (final.RERUNS).
    ran = [(r.final_of, r.repeat) for r in state.job_rows.values() if r.final_of is not None and r.status != "canceled"]
    assert len(ran) == len(set(ran)), f"a repeat of the final evaluation ran twice: {sorted(ran)}"
    attempts = Counter((r.final_of, r.repeat) for r in state.job_rows.values() if r.final_of is not None)
    assert max(attempts.values(), default=0) <= 1 + RERUNS, f"a repeat was attempted too often: {attempts}"


def charged_truth(job: RanJob) -> float:
    """What the envelope's accounting charges a job the backend ran: its duration once finished, else its timeout."""
    if job.finished:
        return job.duration_s or 0.0
    return max(float(job.timeout_s), job.duration_s or 0.0)


def assert_within_envelope(program: Program, state: CampaignState, jobs: list[RanJob],
                           prices: dict[str, float] | None = None) -> None:
    """The envelope holds on the ledger's accounting and on the backend's own record (finished jobs within timeout)."""
    from mlr_action.core.flavors import price_per_hour

    env = program.envelope
    used = usage(state, prices)
    assert used.jobs <= env.max_jobs and sum(j.started for j in jobs) <= env.max_jobs, (used, len(jobs))
    assert used.walltime_s <= env.max_walltime + 1e-6, used
    assert sum(charged_truth(j) for j in jobs) <= env.max_walltime + 1e-6
    for job in jobs:
        assert job.flavor in env.allowed_flavors and 0 < job.timeout_s <= env.max_timeout, job
    if env.max_cost_usd is not None:
        assert used.cost_usd <= env.max_cost_usd + 1e-6, used
        truth = sum(price_per_hour(j.flavor, prices) * charged_truth(j) / 3600 for j in jobs)
        assert truth <= env.max_cost_usd + 1e-6, truth
    if env.max_llm_usd is not None:
        assert used.llm_usd <= env.max_llm_usd + 1e-9, used


def program_at(root: Path) -> Program:
    return load_program(root / "program.md")


__all__ = ["ENVELOPE", "GRID", "OPEN", "with_"]
