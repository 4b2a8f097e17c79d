"""Whole campaigns with the hf backend over the loopback HF Jobs API: exactly once, dollars, faults, crashes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub")

from loopback.hf_server import FakeHubServer  # noqa: E402
from mlr_action.backends import _hf_http  # noqa: E402
from mlr_action.backends.hf import HfBackend  # noqa: E402
from mlr_action.forges.files import FileForge  # noqa: E402
from mlr_action.core.ledger import read_ledger  # noqa: E402
from mlr_action.core.proposal import Proposal  # noqa: E402
from mlr_action.proposers.search import SearchProposer  # noqa: E402
from mlr_action.core.budget import usage  # noqa: E402
from mlr_action.core.state import fold  # noqa: E402
from mlr_action.shell.step import Step  # noqa: E402
from mlr_action.render.views import campaign_status, render_status  # noqa: E402
from programs import CAMPAIGN, ENVELOPE, program_text, with_  # noqa: E402
from simulate import FakeClock  # noqa: E402

TOKEN = "hf_" + "FakeLoopbackToken0123456789abcdef"  # built, so no token-shaped literal is committed
REPO_ROOT = Path(__file__).resolve().parents[2]
# A PEP 723 script like a user's: the metric from its args, out of memory above a batch size, a hub_url line.
TRAIN = '''\
# /// script
# dependencies = []
# ///
import os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
if int(args.get("batch_size", 0)) > int(os.environ.get("OOM_ABOVE", "10000")):
    print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", flush=True)
    sys.exit(1)
lr, bs = float(args["lr"]), int(args["batch_size"])
score = 0.9 - abs(lr - 3e-4) * 100 - abs(bs - 32) / 1000
print(f"hub_url=https://huggingface.co/{os.environ['MLR_OUTPUT_REPO']}")
print(f"eval_accuracy={score:.4f}")
'''
OPEN = with_(CAMPAIGN, target=None, patience=None)


def make_repo(root: Path, envelope: dict | None = None, campaign: dict | None = None, train: str = TRAIN) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(train)
    (root / "program.md").write_text(program_text(with_(ENVELOPE, max_jobs=4) if envelope is None else envelope,
                                                  OPEN if campaign is None else campaign))
    return root


def hf_backend(hub, **policy) -> HfBackend:
    options = {"backoff_s": 0.0, "timeout_s": 5.0, "sleep": lambda s: None, **policy}
    return HfBackend(endpoint=hub.url, token=TOKEN, policy=_hf_http.Policy(**options))


def make_step(root: Path, hub, clock: FakeClock, backend=None, proposer=None) -> Step:
    return Step(root=root, backend=backend or hf_backend(hub), proposer=proposer or SearchProposer(),
                forge=FileForge(root), clock=clock)


def run(step: Step, hub, clock: FakeClock, *, max_ticks: int = 80, crash=None, finish=None) -> list:
    """Alternate steps and job completions until the campaign stops; the exit code of every step."""
    codes = []
    for tick in range(max_ticks):
        try:
            result = step.run()
        except Crash:
            codes.append("crash")
            result = None
        else:
            codes.append(result.exit_code)
            if result.stopped or result.exit_code == 2:
                break
        clock.advance(900)
        (finish or hub.run_all)()
    return codes


def state_of(root: Path):
    return fold(read_ledger(root / "runs" / "ledger.jsonl"))


def assert_exactly_once(root: Path, hub, campaign: str) -> None:
    """One job per iteration on the Hub, and every job the Hub created is in the ledger."""
    jobs = hub.jobs_of(campaign)
    iters = [j.labels["mlr-iter"] for j in jobs]
    assert len(iters) == len(set(iters)), f"an iteration got two jobs: {sorted(iters)}"
    state = state_of(root)
    assert {j.id for j in jobs} == set(state.job_rows), "a job on the Hub is missing from the ledger"
    for exp in state.experiments.values():
        assert exp.job_id is None or hub.jobs[exp.job_id].labels["mlr-iter"] == str(exp.iter)


def assert_no_token_in_files(root: Path) -> None:
    for folder in (root / "runs", root / ".mlr"):
        for path in folder.rglob("*") if folder.exists() else []:
            if path.is_file():
                assert TOKEN not in path.read_text(errors="replace"), f"the token leaked into {path}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hub(clock):
    with FakeHubServer(token=TOKEN, clock=clock.seconds) as hub:
        yield hub


# -- a whole campaign ------------------------------------------------------------


def test_a_campaign_runs_to_the_end_and_prices_every_job_from_the_catalog(tmp_path: Path, hub, clock) -> None:
    root = make_repo(tmp_path / "repo")
    codes = run(make_step(root, hub, clock), hub, clock)
    state = state_of(root)
    assert state.stopped.reason == "budget" and set(codes) == {0}
    assert len(hub.jobs) == 4
    assert_exactly_once(root, hub, state.campaign_id)
    for exp in state.experiments.values():
        job = hub.jobs[exp.job_id]
        assert job.spec["flavor"] == "a10g-large" and job.spec["timeoutSeconds"] == 3600
        # HF bills starting as well as running, and reports only SCHEDULING: the upper bound is charged, the 15 min
        # each job waited for the next tick (in SCHEDULING here) and its 10 min running, at $1.50/h (live)
        assert exp.duration_s == 1500 and exp.cost_usd == pytest.approx(0.625)
        assert exp.hub_url == f"https://huggingface.co/{exp.output_repo}" and exp.output_repo.startswith("me/sweep-")
    summary = (root / "runs" / "summary.md").read_text()
    assert "$2.50" in summary and "built-in price table" not in summary
    status = campaign_status(root, root / "program.md")
    assert status["cost_used_usd"] == pytest.approx(2.5)
    assert "$2.50" in render_status(status)


def test_max_cost_usd_is_enforced_before_every_submit_at_live_prices(tmp_path: Path, hub, clock) -> None:
    hub.hardware = [("t4-small", 0.01, "15 GB", ("T4", 1, "16 GB")), ("a10g-large", 0.05, "46 GB", ("A10G", 1, "24 GB"))]  # $3/h, twice the built-in price
    root = make_repo(tmp_path / "repo", with_(ENVELOPE, max_jobs=12, max_cost_usd=8))
    run(make_step(root, hub, clock), hub, clock)
    state = state_of(root)
    # each submit reserves its hour and the 10m it may spend starting (scheduling_timeout): $3.50, on top of
    # what finished jobs cost ($1.25 each: 25 min, starting included): 3 fit under $7.20
    assert state.stopped.reason == "budget" and "cost" in state.stopped.detail
    assert len(hub.jobs) == 3
    assert sum(e.cost_usd for e in state.experiments.values()) == pytest.approx(3.75)


def test_prices_fall_back_to_the_built_in_table_and_the_summary_says_so(tmp_path: Path, hub, clock) -> None:
    hub.hardware = None
    root = make_repo(tmp_path / "repo")
    step = make_step(root, hub, clock)
    result = step.run()
    assert result.exit_code == 0 and "built-in price table" in result.prices_note
    assert "built-in price table" in (root / "runs" / "summary.md").read_text()


def test_max_parallel_keeps_two_jobs_in_flight_with_both_reserved(tmp_path: Path, hub, clock) -> None:
    root = make_repo(tmp_path / "repo", with_(ENVELOPE, max_jobs=5, max_parallel=2))
    step = make_step(root, hub, clock)
    result = step.run()
    assert len(hub.jobs) == 2 and result.used.walltime_s == 2 * (3600 + 600)  # each its timeout and 10m to start
    assert {j.labels["mlr-iter"] for j in hub.jobs.values()} == {"1", "2"}
    run(step, hub, clock)
    state = state_of(root)
    assert state.stopped.reason == "budget" and len(hub.jobs) == 5
    assert_exactly_once(root, hub, state.campaign_id)


# -- exactly once ----------------------------------------------------------------


def test_a_submit_whose_response_is_lost_is_adopted_on_the_next_tick(tmp_path: Path, hub, clock) -> None:
    root = make_repo(tmp_path / "repo")
    step = make_step(root, hub, clock)
    hub.fail("POST", r"^/api/jobs/me$", "lost")
    result = step.run()
    assert result.exit_code == 1 and "labels" in result.events[-1]
    assert len(hub.jobs) == 1 and state_of(root).experiments[1].job_id is None
    assert step.run().exit_code == 0
    assert len(hub.jobs) == 1 and state_of(root).experiments[1].job_id == next(iter(hub.jobs))
    run(step, hub, clock)
    assert_exactly_once(root, hub, state_of(root).campaign_id)


def test_a_submit_that_timed_out_is_reconciled_by_label_first(tmp_path: Path, hub, clock) -> None:
    root = make_repo(tmp_path / "repo")
    step = make_step(root, hub, clock, backend=hf_backend(hub, timeout_s=0.3))
    hub.fail("POST", r"^/api/jobs/me$", "hang", seconds=1.0)
    assert step.run().exit_code == 1
    assert step.run().exit_code == 0
    assert len(hub.jobs) == 1 and state_of(root).experiments[1].job_id == next(iter(hub.jobs))


def test_a_refused_submit_charges_nothing_lasting_and_the_campaign_proceeds(tmp_path: Path, hub, clock) -> None:
    root = make_repo(tmp_path / "repo", with_(ENVELOPE, max_jobs=2))
    step = make_step(root, hub, clock)
    hub.fail("POST", r"^/api/jobs/me$", 503)
    result = step.run()
    assert result.exit_code == 1 and hub.jobs == {}
    assert usage(state_of(root)).jobs == 1  # the intent is charged until it is resolved: it might exist
    run(step, hub, clock)
    state = state_of(root)
    assert state.stopped.reason == "budget" and len(hub.jobs) == 2 and sorted(state.experiments) == [1, 2]


class Crash(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the step catches it."""


class Crashing:
    """Wraps a backend: the call numbered ``at`` raises Crash, before or after it reached the Hub."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.calls, self.at, self.after = inner, inner.name, 0, None, False

    def __getattr__(self, method: str):
        target = getattr(self.inner, method)
        if not callable(target):
            return target

        def call(*args, **kwargs):
            self.calls += 1
            if self.calls == self.at and not self.after:
                raise Crash()
            out = target(*args, **kwargs)
            if self.calls == self.at:
                raise Crash()
            return out

        return call


@pytest.mark.parametrize("seed", range(4))
def test_crashes_at_random_moments_never_duplicate_or_lose_a_job(tmp_path: Path, hub, clock, seed: int) -> None:
    rng = random.Random(seed)
    root = make_repo(tmp_path / "repo", with_(ENVELOPE, max_jobs=5, max_parallel=2))
    backend = Crashing(hf_backend(hub))
    step = make_step(root, hub, clock, backend=backend)

    def crash_somewhere() -> None:
        backend.calls, backend.at, backend.after = 0, rng.randint(1, 6), rng.random() < 0.5

    def finish() -> None:
        hub.run_all()
        crash_somewhere()

    crash_somewhere()

    codes = run(step, hub, clock, finish=finish, max_ticks=120)
    assert "crash" in codes
    state = state_of(root)
    assert state.stopped is not None and state.stopped.reason == "budget"
    assert len(hub.jobs) <= 5
    assert_exactly_once(root, hub, state.campaign_id)


def test_with_15_percent_of_api_calls_failing_the_campaign_still_finishes(tmp_path: Path, hub, clock, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    root = make_repo(tmp_path / "repo", with_(ENVELOPE, max_jobs=6, max_parallel=2))
    hub.chaos(0.15, seed=7)
    codes = run(make_step(root, hub, clock), hub, clock, max_ticks=150)
    hub.chaos(0)
    state = state_of(root)
    assert state.stopped is not None and state.stopped.reason == "budget", codes
    assert 1 in codes  # some ticks did fail, and the next one carried on
    assert 2 not in codes
    assert len(hub.jobs) == 6
    assert_exactly_once(root, hub, state.campaign_id)
    assert_no_token_in_files(root)


# -- errors ------------------------------------------------------------------------


def test_no_credits_escalates_with_where_to_add_them_and_submits_nothing(tmp_path: Path, hub, clock) -> None:
    root = make_repo(tmp_path / "repo")
    hub.fail("POST", r"^/api/jobs/me$", 402, times=None)
    result = make_step(root, hub, clock).run()
    assert result.exit_code == 2 and hub.jobs == {}
    report = (root / "runs" / "escalations" / "unrecoverable-error.md").read_text()
    assert "settings/billing" in report


def test_without_a_token_the_step_escalates_and_spends_nothing(tmp_path: Path, hub, clock, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    root = make_repo(tmp_path / "repo")
    backend = HfBackend(endpoint=hub.url, token_lookup=lambda: None, policy=_hf_http.Policy(backoff_s=0))
    result = make_step(root, hub, clock, backend=backend).run()
    assert result.exit_code == 2 and hub.jobs == {}
    assert "set HF_TOKEN" in (root / "runs" / "escalations" / "unrecoverable-error.md").read_text()


def test_a_vanished_job_is_recorded_once_not_retried(tmp_path: Path, hub, clock) -> None:
    root = make_repo(tmp_path / "repo", with_(ENVELOPE, max_jobs=2))
    step = make_step(root, hub, clock)
    step.run()
    del hub.jobs[next(iter(hub.jobs))]
    clock.advance(900)
    step.run()
    first = state_of(root).experiments[1]
    assert first.status == "error" and "no longer exists" in first.error


def test_no_token_appears_in_any_file_even_when_the_job_prints_it(tmp_path: Path, hub, clock, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    leaky = TRAIN.replace("import os, sys\n", "import os, sys\nprint('my token is', os.environ['HF_TOKEN'])\n")
    root = make_repo(tmp_path / "repo", train=leaky)
    run(make_step(root, hub, clock), hub, clock, finish=lambda: hub.run_all())
    assert any("my token is" in line for job in hub.jobs.values() for _, line in job.logs)  # it did print it
    assert state_of(root).stopped is not None
    assert_no_token_in_files(root)


# -- out of memory -------------------------------------------------------------------


class Scripted(SearchProposer):
    """The search proposer, except that its first proposals are given."""

    def __init__(self, first: list[dict]) -> None:
        super().__init__()
        self.first = list(first)

    def propose(self, *, program, state, count: int, check=None, used=None, prices=None) -> list[Proposal]:
        if self.first:
            return [Proposal(config=self.first.pop(0), hypothesis="scripted", proposer="scripted")]
        return super().propose(program=program, state=state, count=count, check=check, used=used, prices=prices)


def test_out_of_memory_is_retried_with_half_the_batch_and_the_same_everything_else(tmp_path: Path, hub, clock, monkeypatch) -> None:
    root = make_repo(tmp_path / "repo", campaign=with_(OPEN, fixed={"epochs": 3, "model": "tiny"}))
    (root / "train.py").write_text(TRAIN.replace('os.environ.get("OOM_ABOVE", "10000")', '"40"'))
    first = {"lr": 3e-4, "batch_size": 64, "scheduler": "cosine"}
    step = make_step(root, hub, clock, proposer=Scripted([first]))
    run(step, hub, clock)
    experiments = state_of(root).experiments
    assert experiments[1].status == "error" and "out of memory" in experiments[1].error
    assert experiments[2].config == {**first, "batch_size": 32}
    assert experiments[2].proposer == "recovery" and experiments[2].status == "completed"
    job = hub.jobs[experiments[2].job_id]
    assert "--model=tiny" in job.spec["command"] and job.spec["flavor"] == "a10g-large"


# -- allow_deletes -----------------------------------------------------------------


def push_output_repos(hub) -> None:
    """Run the jobs; each one 'pushes' its MLR_OUTPUT_REPO, as a real training script would."""
    for job in list(hub.jobs.values()):
        if job.stage not in ("COMPLETED", "ERROR", "CANCELED"):
            hub.run(job.id)
            hub.repos.add(("model", job.environment["MLR_OUTPUT_REPO"]))


@pytest.mark.parametrize("allow", [True, False])
def test_at_the_stop_discarded_runs_repos_are_deleted_only_when_allowed(tmp_path: Path, hub, clock, allow: bool) -> None:
    root = make_repo(tmp_path / "repo", with_(ENVELOPE, max_jobs=4, allow_deletes=allow))
    hub.repos.add(("model", "someone/else"))
    step = make_step(root, hub, clock)
    run(step, hub, clock, finish=lambda: push_output_repos(hub))
    state = state_of(root)
    assert state.stopped is not None
    kept = {e.output_repo for e in state.experiments.values() if e.decision == "keep"}
    discarded = {e.output_repo for e in state.experiments.values() if e.decision == "discard"}
    assert kept and discarded
    remaining = {repo for _, repo in hub.repos}
    assert kept <= remaining and "someone/else" in remaining
    deleted = [e for e in state.events if e.event == "deleted"]
    if allow:
        assert not (discarded & remaining)
        assert len(deleted) == 1 and set(deleted[0].repos_deleted) == discarded
    else:
        assert discarded <= remaining and deleted == []
    before = (root / "runs" / "ledger.jsonl").read_text()
    assert step.run().exit_code == 0
    assert (root / "runs" / "ledger.jsonl").read_text() == before  # idempotent: nothing more to delete


# -- through the CLI, in another process -----------------------------------------------


def cli_env(hub) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    return {**env, "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "PYTHONPATH": str(REPO_ROOT)}


def mlr(*args: str, hub, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlr_action", *args], env=cli_env(hub), capture_output=True,
                          text=True, timeout=timeout)


def test_mlr_run_with_the_hf_backend_runs_a_campaign(tmp_path: Path, hub) -> None:
    hub.autorun = 600.0
    root = make_repo(tmp_path / "repo", with_(ENVELOPE, max_jobs=3))
    done = mlr("run", "--repo", str(root), "--backend", "hf", "--interval", "0.05", "--max-ticks", "60", hub=hub)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "campaign stopped" in done.stdout
    state = state_of(root)
    assert state.stopped.reason == "budget" and len(hub.jobs) == 3
    assert_exactly_once(root, hub, state.campaign_id)
    assert_no_token_in_files(root)
    assert TOKEN not in done.stdout + done.stderr


def test_sigkill_while_a_submit_is_in_flight_then_run_to_the_end(tmp_path: Path, hub) -> None:
    hub.autorun = 600.0
    root = make_repo(tmp_path / "repo", with_(ENVELOPE, max_jobs=3))
    for method, path, after in [("POST", r"^/api/jobs/me$", True), ("GET", r"^/api/jobs/me$", False),
                                ("POST", r"^/api/jobs/me$", False)]:
        held = hub.hold(method, path, after=after)
        proc = subprocess.Popen([sys.executable, "-m", "mlr_action", "step", "--repo", str(root), "--backend", "hf"],
                                env=cli_env(hub), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not held.reached.wait(timeout=0.05):
            assert proc.poll() is None, "the step ended before it reached the held request"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        held.release.set()
        held.times = 0
    done = mlr("run", "--repo", str(root), "--backend", "hf", "--interval", "0.05", "--max-ticks", "60", hub=hub)
    assert done.returncode == 0, done.stdout + done.stderr
    state = state_of(root)
    assert state.stopped.reason == "budget" and len(hub.jobs) == 3
    assert_exactly_once(root, hub, state.campaign_id)


def test_mlr_validate_with_the_hf_backend_prices_the_envelope_live(tmp_path: Path, hub) -> None:
    root = make_repo(tmp_path / "repo", with_(ENVELOPE, max_cost_usd=25))
    done = mlr("validate", "--repo", str(root), "--backend", "hf", hub=hub)
    assert done.returncode == 0, done.stderr
    assert "a10g-large ($1.50/h)" in done.stdout and "live prices" in done.stdout
    hub.hardware = None
    done = mlr("validate", "--repo", str(root), "--backend", "hf", hub=hub)
    assert done.returncode == 0 and "built-in price table" in done.stdout


def test_status_json_reports_dollars(tmp_path: Path, hub, clock) -> None:
    root = make_repo(tmp_path / "repo")
    step = make_step(root, hub, clock)
    step.run()
    done = mlr("status", "--repo", str(root), "--json", hub=hub)
    status = json.loads(done.stdout)
    assert status["cost_used_usd"] == pytest.approx(1.5)  # one a10g-large job in flight, its full hour reserved
    assert status["in_flight_jobs"][0]["cost_usd"] == pytest.approx(1.5)
