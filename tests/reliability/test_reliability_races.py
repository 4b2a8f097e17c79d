"""Two steps on one campaign at once (a cron tick and a manual dispatch): never a job twice.

Local: the two steps share a checkout and contend for ``.mlr/step.lock``; they
run in processes forked at the same instant (and, twice, as real ``mlr step``
processes). GitHub: the two steps run on two clones of one bare origin against
one loopback HF Jobs API, as two workflow runs would without a concurrency
group; what keeps them straight is the rejected push, the ledger merge and the
campaign's job labels.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
from programs import ENVELOPE, with_
from reliability import (
    LOCAL_CAMPAIGN,
    LOCAL_TRAIN,
    OPEN,
    GridProposer,
    RanJob,
    assert_exactly_once,
    assert_within_envelope,
    make_repo,
    no_fsync,
    program_at,
    state_at,
)

from mlr_action.backends.local import LocalBackend
from mlr_action.forges.files import FileForge
from mlr_action.shell.step import Step

pytestmark = pytest.mark.usefixtures(no_fsync.__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
BUSY = 3  # a child's exit code when it found the other step holding the lock

# --- local: the step lock --------------------------------------------------------------------------

LOCAL_ENVELOPE = with_(ENVELOPE, max_jobs=6, max_parallel=2, allowed_flavors=["cpu-basic"], max_timeout="1m",
                       max_walltime="1h")


def local_jobs(root: Path) -> list[RanJob]:
    views = [LocalBackend(root)._view(d, r, LocalBackend(root)._reconcile(d, r)) for d, r in LocalBackend(root)._entries()]
    return [RanJob(v.job_id, v.iter or 0, v.flavor or "", v.timeout_s or 0, v.stage.terminal, v.duration_s) for v in views]


def race_forked(root: Path, count: int = 2) -> list[int]:
    """``count`` steps in processes released at the same instant; their exit codes (BUSY: found the lock held)."""
    go_read, go_write = os.pipe()
    pids = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with pytest's threads: the child only steps
        for _ in range(count):
            pid = os.fork()
            if pid == 0:  # the child: never returns into pytest
                code = 70
                try:
                    os.close(go_write)
                    os.read(go_read, 1)
                    result = Step(root=root, backend=LocalBackend(root), proposer=GridProposer(), forge=FileForge(root)).run()
                    busy = any("another step is running" in e for e in result.events)
                    code = BUSY if busy else result.exit_code
                finally:
                    os._exit(code)
            pids.append(pid)
    os.close(go_read)
    os.write(go_write, b"x" * count)
    os.close(go_write)
    return [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]


def finish_local(root: Path, *, max_ticks: int = 30) -> None:
    """Step alone until the campaign has stopped and nothing is in flight."""
    for _ in range(max_ticks):
        state = state_at(root)
        if state.stopped is not None and not state.in_flight:
            return
        Step(root=root, backend=LocalBackend(root), proposer=GridProposer(), forge=FileForge(root)).run()
        time.sleep(0.1)
    pytest.fail("the campaign did not stop")


def test_two_steps_at_once_on_one_checkout_never_submit_twice(tmp_path):
    rounds, contended = 0, 0
    for campaign in range(3):
        root = make_repo(tmp_path / f"campaign{campaign}", LOCAL_ENVELOPE, LOCAL_CAMPAIGN, train=LOCAL_TRAIN)
        program = program_at(root)
        for _ in range(10):
            codes = race_forked(root)
            rounds += 1
            assert set(codes) <= {0, BUSY}, codes
            contended += BUSY in codes
            assert_within_envelope(program, state_at(root), local_jobs(root))
            time.sleep(0.05)  # some jobs finish between ticks, some do not
        finish_local(root)
        state = state_at(root)
        assert state.stopped.reason == "budget"
        assert_exactly_once(state, local_jobs(root))
        assert_within_envelope(program, state, local_jobs(root))
    assert contended >= rounds // 3, f"only {contended} of {rounds} races overlapped: the test lost its teeth"
    print(f"local races: {rounds} rounds, {contended} found the lock held, no job twice")


def test_two_real_mlr_step_processes_at_once(tmp_path):
    root = make_repo(tmp_path / "repo", with_(LOCAL_ENVELOPE, max_jobs=3), LOCAL_CAMPAIGN, train=LOCAL_TRAIN)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    outputs = []
    for _ in range(2):
        procs = [subprocess.Popen([sys.executable, "-m", "mlr_action", "step", "--repo", str(root)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode in (0, 1), out
            outputs.append(out)
        time.sleep(0.2)
    finish_local(root)
    assert_exactly_once(state_at(root), local_jobs(root))
    assert_within_envelope(program_at(root), state_at(root), local_jobs(root))


# --- GitHub: two clones, one origin, one HF Jobs API -----------------------------------------------

HF_TOKEN = "hf_" + "FakeLoopbackToken0123456789abcdef"  # built, so no token-shaped literal is committed
GH_ENVELOPE = with_(ENVELOPE, max_jobs=12, max_parallel=2, max_walltime="100h")


class GitSyncForge(FileForge):
    """The file forge, plus what the GitHub forge does first in finish_step: commit and push runs/."""

    def finish_step(self, *, step) -> None:
        from mlr_action.github.gitsync import publish_runs

        super().finish_step(step=step)
        publish_runs(self.root, message="mlr: " + "; ".join(step.events)[:200], backoff=0.01, attempts=8)


def checkout(origin: Path, work: Path) -> Path:
    """What actions/checkout gives each workflow run: a fresh clone of the default branch."""
    from gitrepos import clone

    shutil.rmtree(work, ignore_errors=True)
    work.parent.mkdir(parents=True, exist_ok=True)
    return clone(origin, work)


def hf_step(root: Path, hub) -> Step:
    from mlr_action.backends import _hf_http
    from mlr_action.backends.hf import HfBackend

    backend = HfBackend(endpoint=hub.url, token=HF_TOKEN,
                        policy=_hf_http.Policy(backoff_s=0.0, timeout_s=5.0, sleep=lambda s: None))
    return Step(root=root, backend=backend, proposer=GridProposer(), forge=GitSyncForge(root))


def finish_hub_jobs(hub, only: set[int] | None = None) -> None:
    """Every live job (of the iters ``only`` names) completes after 10 minutes with the metric its args give."""
    for job in list(hub.jobs.values()):
        if job.stage in ("COMPLETED", "ERROR", "CANCELED", "DELETED"):
            continue
        if only is not None and int(job.labels["mlr-iter"]) not in only:
            continue
        words = [*job.spec.get("command", []), *job.spec.get("arguments", [])]
        args = dict(w[2:].split("=", 1) for w in words[words.index("mlr-job") + 1:])
        metric = 0.5 + int(args["batch_size"]) / 1000 + float(args["lr"])
        hub.advance(job.id, "RUNNING")
        hub.advance(job.id, "COMPLETED", logs=f"eval_accuracy={metric:.6f}", running_secs=600)


def hub_truth(hub, campaign: str) -> list[RanJob]:
    return [RanJob(j.id, int(j.labels["mlr-iter"]), j.spec["flavor"], int(j.spec["timeoutSeconds"]),
                   j.stage in ("COMPLETED", "ERROR", "CANCELED", "DELETED"), j.running_secs, j.stage == "CANCELED")
            for j in hub.jobs_of(campaign)]


def origin_state(origin: Path, where: Path):
    from gitrepos import git

    from mlr_action.core.ledger import read_ledger
    from mlr_action.core.state import fold

    where.write_text(git(origin, "show", "main:runs/ledger.jsonl") + "\n")
    return fold(read_ledger(where))


def test_two_clones_step_at_once_and_never_submit_twice(tmp_path, monkeypatch):
    from gitrepos import isolate_git, make_origin
    from loopback.hf_server import FakeHubServer
    from programs import program_text

    isolate_git(monkeypatch, tmp_path)
    races = duplicates = 0
    for campaign in range(3):
        base = tmp_path / f"campaign{campaign}"
        base.mkdir()
        origin = make_origin(base, {"train.py": LOCAL_TRAIN, "program.md": program_text(GH_ENVELOPE, OPEN)})
        with FakeHubServer(token=HF_TOKEN) as hub:
            for _ in range(12):
                # Both runs check out into a folder of the repository's name, as on GitHub's runners.
                steps = [hf_step(checkout(origin, base / name / "sweep"), hub) for name in ("cron", "dispatch")]
                barrier = threading.Barrier(len(steps))
                results: list = [None] * len(steps)

                def run(i: int) -> None:
                    barrier.wait()
                    results[i] = steps[i].run()

                threads = [threading.Thread(target=run, args=(i,)) for i in range(len(steps))]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=60)
                races += 1
                assert all(r is not None and r.exit_code in (0, 1) for r in results), [r and r.events for r in results]
                state = origin_state(origin, base / "ledger.jsonl")
                if state.stopped is not None and not state.in_flight:
                    break
                finish_hub_jobs(hub)
            for _ in range(10):  # one workflow again, until the campaign has stopped
                state = origin_state(origin, base / "ledger.jsonl")
                if state.stopped is not None and not state.in_flight:
                    break
                hf_step(checkout(origin, base / "cron" / "sweep"), hub).run()
                finish_hub_jobs(hub)
            state = origin_state(origin, base / "ledger.jsonl")
            assert state.stopped is not None and state.stopped.reason == "budget", state.stopped
            jobs = hub_truth(hub, state.campaign_id)
            assert_exactly_once(state, jobs, raced=True)
            duplicates += len(jobs) - len(state.job_rows)
            assert_within_envelope(program_at(base / "cron" / "sweep"), state, jobs)
    print(f"github races: {races} rounds; {duplicates} duplicates created in the same instant, "
          "all canceled before they started; no iteration ran twice")


class ResultAwareProposer(GridProposer):
    """Like the search proposer, its choice depends on the results so far: a step that saw one more job finish
    proposes another config for the same iter."""

    def propose(self, *, program, state, count: int, check=None, used=None, prices=None):
        from reliability import GRID

        from mlr_action.core.proposal import Proposal
        from mlr_action.core.state import config_key

        tried = state.tried_configs
        start = 5 * len(state.finished)
        order = [GRID[(start + k) % len(GRID)] for k in range(len(GRID))]
        return [Proposal(config=c, proposer="aware") for c in order if config_key(c) not in tried][:count]


def test_a_stale_checkout_adopts_the_other_runs_job_with_the_config_it_runs(tmp_path, monkeypatch):
    """Run B checked out before run A pushed, and saw one more job finish than A did, so it would propose
    another config for iter 3. It finds A's iter-3 job by its labels first and adopts it (with the config the
    job runs, read from the job: a regression test, the adopted row used to have an empty config), proposes
    iter 4 instead, and its push is rejected and merged. The ledger says what every job ran, and its metric."""
    from gitrepos import isolate_git, make_origin
    from loopback.hf_server import FakeHubServer
    from programs import program_text

    isolate_git(monkeypatch, tmp_path)
    origin = make_origin(tmp_path, {"train.py": LOCAL_TRAIN, "program.md": program_text(with_(GH_ENVELOPE, max_jobs=4, max_parallel=2), OPEN)})
    with FakeHubServer(token=HF_TOKEN) as hub:
        def step(name: str) -> Step:
            s = hf_step(checkout(origin, tmp_path / name / "sweep"), hub)
            s.proposer = ResultAwareProposer()
            return s

        step("first").run()  # iters 1 and 2 submitted and pushed
        a, b = step("cron"), step("dispatch")  # both check out now: iters 1 and 2 in flight
        finish_hub_jobs(hub, only={1})
        a.run()  # A: iter 1 completed, iter 3 proposed and submitted, pushed
        finish_hub_jobs(hub, only={2})
        b.run()  # B (stale): iters 1 and 2 completed; A's iter-3 job adopted; iter 4 submitted; push merged
        finish_hub_jobs(hub)
        for _ in range(6):
            if step("cron").run().stopped:
                break
            finish_hub_jobs(hub)
        state = origin_state(origin, tmp_path / "ledger.jsonl")
        jobs = hub_truth(hub, state.campaign_id)
        assert_exactly_once(state, jobs, raced=True)
        for exp in state.experiments.values():
            job = hub.jobs[exp.job_id]
            words = [*job.spec["command"], *job.spec.get("arguments", [])]
            args = dict(w[2:].split("=", 1) for w in words[words.index("mlr-job") + 1:])
            ran = {"lr": float(args["lr"]), "batch_size": int(args["batch_size"]), "scheduler": args["scheduler"]}
            assert exp.config == ran, f"iter {exp.iter}: the ledger says {exp.config}, the job ran {ran}"
            assert exp.metric == pytest.approx(0.5 + ran["batch_size"] / 1000 + ran["lr"])
