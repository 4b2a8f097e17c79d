"""Job backends: the shared contract against the fake and the local backend, then what only each one does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, TypeVar

import pytest

import mlr_action
from backend_contract import FAIL, SLEEP, BackendContract, make_spec, write_script
from mlr_action.backends import BACKENDS, make_backend
from mlr_action.backends import _supervise as sup
from mlr_action.core.jobs import JobSpec, JobStage, JobView, PermanentError, TransientError, labels_for
from mlr_action.backends.local import LocalBackend
from mlr_action.backends.memory import InMemoryBackend

REPO_ROOT = Path(mlr_action.__file__).resolve().parent.parent
T = TypeVar("T")
WAIT_S = 30.0  # upper bound for any local job to reach a stage; tests normally take milliseconds


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def wait_for(poll: Callable[[], T], done: Callable[[T], bool], what: str) -> T:
    """Poll until ``done``; fail naming ``what`` after WAIT_S seconds."""
    deadline = time.monotonic() + WAIT_S
    while True:
        current = poll()
        if done(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"job never became {what} within {WAIT_S}s: {current}")
        time.sleep(0.02)


# -- harnesses ---------------------------------------------------------------


class MemoryHarness:
    """The fake does not run anything, so the harness plays the world: it runs the script itself."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.backend = InMemoryBackend(clock=self.clock)
        self.dir = tmp_path / "scripts"

    def script(self, body: str) -> str:
        return write_script(self.dir, body)

    def start(self, job_id: str) -> JobView:
        self.backend.advance(job_id, JobStage.RUNNING)
        return self.backend.inspect(job_id=job_id)

    def finish(self, job_id: str) -> JobView:
        if self.backend.inspect(job_id=job_id).stage.terminal:
            return self.backend.inspect(job_id=job_id)
        spec = self.backend.jobs[job_id].spec
        self.backend.advance(job_id, JobStage.RUNNING)
        done = subprocess.run([sys.executable, spec.script, *spec.args], env={**os.environ, **spec.env},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=WAIT_S)
        self.clock.now += 1.5
        stage = JobStage.COMPLETED if done.returncode == 0 else JobStage.ERROR
        message = None if done.returncode == 0 else f"exit code {done.returncode}"
        self.backend.advance(job_id, stage, logs=done.stdout, message=message)
        return self.backend.inspect(job_id=job_id)


class LocalHarness:
    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "repo"
        self.root.mkdir()
        self.backend = LocalBackend(self.root)

    def script(self, body: str) -> str:
        return write_script(self.root / "scripts", body)

    def start(self, job_id: str) -> JobView:
        return wait_for(lambda: self.backend.inspect(job_id=job_id),
                        lambda v: v.stage is JobStage.RUNNING or v.stage.terminal, "RUNNING")

    def finish(self, job_id: str) -> JobView:
        return wait_for(lambda: self.backend.inspect(job_id=job_id), lambda v: v.stage.terminal, "finished")

    def cleanup(self) -> None:
        """Kill anything a test left running, so no job outlives the test session."""
        for view in self.backend.list_jobs(campaign="camp"):
            self.backend.cancel(job_id=view.job_id)


class TestMemoryContract(BackendContract):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> MemoryHarness:
        return MemoryHarness(tmp_path)


class TestLocalContract(BackendContract):
    @pytest.fixture
    def harness(self, tmp_path: Path):
        harness = LocalHarness(tmp_path)
        yield harness
        harness.cleanup()


@pytest.fixture
def local(tmp_path: Path):
    harness = LocalHarness(tmp_path)
    yield harness
    harness.cleanup()


# -- labels (both backends, via the shared check) -------------------------------


@pytest.mark.parametrize("backend_name", ["memory", "local"])
def test_labels_that_contradict_the_spec_are_refused(tmp_path: Path, backend_name: str) -> None:
    harness = MemoryHarness(tmp_path) if backend_name == "memory" else LocalHarness(tmp_path)
    spec = make_spec(harness).model_copy(update={"labels": {"mlr-campaign": "camp", "mlr-iter": "9"}})
    with pytest.raises(PermanentError, match="mlr-iter"):
        harness.backend.submit(spec=spec)
    assert harness.backend.list_jobs(campaign="camp") == []


# -- memory only ---------------------------------------------------------------


def test_memory_duration_follows_the_clock(tmp_path: Path) -> None:
    h = MemoryHarness(tmp_path)
    job_id = h.backend.submit(spec=make_spec(h))
    assert job_id == "mem-0001"
    assert h.backend.inspect(job_id=job_id).duration_s is None
    h.backend.advance(job_id, "RUNNING")
    h.clock.now += 30
    assert h.backend.inspect(job_id=job_id).duration_s == 30
    h.backend.advance(job_id, JobStage.COMPLETED, logs="eval_accuracy=0.9\n")
    h.clock.now += 1000
    assert h.backend.inspect(job_id=job_id).duration_s == 30  # frozen once finished


def test_memory_advance_can_fix_duration_append_logs_and_set_message(tmp_path: Path) -> None:
    h = MemoryHarness(tmp_path)
    job_id = h.backend.submit(spec=make_spec(h))
    h.backend.advance(job_id, JobStage.RUNNING, logs="epoch 1\n")
    h.backend.advance(job_id, JobStage.ERROR, duration_s=3600, logs="Killed\n", message="OOMKilled")
    view = h.backend.inspect(job_id=job_id)
    assert (view.stage, view.duration_s, view.message) == (JobStage.ERROR, 3600, "OOMKilled")
    assert h.backend.logs(job_id=job_id) == "epoch 1\nKilled\n"


def test_memory_jobs_is_a_read_only_view_with_specs(tmp_path: Path) -> None:
    h = MemoryHarness(tmp_path)
    spec = make_spec(h)
    job_id = h.backend.submit(spec=spec)
    assert h.backend.jobs[job_id].spec == spec
    assert h.backend.jobs[job_id].stage is JobStage.SCHEDULING
    with pytest.raises(TypeError):
        h.backend.jobs["mem-9999"] = h.backend.jobs[job_id]  # type: ignore[index]


def test_memory_fail_next_raises_once_before_the_call(tmp_path: Path) -> None:
    h = MemoryHarness(tmp_path)
    h.backend.fail_next("submit", TransientError("503 from the fake"))
    with pytest.raises(TransientError):
        h.backend.submit(spec=make_spec(h))
    assert h.backend.jobs == {}  # nothing was charged
    job_id = h.backend.submit(spec=make_spec(h))
    h.backend.fail_next("inspect", PermanentError("bad token"))
    with pytest.raises(PermanentError):
        h.backend.inspect(job_id=job_id)
    assert h.backend.inspect(job_id=job_id).stage is JobStage.SCHEDULING


def test_memory_fail_next_after_the_call_loses_the_response(tmp_path: Path) -> None:
    h = MemoryHarness(tmp_path)
    h.backend.fail_next("submit", TransientError("read timeout"), after=True)
    with pytest.raises(TransientError):
        h.backend.submit(spec=make_spec(h))
    [view] = h.backend.list_jobs(campaign="camp")  # the job exists: a retry must adopt it
    assert h.backend.submit(spec=make_spec(h)) == view.job_id


def test_memory_fail_next_rejects_unknown_methods_and_advance_unknown_jobs(tmp_path: Path) -> None:
    backend = InMemoryBackend()
    with pytest.raises(ValueError, match="submit"):
        backend.fail_next("sumbit", TransientError("x"))
    with pytest.raises(KeyError, match="mem-0042"):
        backend.advance("mem-0042", JobStage.RUNNING)


# -- local only ----------------------------------------------------------------


def test_local_missing_script_is_permanent_and_starts_nothing(local: LocalHarness) -> None:
    spec = make_spec(local).model_copy(update={"script": str(local.root / "nope.py")})
    with pytest.raises(PermanentError, match=r"nope\.py does not exist.*program\.md"):
        local.backend.submit(spec=spec)
    assert local.backend.list_jobs(campaign="camp") == []


def test_local_relative_script_is_found_in_the_repo_root_and_runs_in_a_fresh_folder(local: LocalHarness) -> None:
    (local.root / "train.py").write_text("import os\nprint('cwd=' + os.getcwd())\nprint(sorted(os.listdir()))\n")
    (local.root / "notes.txt").write_text("not shipped: the spec has no folder, so the script goes alone\n")
    job_id = local.backend.submit(spec=make_spec(local).model_copy(update={"script": "train.py"}))
    assert local.finish(job_id).stage is JobStage.COMPLETED
    logs = local.backend.logs(job_id=job_id)
    assert f"cwd={local.root.resolve() / '.mlr' / 'jobs' / job_id / 'work'}" in logs
    assert "['train.py']" in logs


def test_local_error_message_names_the_exit_code(local: LocalHarness) -> None:
    job_id = local.backend.submit(spec=make_spec(local, FAIL))
    view = local.finish(job_id)
    assert view.stage is JobStage.ERROR and "exited with code 3" in (view.message or "")


def test_local_timeout_kills_the_job(local: LocalHarness) -> None:
    spec = make_spec(local, SLEEP).model_copy(update={"timeout_s": 1})
    job_id = local.backend.submit(spec=spec)
    view = local.finish(job_id)
    assert view.stage is JobStage.ERROR
    assert "timed out after 1s" in (view.message or "")
    assert view.duration_s is not None and 1 <= view.duration_s < 10


def test_local_creates_a_gitignore_for_its_registry(local: LocalHarness) -> None:
    assert not (local.root / ".mlr").exists()
    local.finish(local.backend.submit(spec=make_spec(local)))
    assert (local.root / ".mlr" / ".gitignore").read_text() == "*\n"


def test_local_logs_return_the_tail_as_text(local: LocalHarness) -> None:
    body = ("import sys\nsys.stdout.buffer.write(b'\\xff bad byte\\n' + b'x' * 99 + b'\\n')\n"
            "sys.stdout.buffer.write((b'y' * 99 + b'\\n') * 12000)\nprint('eval_accuracy=0.7')\n")
    job_id = local.backend.submit(spec=make_spec(local, body))
    local.finish(job_id)
    logs = local.backend.logs(job_id=job_id)
    assert logs.endswith("eval_accuracy=0.7\n")
    assert len(logs.encode()) <= 1_000_000 and logs.startswith("y")  # cut at a line boundary
    assert local.backend.logs(job_id="local-ffffffffffff") == ""


def test_local_bad_bytes_are_replaced_not_fatal(local: LocalHarness) -> None:
    job_id = local.backend.submit(spec=make_spec(local, "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe ok\\n')\n"))
    local.finish(job_id)
    assert local.backend.logs(job_id=job_id) == "\ufffd\ufffd ok\n"


PARENT = """\
import sys, time
from pathlib import Path
from mlr_action.core.jobs import JobSpec
from mlr_action.backends.local import LocalBackend
spec = JobSpec.model_validate_json(sys.argv[2])
print(LocalBackend(Path(sys.argv[1])).submit(spec=spec), flush=True)
time.sleep(60)
"""
WAIT_FOR_GO = """\
import pathlib, time
go = pathlib.Path({go!r})  # the job runs a copy of its folder: the test signals it at a path of its own
deadline = time.time() + 20
while not go.exists() and time.time() < deadline:
    time.sleep(0.01)
print("survived" if go.exists() else "no go", flush=True)
"""


def test_local_job_survives_its_submitter_being_killed(local: LocalHarness) -> None:
    go = local.root / "go"
    spec = make_spec(local, WAIT_FOR_GO.format(go=str(go)))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(local.root), spec.model_dump_json()],
                              stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
    job_id = parent.stdout.readline().strip()
    os.killpg(parent.pid, signal.SIGKILL)  # the whole process group of the step, as a runner would
    assert parent.wait() == -signal.SIGKILL
    parent.stdout.close()
    assert not local.backend.inspect(job_id=job_id).stage.terminal
    go.touch()
    assert local.finish(job_id).stage is JobStage.COMPLETED
    assert "survived" in local.backend.logs(job_id=job_id)


SUBMIT_AND_EXIT = """\
import sys
from pathlib import Path
from mlr_action.core.jobs import JobSpec
from mlr_action.backends.local import LocalBackend
print(LocalBackend(Path(sys.argv[1])).submit(spec=JobSpec.model_validate_json(sys.argv[2])))
"""


def test_local_submit_does_not_hold_the_callers_pipes(local: LocalHarness) -> None:
    """A step run with captured output (CI, tests) must end when the step ends, not when its job does."""
    spec = make_spec(local, SLEEP)
    done = subprocess.run([sys.executable, "-c", SUBMIT_AND_EXIT, str(local.root), spec.model_dump_json()],
                          capture_output=True, text=True, timeout=10, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr
    assert not local.backend.inspect(job_id=done.stdout.strip()).stage.terminal


SPAWNS_A_GRANDCHILD = """\
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
print(f"grandchild={child.pid}", flush=True)
time.sleep(30)
"""


def test_local_cancel_kills_everything_the_job_started(local: LocalHarness) -> None:
    job_id = local.backend.submit(spec=make_spec(local, SPAWNS_A_GRANDCHILD))
    wait_for(lambda: local.backend.inspect(job_id=job_id),
             lambda _: "grandchild=" in local.backend.logs(job_id=job_id), "printing its grandchild")
    grandchild = int(local.backend.logs(job_id=job_id).split("grandchild=")[1].split()[0])
    status = json.loads((local.root / ".mlr" / "jobs" / job_id / "status.json").read_text())
    local.backend.cancel(job_id=job_id)
    assert local.backend.inspect(job_id=job_id).stage is JobStage.CANCELED
    for pid in (status["pid"], grandchild):
        wait_for(lambda: pid, lambda p: not sup.process_alive(p), f"pid {pid} dead")  # noqa: B023


def test_local_job_whose_supervisor_died_is_an_error_not_running_forever(local: LocalHarness) -> None:
    job_id = local.backend.submit(spec=make_spec(local, SLEEP))
    assert local.start(job_id).stage is JobStage.RUNNING
    status = json.loads((local.root / ".mlr" / "jobs" / job_id / "status.json").read_text())
    os.kill(status["supervisor_pid"], signal.SIGKILL)
    view = local.finish(job_id)
    assert view.stage is JobStage.ERROR
    assert "supervisor" in (view.message or "") and "died" in (view.message or "")
    wait_for(lambda: status, lambda s: not sup.process_alive(s["pid"], s["pid_token"]), "killed")
    assert local.backend.inspect(job_id=job_id) == view  # recorded once, stable after


def _crashed_entry(local: LocalHarness, job_id: str, *, iteration: int, submitted_ago_s: float,
                   launch: dict | None = None) -> str:
    """A registry entry as a submit that crashed before launching leaves it: spec.json, nothing else."""
    jobdir = local.root / ".mlr" / "jobs" / job_id
    jobdir.mkdir(parents=True)
    record = {"job_id": job_id, "submitted_at": time.time() - submitted_ago_s, "labels": labels_for("camp", iteration)}
    (jobdir / "spec.json").write_text(json.dumps(record))
    if launch is not None:
        (jobdir / "launch.json").write_text(json.dumps(launch))
    return job_id


def test_local_entry_that_never_started_is_scheduling_then_an_error(local: LocalHarness) -> None:
    fresh = _crashed_entry(local, "local-00000000000a", iteration=1, submitted_ago_s=1)
    old = _crashed_entry(local, "local-00000000000b", iteration=2, submitted_ago_s=3600)
    assert local.backend.inspect(job_id=fresh).stage is JobStage.SCHEDULING  # its supervisor may be starting
    view = local.backend.inspect(job_id=old)
    assert view.stage is JobStage.ERROR and "never started" in (view.message or "")
    assert [v.stage for v in local.backend.list_jobs(campaign="camp")] == [JobStage.SCHEDULING, JobStage.ERROR]
    assert local.backend.submit(spec=make_spec(local, iteration=2)) == old  # adopted, not run twice


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="pid recycling is detected via /proc (Linux)")
def test_local_recycled_supervisor_pid_is_not_taken_for_alive(local: LocalHarness) -> None:
    launch = {"pid": os.getpid(), "token": "not-our-start-time"}
    job_id = _crashed_entry(local, "local-00000000000c", iteration=1, submitted_ago_s=1, launch=launch)
    view = local.backend.inspect(job_id=job_id)
    assert view.stage is JobStage.ERROR and "exited before starting" in (view.message or "")


# -- choosing a backend ----------------------------------------------------------


def test_make_backend_by_name(tmp_path: Path) -> None:
    assert isinstance(make_backend("local", root=tmp_path), LocalBackend)
    assert isinstance(make_backend("memory", root=tmp_path), InMemoryBackend)
    with pytest.raises(ValueError, match="local, hf, memory"):
        make_backend("sagemaker", root=tmp_path)
    assert set(BACKENDS) == {"local", "hf", "memory"}


def test_backends_import_no_sdk() -> None:
    code = ("import sys, mlr_action.backends, mlr_action.backends.local, mlr_action.backends.memory\n"
            "bad = [m for m in ('huggingface_hub', 'github', 'anthropic', 'optuna') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def test_spec_json_round_trips_the_spec(local: LocalHarness) -> None:
    spec = make_spec(local)
    job_id = local.backend.submit(spec=spec)
    record = json.loads((local.root / ".mlr" / "jobs" / job_id / "spec.json").read_text())
    assert JobSpec.model_validate(record["spec"]) == spec
    assert record["labels"] == {**spec.labels, "mlr-timeout": str(spec.timeout_s)}
