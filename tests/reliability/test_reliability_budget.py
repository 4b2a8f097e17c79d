"""The budget invariant, as a property over many random simulated campaigns.

Each example draws an envelope (max_jobs, max_walltime, max_timeout, allowed
flavors, max_parallel, maybe max_cost_usd and max_llm_usd), live prices of the
backend (or none: the built-in table), and a proposer: a hostile one that
proposes configs, flavors and timeouts in and out of the envelope, or the
Claude proposer over a fake LLM whose answers are just as hostile and whose
calls cost a random amount up to the estimate made before them. Between
ticks the world moves at random: jobs complete, fail (out of memory, which
the recovery policy answers), vanish from the backend, stay running, or
overrun their timeout; and a step may crash at a random boundary (see
``crashpoints``), after which a fresh process steps on.

What is guaranteed, and checked after every step, on the ledger's accounting
(``budget.usage``) and on the ground truth of what the backend ran (count,
walltime charged, dollars at the backend's prices billed per started minute)
and of what the LLM billed:

- jobs: at most ``max_jobs`` jobs ever start, and at most ``max_jobs`` less
  the final block's repeats are search jobs; every job's flavor is allowed and
  its timeout is in (0, max_timeout].
- walltime and dollars: the envelope is enforced when a job is submitted: a
  search job is submitted only if what is charged so far (finished jobs their
  duration, jobs in flight and intents their full timeout) plus its own
  timeout fits in ``(1 - RESERVE)`` of the envelope. So, as long as jobs end by
  their timeout, the search's walltime and dollars stay within
  ``(1 - RESERVE) x`` the envelope; a job the backend lets run past its timeout
  is charged its actual duration, and the only way past that bound is such an
  overrun: at all times ``search charged <= (1 - RESERVE) x max + overruns``
  (what jobs ran past their timeouts). In half the campaigns program.md has a
  ``final`` block: after the stop, its repeats spend the reserve, checked the
  same way against the whole envelope, so ``everything charged <= max +
  overruns``; and the search keeps the repeats out of ``max_jobs``.
- LLM dollars: never past ``max_llm_usd``, on the ledger and in truth, even when
  a step is killed between an LLM answer and its ledger row: every tick's calls
  are covered by a reservation row written before the first of them, charged
  in full until the row that records their cost settles it.
- jobs in flight: never more than ``max_parallel`` live on the backend at once.

In a third of the campaigns a ledger-branch writer edits the ledger between
steps (see :func:`tamper`): deletes rows, lowers durations, costs and
timeouts, drops the ``stopped`` row, names another campaign, marks jobs in
flight finished, writes a ``resumed`` row. Spend is what the backend says, so
the ground truth above must hold all the same (the ledger's own accounting is
then the attacker's, and is not checked). The writer leaves ``llm`` and
``research`` rows alone (LLM spend is known only from the ledger: a limit the
docs state), and jobs do not vanish from the backend in those campaigns (a
backend that forgets a job, and a ledger that forgets it too, forget its
spend).
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crashpoints as cp
from mlr_action.core.jobs import JobStage
from mlr_action.core.budget import RESERVE, Usage, usage
from mlr_action.core.flavors import price_per_hour
from mlr_action.forges.files import FileForge
from mlr_action.core.program import ProgramError, load_program
from mlr_action.core.proposal import Proposal, Proposer
from mlr_action.shell.step import Step
from programs import program_text
from reliability import OPEN, DeletingBackend, RanJob, memory_truth, state_at, with_
from simulate import FakeClock

FLAVORS = ["cpu-basic", "t4-small", "a10g-large", "a100-large"]
ALL_FLAVORS = FLAVORS + ["h200x8", "not-a-flavor", ""]
TICKS = 30
EXAMPLES = 120


# --- the world ------------------------------------------------------------------------------------


class PricedBackend(DeletingBackend):
    """The in-memory backend with live prices (or none), its job ids never reused."""

    def __init__(self, clock, prices: dict[str, float] | None) -> None:
        super().__init__(clock)
        self.live = prices

    def prices(self) -> dict[str, float] | None:
        self._fail_after(self._fail_before("prices"))
        return dict(self.live) if self.live else None


class HostileProposer(Proposer):
    """Proposals from the random stream: configs, flavors and timeouts in and out of the envelope."""

    name = "hostile"

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def propose(self, *, program, state, count: int, check=None, used=None, prices=None) -> list[Proposal]:
        # Usually as many as asked for; sometimes none (the campaign stops: exhausted) or more than asked.
        n = self.rng.choice([count] * 30 + [0, count + 1])
        return [random_proposal(self.rng, program) for _ in range(n)]


def random_proposal(rng: random.Random, program) -> Proposal:
    """Half the time a proposal inside the envelope; otherwise anything a confused or hostile proposer says."""
    hostile = rng.random() < 0.5
    config: dict[str, Any] = {}
    for name, spec in program.campaign.params.items():
        if spec.choices is not None:
            config[name] = rng.choice([*spec.choices, "nonsense"] if hostile else spec.choices)
        else:
            low, high = spec.low, spec.high
            value = rng.choice([rng.uniform(low, high), high * 10, -1.0, low, high] if hostile else [rng.uniform(low, high)])
            config[name] = round(value) if spec.type == "int" and (not hostile or rng.random() < 0.9) else value
    if hostile and rng.random() < 0.1:
        config["extra"] = 1
    env = program.envelope
    flavor = rng.choice([None, *ALL_FLAVORS] if hostile else [None, *env.allowed_flavors])
    timeout = rng.choice([None, 0, -60, 61, 600, 3600, 7200, 10**6, env.max_timeout] if hostile
                         else [None, 60, 61, rng.randint(60, env.max_timeout), env.max_timeout])
    return Proposal(config=config, flavor=flavor or None, timeout_s=timeout, hypothesis="random", proposer="random")


@dataclass
class FakeLLM:
    """The ClaudeClient seam: hostile answers, each call billed a random amount up to its estimate."""

    rng: random.Random
    billed: float = 0.0  # the truth: what the API would bill
    calls: int = 0
    spend: Any = None
    model: str = "claude-sonnet-5-5"
    last_text: str = ""

    def __post_init__(self) -> None:
        from mlr_action.proposers.llm import Spend

        self.spend = Spend()

    def _bill(self, estimate: float) -> None:
        cost = estimate * self.rng.choice([0.0, 0.1, 0.5, 1.0])
        self.billed += cost
        self.calls += 1
        self.spend.calls += 1
        self.spend.usd += cost

    def parse(self, *, system: str, user: str, output: type, max_tokens: int, estimate_usd: float):
        from mlr_action.proposers.llm_answers import Parsed

        self._bill(estimate_usd)
        if self.rng.random() < 0.2:
            return Parsed(text="?", problems=["the answer held no JSON object"])
        schema = output.model_json_schema()
        flavors = schema["properties"]["flavor"].get("enum") or [schema["properties"]["flavor"].get("const")]
        config_schema = schema["$defs"]["ExperimentConfig"]["properties"]
        config = {}
        hostile = self.rng.random() < 0.4
        for name, prop in config_schema.items():
            if "enum" in prop:
                config[name] = self.rng.choice(prop["enum"])
            elif prop.get("type") == "integer":
                config[name] = self.rng.choice([4, 16, 32, 64, 1000, -3] if hostile else [4, 8, 16, 32, 48, 64])
            else:
                config[name] = self.rng.choice([1e-5, 3e-4, 1e-3, 5.0, -1.0] if hostile else [1e-5, 3e-5, 1e-4, 3e-4, 1e-3])
        minutes = self.rng.choice([-1, 0, 1, 30, 60, 120, 100000] if hostile else [1, 2, 10, 30])
        answer = output.model_validate({"hypothesis": "h", "config": config, "flavor": self.rng.choice(flavors),
                                        "timeout_minutes": minutes, "reason": "r"})
        return Parsed(answer=answer, text="{}")

    def search(self, *, system: str, user: str, max_uses: int, max_tokens: int, estimate_usd: float, before_call=None):
        from mlr_action.proposers.research import SearchOutcome

        self._bill(estimate_usd)
        return SearchOutcome(text="", errors=["unavailable"])

    def take_spend(self):
        from mlr_action.proposers.llm import Spend

        spend, self.spend = self.spend, Spend()
        return spend

    def pending_usd(self) -> float:
        return self.spend.usd


# --- drawing a campaign ------------------------------------------------------------------------------


@st.composite
def campaigns(draw) -> dict:
    allowed = draw(st.lists(st.sampled_from(FLAVORS), min_size=1, max_size=3, unique=True))
    max_timeout = draw(st.integers(1, 120)) * 60 + draw(st.sampled_from([0, 0, 1, 59]))
    envelope = {
        # Hypothesis favours the simplest values (small numbers, the first of a list): make those the roomy
        # envelopes, so that most campaigns run several jobs, and the tight ones still come up.
        "max_jobs": draw(st.integers(0, 7).map(lambda n: 8 - n)),
        "max_walltime": max_timeout * draw(st.integers(0, 10).map(lambda n: 12 - n)) + draw(st.integers(0, 3600)),
        "allowed_flavors": allowed,
        "max_timeout": max_timeout,
        "allow_deletes": False,
        "output_repos": ["me/sweep-*"],
        "max_parallel": draw(st.integers(1, 4)),
    }
    if draw(st.booleans()):
        envelope["max_cost_usd"] = draw(st.sampled_from([40.0, 10.0, 3.0, 1.0, 0.5, 0.05, 200.0]))
    proposer = draw(st.sampled_from(["hostile", "claude"]))
    if proposer == "claude":
        envelope["max_llm_usd"] = draw(st.sampled_from([0.2, 1.0, 0.05, 0.0]))
    campaign = with_(OPEN, flavor=draw(st.sampled_from(allowed)),
                     timeout=draw(st.sampled_from([60, 61, max_timeout // 4, max_timeout // 2, max_timeout])) or 60,
                     patience=draw(st.sampled_from([None, 2, 4])), target=draw(st.sampled_from([None, 0.6, 0.9])),
                     min_delta=draw(st.sampled_from([0, 0, 0.05])))
    if draw(st.booleans()):  # the final evaluation after the stop, from the reserve
        repeats = draw(st.integers(1, 3))
        final = {"repeats": repeats, "seed_param": "seed"} if repeats > 1 else {"repeats": 1}
        final["flavor"] = draw(st.sampled_from([None, *allowed]))
        final["timeout"] = draw(st.sampled_from([None, 60, max_timeout]))
        campaign["final"] = {k: v for k, v in final.items() if v is not None}
    prices = draw(st.one_of(st.none(), st.fixed_dictionaries({f: st.sampled_from([0.0, 0.05, 0.4, 1.5, 9.0]) for f in FLAVORS})))
    return {"envelope": envelope, "campaign": campaign, "prices": prices, "proposer": proposer,
            "adversary": draw(st.sampled_from([False, False, True])), "seed": draw(st.integers(0, 2**32 - 1))}


# --- the checks -------------------------------------------------------------------------------------


def billed_cost(job: RanJob, prices: dict[str, float] | None) -> float:
    """What the backend bills: every started minute of a finished job; a job in flight, up to its timeout."""
    price = price_per_hour(job.flavor, prices)
    if job.finished:
        return price * math.ceil((job.duration_s or 0.0) / 60) / 60
    return price * math.ceil(max(job.timeout_s, job.duration_s or 0.0) / 60) / 60


@dataclass
class Truth:
    overrun_s: float = 0.0  # walltime jobs ran past their timeouts
    overrun_usd: float = 0.0
    checks: int = 0
    crashes: int = 0
    jobs: int = 0
    llm_calls: int = 0
    stops: dict[str, int] = field(default_factory=dict)


def charged(job: RanJob) -> float:
    return job.duration_s or 0.0 if job.finished else max(float(job.timeout_s), job.duration_s or 0.0)


def check(program, state, world: PricedBackend, now: float, llm: FakeLLM | None, truth: Truth, *,
          tampered: bool = False) -> None:
    env, prices = program.envelope, world.live
    jobs = memory_truth(world, now)
    repeats = {j.job_id for j in [*world.jobs.values(), *world.vanished.values()] if "mlr-final-of" in j.labels}
    search = [j for j in jobs if j.job_id not in repeats]
    assert sum(not j.finished for j in jobs) <= env.max_parallel, jobs
    # With a ledger writer at work, the ledger's accounting is the writer's: only the ground truth is checked.
    used = Usage() if tampered else usage(state, prices)
    truth.overrun_s = sum(max(0.0, (j.duration_s or 0.0) - j.timeout_s) for j in jobs)
    truth.overrun_usd = sum(price_per_hour(j.flavor, prices) * max(0.0, math.ceil((j.duration_s or 0.0) / 60) * 60 - j.timeout_s) / 3600
                            for j in jobs if (j.duration_s or 0.0) > j.timeout_s)
    assert used.jobs <= env.max_jobs and sum(j.started for j in jobs) <= env.max_jobs, (used, jobs)
    assert sum(j.started for j in search) <= env.max_jobs - program.final_jobs, (program.final_jobs, jobs)
    for job in jobs:
        assert job.flavor in env.allowed_flavors and 0 < job.timeout_s <= env.max_timeout, job
    # The search keeps the reserve; the final evaluation may spend it, never more than the envelope.
    share = 1.0 if program.campaign.final is not None else 1 - RESERVE
    wall_cap = env.max_walltime * share + truth.overrun_s + 1e-6
    search_wall_cap = env.max_walltime * (1 - RESERVE) + truth.overrun_s + 1e-6
    assert used.walltime_s <= wall_cap, (used.walltime_s, wall_cap)
    assert sum(map(charged, jobs)) <= wall_cap, (sum(map(charged, jobs)), wall_cap)
    assert sum(map(charged, search)) <= search_wall_cap, (sum(map(charged, search)), search_wall_cap)
    if env.max_cost_usd is not None:
        cost_cap = env.max_cost_usd * share + truth.overrun_usd + 1e-6
        assert used.cost_usd <= cost_cap, (used.cost_usd, cost_cap)
        billed = sum(billed_cost(j, prices) for j in jobs)
        assert billed <= cost_cap, (billed, cost_cap, jobs)
        search_billed = sum(billed_cost(j, prices) for j in search)
        assert search_billed <= env.max_cost_usd * (1 - RESERVE) + truth.overrun_usd + 1e-6, (search_billed, jobs)
    if env.max_llm_usd is not None:
        assert used.llm_usd <= env.max_llm_usd + 1e-9, used
        if llm is not None:
            assert llm.billed <= env.max_llm_usd + 1e-9, llm.billed
    truth.checks += 1


# --- the campaign -------------------------------------------------------------------------------------


def run(spec: dict) -> Truth:
    root = Path(tempfile.mkdtemp(prefix="mlr-budget-")) / "sweep"
    root.mkdir()
    (root / "train.py").write_text("print('eval_accuracy=0.5')\n")
    (root / "program.md").write_text(program_text(spec["envelope"], spec["campaign"]))
    try:
        program = load_program(root / "program.md")
    except ProgramError:
        return Truth()
    rng = random.Random(spec["seed"])
    clock = FakeClock()
    world = PricedBackend(clock.seconds, spec["prices"])
    llm = FakeLLM(rng) if spec["proposer"] == "claude" else None
    bounds = cp.Boundaries()
    truth = Truth()

    def new_step() -> Step:
        if llm is None:
            proposer: Proposer = HostileProposer(rng)
        else:
            from mlr_action.proposers.claude import ClaudeProposer

            proposer = ClaudeProposer(client=llm, fallback=HostileProposer(rng), clock=clock)
        return Step(root=root, backend=cp.Proxy(world, "backend", bounds), proposer=cp.Proxy(proposer, "proposer", bounds),
                    forge=cp.Proxy(FileForge(root), "forge", bounds), clock=clock)

    writers = [w for w in cp.discover_writers() if w.module in ("mlr_action.core.ledger", "mlr_action.forges.files", "mlr_action.shell.steplock")]
    with cp.installed(bounds, writers):
        return _steps(root, program, world, llm, bounds, truth, new_step, clock, rng, adversary=spec["adversary"])


def _steps(root, program, world, llm, bounds, truth, new_step, clock, rng, *, adversary: bool) -> Truth:
    for _ in range(TICKS):
        bounds.new_process()
        bounds.countdown = rng.randint(1, 40) if rng.random() < 0.25 else None  # a crash somewhere in this step
        try:
            result = new_step().run()
        except cp.Crash:
            result = None
            truth.crashes += 1
        bounds.countdown = None
        state = state_at(root)
        check(program, state, world, clock.seconds(), llm, truth, tampered=adversary)
        if result is not None and state.stopped is not None and not state.in_flight:
            truth.stops[state.stopped.reason] = truth.stops.get(state.stopped.reason, 0) + 1
            if state.final_event is not None:
                key = f"final {state.final_event.reason}"
                truth.stops[key] = truth.stops.get(key, 0) + 1
            if not adversary:
                break
        if adversary and rng.random() < 0.7:
            tamper(root, rng)
        clock.advance(rng.choice([60, 900, 3600, 4 * 3600]))
        move_world(world, rng, set(state.job_rows), vanish=not adversary)
    truth.jobs = len(world.jobs) + len(world.vanished)
    truth.llm_calls = llm.calls if llm is not None else 0
    return truth


# --- the ledger-branch writer ---------------------------------------------------------------------------


def _delete(rows: list[dict], rng: random.Random) -> list[dict]:
    return [r for r in rows if r.get("event") in ("llm", "research") or rng.random() < 0.5]


def _lower(rows: list[dict], rng: random.Random) -> list[dict]:
    for row in rows:
        if "iter" in row and rng.random() < 0.7:
            row.update(timeout="1m", timeout_s=60, cost_usd=0.0 if row.get("cost_usd") is not None else None)
            if row.get("duration_s") is not None:
                row["duration_s"] = 0.0
    return rows


def _drop_stopped(rows: list[dict], rng: random.Random) -> list[dict]:
    return [r for r in rows if r.get("event") != "stopped"]


def _rename(rows: list[dict], rng: random.Random) -> list[dict]:
    return rows + [{"event": "started", "ts": "2026-01-01T00:00:00+00:00", "campaign": f"fresh-{rng.randint(0, 9)}"}]


def _finish(rows: list[dict], rng: random.Random) -> list[dict]:
    latest = {r["iter"]: r for r in rows if "iter" in r}
    return rows + [{**r, "status": "completed", "metric": 0.1, "decision": "discard", "duration_s": 1.0, "cost_usd": 0.0}
                   for r in latest.values() if r.get("status") in ("proposed", "submitted", "running")]


def _resume(rows: list[dict], rng: random.Random) -> list[dict]:
    return rows + [{"event": "resumed", "ts": "2026-01-01T00:00:00+00:00", "reason": "human"}]


def _rekey(rows: list[dict], rng: random.Random) -> list[dict]:
    for row in rows:
        if row.get("job_id") and "iter" in row and rng.random() < 0.5:
            row["job_id"] = f"fake-{rng.randint(0, 99)}"
    return rows


EDITS = [_delete, _lower, _drop_stopped, _rename, _finish, _resume, _rekey]


def tamper(root: Path, rng: random.Random) -> None:
    """What a writer with push access to the ledger branch may do between two ticks (llm and research rows aside)."""
    path = root / "runs" / "ledger.jsonl"
    if not path.exists():
        return
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line a crashed step left half written
            continue
    for edit in rng.sample(EDITS, rng.randint(1, 3)):
        rows = edit(rows, rng)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def move_world(world: PricedBackend, rng: random.Random, known: set[str], *, vanish: bool = True) -> None:
    """Each live job: stays, completes, fails (maybe out of memory), vanishes; it may overrun its timeout.

    Only a job the ledger has recorded may vanish: the backend contract (``list_jobs`` returns every job ever
    submitted) is what lets a step adopt a job whose submit answer it lost, so a job that vanished before
    that could be submitted again (docs/RELIABILITY.md).
    """
    for job in list(world.jobs.values()):
        if job.stage.terminal:
            continue
        fate = rng.choice(["stay", "complete", "complete", "complete", "error", "oom", "vanish"])
        if fate == "vanish" and (job.job_id not in known or not vanish):
            fate = "complete"
        if fate == "stay":
            if job.stage is JobStage.SCHEDULING:
                world.advance(job.job_id, JobStage.RUNNING)
            continue
        timeout = job.spec.timeout_s
        ran = rng.randint(1, timeout) if rng.random() < 0.85 else rng.randint(timeout + 1, timeout + 900)
        if fate == "vanish":
            world.vanish(job.job_id, ran_s=ran)
        elif fate == "complete":
            world.advance(job.job_id, JobStage.COMPLETED, duration_s=ran, logs=f"eval_accuracy={rng.random():.4f}\n")
        else:
            log = "torch.OutOfMemoryError: CUDA out of memory\n" if fate == "oom" else "RuntimeError: boom\n"
            world.advance(job.job_id, JobStage.ERROR, duration_s=ran, logs=log, message="exit code 1")


TOTALS: dict[str, Any] = {"examples": 0, "valid": 0, "checks": 0, "crashes": 0, "jobs": 0, "llm": 0, "stops": {}}


@pytest.fixture(scope="module", autouse=True)
def report_totals():
    yield
    print(f"budget property: {TOTALS['examples']} campaigns ({TOTALS['valid']} with a valid program.md), "
          f"{TOTALS['jobs']} jobs, {TOTALS['llm']} LLM calls, {TOTALS['crashes']} crashed steps, {TOTALS['checks']} checks after a step; "
          f"stops: {TOTALS['stops']}")


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=campaigns())
def test_no_campaign_ever_spends_past_its_envelope(spec):
    import os

    fsync = os.fsync
    os.fsync = lambda fd: None  # see reliability.no_fsync (a fixture cannot be function-scoped under @given)
    try:
        truth = run(spec)
    finally:
        os.fsync = fsync
    TOTALS["examples"] += 1
    TOTALS["valid"] += truth.checks > 0
    TOTALS["checks"] += truth.checks
    TOTALS["crashes"] += truth.crashes
    TOTALS["jobs"] += truth.jobs
    TOTALS["llm"] += truth.llm_calls
    for reason, n in truth.stops.items():
        TOTALS["stops"][reason] = TOTALS["stops"].get(reason, 0) + n
