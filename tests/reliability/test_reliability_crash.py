"""Crash at every side-effect boundary of a step, then keep stepping: nothing lost, nothing twice, never over budget.

The boundaries come from the code (see ``crashpoints``): every method the step
calls on its backend, forge and proposer, every REST call of the GitHub
adapter, every mutating git command, and every function of ``mlr_action``
that writes a file or starts a process. A crash-free run records the
boundaries in the order they happen; then, for each one, a fresh campaign
crashes just before it or just after it, and the next steps carry on. Each
crashed campaign must end with the same experiments (iter, status, config,
metric, decision) and the same stop as the crash-free one, every job the
backend created must be in the ledger exactly once under its own iter, and
the envelope must hold after every step, on the ledger's accounting and on
the backend's own record.

Three worlds: the in-memory backend with the file forge (every occurrence of
every boundary), the GitHub forge with git sync to a bare origin and a fresh
checkout every tick, as in Actions (every boundary the first world has not
already covered), and the local backend in forked processes killed with a
real SIGKILL (every boundary of the local backend, and a few of the step's).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import crashpoints as cp
import pytest
from programs import ENVELOPE, with_
from reliability import (
    LOCAL_CAMPAIGN,
    LOCAL_TRAIN,
    OPEN,
    DeletingBackend,
    GridProposer,
    StoppingForge,
    assert_exactly_once,
    assert_within_envelope,
    essence,
    finish_memory_jobs,
    make_repo,
    memory_truth,
    no_fsync,
    program_at,
    state_at,
)
from simulate import FakeClock

from mlr_action.core.jobs import JobBackend
from mlr_action.backends.local import LocalBackend
from mlr_action.backends.memory import InMemoryBackend
from mlr_action.forges import Forge
from mlr_action.forges.files import FileForge
from mlr_action.core.ledger import read_ledger
from mlr_action.core.state import fold
from mlr_action.shell.step import Step

# Writers that are not part of a step: each with the reason it needs no crash point.
OUTSIDE_STEP = {
    "commands.cli.main": "points stdout at /dev/null when the reader of `mlr status | head` left",
    "commands.cli.cmd_init": "`mlr init` drafts program.md for review; it spends nothing and is not a step",
    "github.ghenv.set_outputs": "the action's outputs file, written after the step",
    "github.ghenv.append_summary": "the action's job summary, written after the step",
    "commands.schema.main": "a developer tool that regenerates program.schema.json",
    "backends._supervise.start": "runs in the local job's supervisor process, not in the step",
    "commands.reproduce.run": "`mlr reproduce ITER --run` runs one experiment again by hand; it is not a step and spends nothing",
    # The primitives under every writer (mlr_action.core.safepath): each caller is the boundary, crashing
    # just after one leaves the same world as crashing just after its caller.
    "core.safepath.replace": "the atomic replace under write_atomic, write_note and repair_ledger",
    "core.safepath.append": "the append under ledger.append_rows",
    "core.safepath.create": "the create-if-missing under steplock.lock and the local registry",
}
MAX_TICKS = 40
pytestmark = pytest.mark.usefixtures(no_fsync.__name__)


@dataclass
class Outcome:
    essence: list
    crashed: bool
    ticks: int
    names: set[str] = field(default_factory=set)


# --- world 1: in-memory backend, file forge -------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    envelope: dict
    hostile: bool = False
    stop_after: int | None = None  # a person stops the campaign once the ledger has this many experiments
    hold_from: int | None = None  # jobs of this iter and later never finish on their own
    # The job of this iter runs, then the backend forgets it, once the ledger has recorded it: exactly-once
    # relies on the backend listing every job it created, so a job must not vanish between a lost submit
    # answer and the next tick (see docs/RELIABILITY.md).
    vanish: int | None = None
    program_from: int = 1  # the tick from which program.md exists (before it: onboarding)
    campaign: dict = field(default_factory=lambda: OPEN)

    def forge(self, root: Path) -> FileForge:
        return StoppingForge(root, after=self.stop_after) if self.stop_after else FileForge(root)

    def finish(self, world: InMemoryBackend, root: Path) -> None:
        known = {e.iter for e in state_at(root).job_rows.values()}
        finish_memory_jobs(world, unless=lambda i: (self.hold_from is not None and i >= self.hold_from)
                           or (i == self.vanish and i not in known), vanish=lambda i: i == self.vanish)


SCENARIOS = [
    # max_jobs with two in flight, an out-of-envelope proposal refused (an escalation, resolved later), a job
    # the backend forgets (inspected: DELETED), and the Hub repos of discarded runs deleted at the stop (the
    # fifth run's; the forgotten job's repo is kept, since the backend no longer lists that job).
    Scenario("budget", with_(ENVELOPE, max_jobs=5, max_parallel=2, allow_deletes=True, max_cost_usd=20), hostile=True,
             vanish=2),
    # onboarding (no program.md on the first tick), then a person stops it once iters 3 and 4 are in flight
    # (they never finish): both are canceled (or, an intent whose job never reached the backend, closed).
    Scenario("human-stop", with_(ENVELOPE, max_jobs=8, max_parallel=2), stop_after=4, hold_from=3, program_from=2),
    # the final evaluation (issue 15): the search stops on its budget (two of max_jobs kept back), then two repeats
    # of the best config run side by side from the reserve, and a final row ends it; no repeat may run twice.
    Scenario("final", with_(ENVELOPE, max_jobs=4, max_parallel=2),
             campaign=with_(OPEN, final={"repeats": 2, "seed_param": "seed", "fixed": {"split": "test"}})),
]


def run_memory(root: Path, scenario: Scenario, bounds: cp.Boundaries) -> Outcome:
    make_repo(root, scenario.envelope, scenario.campaign)
    program = program_at(root)
    approved = (root / "program.md").read_text()
    if scenario.program_from > 1:
        (root / "program.md").unlink()
    clock = FakeClock()
    world = DeletingBackend(clock.seconds)

    def new_step() -> Step:  # a new process: nothing of the crashed one survives but the world and the files
        return Step(root=root, backend=cp.Proxy(world, "backend", bounds),
                    proposer=cp.Proxy(GridProposer(hostile=scenario.hostile), "proposer", bounds),
                    forge=cp.Proxy(scenario.forge(root), "forge", bounds), clock=clock)

    step, crashed = new_step(), False
    for tick in range(1, MAX_TICKS + 1):
        if tick == scenario.program_from:
            (root / "program.md").write_text(approved)  # a person merged the onboarding PR
        bounds.new_process()
        try:
            result = step.run()
        except cp.Crash:
            result, crashed, step = None, True, new_step()
        state = state_at(root)
        assert_within_envelope(program, state, memory_truth(world, clock.seconds()))
        if result is not None and state.stopped is not None and not state.in_flight:
            break
        clock.advance(900)
        scenario.finish(world, root)
    else:
        pytest.fail(f"{scenario.name}: the campaign did not end in {MAX_TICKS} ticks")
    state = state_at(root)
    assert_exactly_once(state, memory_truth(world, clock.seconds()))
    deleted = world.deleted
    assert len(deleted) == len(set(deleted)), f"a Hub repo was deleted twice: {deleted}"
    return Outcome(essence(state), crashed, tick)


@pytest.fixture(scope="module")
def memory_records(tmp_path_factory) -> dict[str, tuple[Outcome, cp.Boundaries]]:
    """The crash-free run of each scenario, with the boundaries it crossed in order."""
    records = {}
    for scenario in SCENARIOS:
        bounds = cp.Boundaries()
        with cp.installed(bounds, _step_writers()):
            outcome = run_memory(tmp_path_factory.mktemp(f"clean-{scenario.name}"), scenario, bounds)
        outcome.names = bounds.names
        records[scenario.name] = (outcome, bounds)
    return records


def _step_writers() -> list[cp.Writer]:
    return [w for w in cp.discover_writers() if w.name not in OUTSIDE_STEP]


def crash_each(targets, run, expected, writers) -> list[str]:
    """Crash at each target in turn (``run(number, bounds)`` runs one whole campaign); the broken guarantees."""
    failures = []
    for number, target in enumerate(targets):
        bounds = cp.Boundaries(target=target)
        with cp.installed(bounds, writers):
            try:
                outcome = run(number, bounds)
            except AssertionError as exc:
                failures.append(f"{target}: {exc}")
                continue
        assert bounds.fired, f"{target} was never reached"
        if outcome.essence != expected:
            failures.append(f"{target}: {outcome.essence} != {expected}")
    return failures


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_crash_before_and_after_every_boundary_then_continue(tmp_path, scenario, memory_records):
    clean, recorded = memory_records[scenario.name]
    if scenario.name == "final":  # the clean run got as far as the end of its final evaluation
        assert ("final", "finished") in clean.essence and sum(len(row) == 7 for row in clean.essence) == 2, clean.essence
    targets = recorded.targets()
    assert len(targets) >= 50, f"suspiciously few boundaries: {len(targets)}"
    writers = _step_writers()
    failures = crash_each(targets, lambda number, bounds: run_memory(tmp_path / f"run{number}", scenario, bounds), clean.essence, writers)
    assert not failures, f"{len(failures)} of {len(targets)} crash points broke a guarantee:\n" + "\n".join(failures[:20])
    print(f"{scenario.name}: {len(targets)} crash points ({len(recorded.names)} distinct boundaries), all recovered")


# --- the boundaries cover every side effect in the code ---------------------------------------------


def _methods(*classes: type) -> set[str]:
    return {name for cls in classes for name, value in vars(cls).items() if callable(value) and not name.startswith("_")}


def test_the_boundaries_cover_every_side_effect_in_the_code(memory_records, github_record, local_record, claude_record):
    from mlr_action.backends.hf import HfBackend
    from mlr_action.github.forge import GitHubForge

    hit = set().union(*(outcome.names for outcome, _ in memory_records.values()), github_record.names, local_record.names,
                      claude_record.names)
    calls = cp.step_calls()
    backend_methods = _methods(JobBackend, InMemoryBackend, DeletingBackend, LocalBackend, HfBackend)
    forge_methods = _methods(Forge, FileForge, GitHubForge)
    missing = [f"backend.{m}" for m in sorted(calls["backend"] & backend_methods) if f"backend.{m}" not in hit]
    missing += [f"forge.{m}" for m in sorted(calls["forge"] & forge_methods) if f"forge.{m}" not in hit]
    missing += [f"proposer.{m}" for m in sorted(calls["proposer"]) if f"proposer.{m}" not in hit]
    # every method of the protocols that the step calls is among them
    assert _methods(JobBackend) <= calls["backend"], _methods(JobBackend) - calls["backend"]
    assert {"read_controls", "publish_stop_report", "publish_escalation", "finish_step", "onboard"} <= calls["forge"]
    writers = cp.discover_writers()
    assert len(writers) >= 20, "the writer scan found too little: is the pattern list broken?"
    for writer in writers:
        if writer.name in OUTSIDE_STEP:
            continue
        if writer.qualname == "GitRepo.git":
            if not any(name.startswith("github.gitrepo.GitRepo.git:") for name in hit):
                missing.append(writer.name)
        elif writer.name not in hit:
            missing.append(f"{writer.name} ({writer.why}, line {writer.line})")
    stale = sorted(set(OUTSIDE_STEP) - {w.name for w in writers})
    assert not stale, f"OUTSIDE_STEP names writers that no longer exist: {stale}"
    assert not missing, ("side effects no crash test reaches; add a scenario that reaches them, or (if they are "
                         "not part of a step) list them in OUTSIDE_STEP with the reason: " + ", ".join(missing))
    for name in ("github.gitrepo.GitRepo.git:push", "github.gitrepo.GitRepo.git:commit-tree", "core.ledger.append_rows",
                 "forges.files.write_atomic", "github.create_issue", "github.edit"):
        assert name in hit, name
    print(f"coverage: {len(hit)} distinct boundaries crossed in four worlds; {len(writers)} writers found in the "
          f"source, {len(writers) - len(OUTSIDE_STEP)} in a step, all crossed; {len(OUTSIDE_STEP)} outside a step")


# --- world 2: GitHub forge, git sync to a bare origin, a fresh checkout every tick --------------------

GITHUB_ENVELOPE = with_(ENVELOPE, max_jobs=2, max_parallel=2)


def run_github(base: Path, bounds: cp.Boundaries) -> Outcome:
    """As in Actions: each tick checks out origin afresh, so what a crashed step did not push is gone."""
    from loopback.github_server import FakeGitHub
    from gitrepos import clone, make_origin
    from programs import program_text

    from mlr_action.github.forge import GitHubForge

    base.mkdir(parents=True)
    origin = make_origin(base, {"train.py": "print('eval_accuracy=0.5')\n", "program.md": program_text(GITHUB_ENVELOPE, OPEN)})
    clock = FakeClock()
    world = InMemoryBackend(clock=clock.seconds)
    crashed = False
    with FakeGitHub() as gh:
        for tick in range(1, MAX_TICKS + 1):
            work = base / "work"
            shutil.rmtree(work, ignore_errors=True)
            clone(origin, work)
            forge = GitHubForge(work, env=gh.env(), clock=clock, throttle=False, backoff=0)
            forge.api = cp.Proxy(forge.api, "github", bounds, skip=frozenset({"calling"}))
            forge = cp.Proxy(forge, "forge", bounds)
            # As the action and `mlr step --forge github` do: runs/ is pushed before every submit.
            step = Step(root=work, backend=cp.Proxy(world, "backend", bounds), proposer=cp.Proxy(GridProposer(), "proposer", bounds),
                        forge=forge, clock=clock, publish=lambda message, forge=forge: forge.publish(message=message))
            bounds.new_process()
            try:
                result = step.run()
            except cp.Crash:
                result, crashed = None, True
            state = _origin_state(origin)
            assert_within_envelope(program_at(work), state, memory_truth(world, clock.seconds()))
            if result is not None and result.exit_code == 0 and state.stopped is not None and not state.in_flight:
                break
            clock.advance(900)
            finish_memory_jobs(world)
        else:
            pytest.fail(f"the GitHub campaign did not end in {MAX_TICKS} ticks")
        dashboards = [i for i in gh.issues.values() if any(l["name"] == "mlr-dashboard" for l in i["labels"])]
        assert len(dashboards) == 1, f"{len(dashboards)} dashboard issues"
        reports = [c for c in gh.comments.values() if "mlr-action:stop-report" in c["body"]]
        assert len(reports) == 1, f"{len(reports)} stop reports"
    state = _origin_state(origin)
    assert_exactly_once(state, memory_truth(world, clock.seconds()))
    return Outcome(essence(state), crashed, tick)


def _origin_state(origin: Path):
    from gitrepos import git

    text = git(origin, "show", "main:runs/ledger.jsonl", check=False)
    ledger = origin.parent / "origin-ledger.jsonl"
    ledger.write_text(text + "\n" if text else "")
    return fold(read_ledger(ledger))


@pytest.fixture(scope="module")
def github_record(tmp_path_factory) -> Outcome:
    from gitrepos import isolate_git

    with pytest.MonkeyPatch.context() as mp:
        base = tmp_path_factory.mktemp("github-clean")
        isolate_git(mp, base)
        mp.setattr(os, "fsync", lambda fd: None)
        bounds = cp.Boundaries()
        with cp.installed(bounds, _step_writers()):
            outcome = run_github(base / "campaign", bounds)
        outcome.names = bounds.names
        outcome.bounds = bounds  # type: ignore[attr-defined]
    return outcome


def test_github_crash_at_every_boundary_of_its_own_then_continue(tmp_path, monkeypatch, github_record, memory_records):
    from gitrepos import isolate_git

    isolate_git(monkeypatch, tmp_path)
    covered = set().union(*(outcome.names for outcome, _ in memory_records.values()))
    own = github_record.names - covered
    targets = github_record.bounds.targets(names=own, first_only=True)
    # Before the push every row of the step is lost with the checkout: crash where a job exists that no
    # pushed row names, and just before the push itself; before the publish in the middle of a step (the
    # intents not yet on the remote) and just after it (on the remote, not yet submitted).
    assert "forge.publish" in own
    targets += [("backend.submit", 1, "after"), ("github.gitrepo.GitRepo.git:push", 1, "before"),
                ("forge.publish", 1, "before")]
    writers = _step_writers()
    failures = crash_each(targets, lambda number, bounds: run_github(tmp_path / f"run{number}", bounds), github_record.essence, writers)
    assert not failures, f"{len(failures)} of {len(targets)} crash points broke a guarantee:\n" + "\n".join(failures[:20])
    print(f"github: {len(targets)} crash points over {len(own)} boundaries: {sorted(own)}")


# --- world 3: the local backend, in forked processes killed with a real SIGKILL ----------------------

LOCAL_ENVELOPE = with_(ENVELOPE, max_jobs=2, max_parallel=2, allowed_flavors=["cpu-basic"], max_timeout="1m",
                       max_walltime="1h")
# The one window the local backend does not close: killed after a job's registry entry is written and before
# its supervisor is launched, the job never runs. It is recorded as an error once START_GRACE_S has passed,
# charged, and never run twice (see docs/RELIABILITY.md).
NEVER_LAUNCHED = {("backends.local.LocalBackend._register", "after"), ("backends.local.LocalBackend._launch", "before")}


def _local_jobs(root: Path) -> list:
    from reliability import RanJob

    return [RanJob(v.job_id, v.iter or 0, v.flavor or "", v.timeout_s or 0, v.stage.terminal, v.duration_s)
            for v in LocalBackend(root).list_jobs(campaign=state_at(root).campaign_id or "")]


def _wait_for_local_jobs(root: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while any(not j.finished for j in _local_jobs(root)):
        assert time.monotonic() < deadline, "local jobs did not finish"
        time.sleep(0.05)


def _forked_step(root: Path, target: cp.Target | None, log: Path, writers: list[cp.Writer]) -> str:
    """One step in a forked child; "killed" when it died of SIGKILL, else its exit code."""
    counts = cp.Counter(log.read_text().split()) if log.exists() else cp.Counter()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            bounds = cp.Boundaries(target=target, mode="sigkill", counts=counts, log=log)
            with cp.installed(bounds, writers):
                step = Step(root=root, backend=cp.Proxy(LocalBackend(root), "backend", bounds),
                            proposer=cp.Proxy(GridProposer(), "proposer", bounds),
                            forge=cp.Proxy(FileForge(root), "forge", bounds))
                code = step.run().exit_code
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL, f"the step died of signal {os.WTERMSIG(status)}"
        return "killed"
    return str(os.WEXITSTATUS(status))


def run_local(root: Path, target: cp.Target | None, writers: list[cp.Writer]) -> tuple[Outcome, list[str]]:
    make_repo(root, LOCAL_ENVELOPE, LOCAL_CAMPAIGN, train=LOCAL_TRAIN)
    program = program_at(root)
    log = root.parent / f"{root.name}.boundaries"
    codes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with pytest's threads: the child only steps
        for tick in range(1, 12):
            codes.append(_forked_step(root, target, log, writers))
            assert codes[-1] in ("killed", "0", "1"), codes
            _wait_for_local_jobs(root)
            state = state_at(root)
            assert_within_envelope(program, state, _local_jobs(root))
            if codes[-1] != "killed" and state.stopped is not None and not state.in_flight:
                break
        else:
            pytest.fail(f"the local campaign did not end: {codes}")
    state = state_at(root)
    assert_exactly_once(state, _local_jobs(root))
    outcome = Outcome(essence(state), "killed" in codes, tick, set(log.read_text().split()))
    return outcome, codes


@pytest.fixture(scope="module")
def local_record(tmp_path_factory) -> Outcome:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", lambda fd: None)
        outcome, codes = run_local(tmp_path_factory.mktemp("local-clean") / "repo", None, _step_writers())
    assert "killed" not in codes
    return outcome


def test_sigkill_at_the_local_backends_boundaries_then_continue(tmp_path, monkeypatch, local_record):
    from mlr_action.backends import local

    monkeypatch.setattr(local, "START_GRACE_S", 1.0)  # a registered job that was never launched fails soon
    own = sorted(n for n in local_record.names if n.startswith("backends.") or n in ("backend.submit", "backend.cancel"))
    targets: list[cp.Target] = [(name, 1, "after") for name in own]
    targets += [("shell.steplock.lock", 1, "after"), ("core.ledger.append_rows", 2, "after"), ("backend.submit", 2, "after"),
                ("forges.files.write_atomic", 1, "before"), *((name, 1, phase) for name, phase in sorted(NEVER_LAUNCHED))]
    writers = _step_writers()
    failures = []
    for number, target in enumerate(targets):
        try:
            outcome, codes = run_local(tmp_path / f"run{number}", target, writers)
        except AssertionError as exc:
            failures.append(f"{target}: {exc}")
            continue
        if "killed" not in codes:
            failures.append(f"{target}: never reached ({codes})")
        elif (target[0], target[2]) in NEVER_LAUNCHED:
            errors = [e for e in state_at(tmp_path / f"run{number}").experiments.values() if e.status == "error"]
            if len(errors) != 1 or "never started" not in (errors[0].error or ""):
                failures.append(f"{target}: expected one never-started job, got {outcome.essence}")
        elif outcome.essence != local_record.essence:
            failures.append(f"{target}: {outcome.essence} != {local_record.essence}")
    assert not failures, "\n".join(failures)
    print(f"local: {len(targets)} SIGKILLs at {sorted({t[0] for t in targets})}, all recovered")


# --- the Claude proposer: research notes and LLM calls are boundaries too -----------------------------

CLAUDE_ENVELOPE = with_(ENVELOPE, max_jobs=3, max_llm_usd=2)


def _claude_answer(body: dict):
    import re

    from loopback.anthropic_stub import is_research, search_turn, structured, user_text

    if is_research(body):
        return search_turn([("A recipe", "https://example.org/recipe")], "Recipes use lr 3e-4.")
    n = int(re.search(r"Propose experiment iter (\d+)", user_text(body)).group(1))
    config = GRID_FOR_CLAUDE[(n - 1) % len(GRID_FOR_CLAUDE)]
    return structured({"hypothesis": f"iter {n} tests grid point {n}", "config": config, "flavor": "a10g-large",
                       "timeout_minutes": 60, "reason": "the next grid point"})


GRID_FOR_CLAUDE = [{"lr": 1e-4, "batch_size": 16, "scheduler": "cosine"}, {"lr": 3e-4, "batch_size": 32, "scheduler": "cosine"},
                   {"lr": 1e-3, "batch_size": 16, "scheduler": "linear"}]


def run_claude(root: Path, bounds: cp.Boundaries) -> Outcome:
    from mlr_action.proposers.claude import ClaudeProposer

    make_repo(root, CLAUDE_ENVELOPE)
    program = program_at(root)
    clock = FakeClock()
    world = DeletingBackend(clock.seconds)

    def new_step() -> Step:
        proposer = ClaudeProposer(clock=clock)
        proposer.client = cp.Proxy(proposer.client, "llm", bounds, skip=frozenset({"take_spend", "pending_usd"}))
        return Step(root=root, backend=cp.Proxy(world, "backend", bounds), proposer=cp.Proxy(proposer, "proposer", bounds),
                    forge=cp.Proxy(FileForge(root), "forge", bounds), clock=clock)

    crashed = False
    for tick in range(1, MAX_TICKS + 1):
        bounds.new_process()
        try:
            result = new_step().run()
        except cp.Crash:
            result, crashed = None, True
        state = state_at(root)
        assert_within_envelope(program, state, memory_truth(world, clock.seconds()))
        if result is not None and state.stopped is not None and not state.in_flight:
            break
        clock.advance(900)
        finish_memory_jobs(world)
    state = state_at(root)
    assert_exactly_once(state, memory_truth(world, clock.seconds()))
    return Outcome(essence(state), crashed, tick)


@pytest.fixture(scope="module")
def claude_stub():
    from loopback.anthropic_stub import StubAnthropic

    with StubAnthropic(_claude_answer) as stub, pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANTHROPIC_BASE_URL", stub.url)
        mp.setenv("ANTHROPIC_API_KEY", "sk-" + "ant-test-0000-not-a-real-key")
        yield stub


@pytest.fixture(scope="module")
def claude_record(tmp_path_factory, claude_stub) -> Outcome:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", lambda fd: None)
        bounds = cp.Boundaries()
        with cp.installed(bounds, _step_writers()):
            outcome = run_claude(tmp_path_factory.mktemp("claude-clean") / "repo", bounds)
    outcome.names = bounds.names
    outcome.bounds = bounds  # type: ignore[attr-defined]
    return outcome


def test_claude_crash_at_every_boundary_of_its_own_then_continue(tmp_path, claude_record, memory_records):
    covered = set().union(*(outcome.names for outcome, _ in memory_records.values()))
    own = claude_record.names - covered
    assert {"proposers.research.write_note", "llm.parse", "llm.search"} <= own
    targets = claude_record.bounds.targets(names=own, first_only=True)
    # Just after a reservation is on the ledger (the append that follows a reserve that reserved), before any call.
    seen = claude_record.bounds.seen
    reserved = [seen[i + 1] for i, (name, _) in enumerate(seen[:-1])
                if name == "proposer.reserve" and seen[i + 1][0] == "core.ledger.append_rows"]
    assert reserved, "no reservation was recorded in the Claude campaign"
    targets += [(name, n, "after") for name, n in reserved[:2]]
    writers = _step_writers()
    failures = crash_each(targets, lambda number, bounds: run_claude(tmp_path / f"run{number}", bounds), claude_record.essence, writers)
    assert not failures, "\n".join(failures)
    print(f"claude: {len(targets)} crash points over {sorted(own)}")
