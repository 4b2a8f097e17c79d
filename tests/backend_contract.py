"""The contract every job backend keeps, as one test class run against each backend.

Like optuna's shared storage tests: subclass :class:`BackendContract` and
provide a ``harness`` fixture returning a :class:`Harness` for your backend.
The harness knows how to make the world move for that backend (the fake is
advanced by hand, the local backend really runs the script, the HF backend's
loopback server is told what to report); the tests only use the
:class:`JobBackend` protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pytest

from mlr_action.core.jobs import ITER_LABEL, JobBackend, JobSpec, JobStage, JobView, labels_for

PRINT_ARGS_AND_ENV = """\
import os, sys
print("argv=" + " ".join(sys.argv[1:]))
for name in ("MLR_CAMPAIGN", "MLR_ITER", "MLR_OUTPUT_REPO"):
    print(name + "=" + os.environ.get(name, "<unset>"))
print("eval_accuracy=0.5", flush=True)
"""
FAIL = "import sys\nprint('about to fail', flush=True)\nsys.exit(3)\n"
SLEEP = "import time\ntime.sleep(30)\n"


class Harness(Protocol):
    backend: JobBackend

    def script(self, body: str) -> str:
        """A script with this Python source, at a path the backend can run."""
        ...

    def start(self, job_id: str) -> JobView:
        """Bring a submitted job to RUNNING (bounded wait) and return what inspect says."""
        ...

    def finish(self, job_id: str) -> JobView:
        """Bring a job to a terminal stage (bounded wait) and return what inspect says."""
        ...


def make_spec(harness: Harness, body: str = PRINT_ARGS_AND_ENV, *, campaign: str = "camp",
              iteration: int = 1, extra_labels: dict[str, str] | None = None) -> JobSpec:
    return JobSpec(
        campaign=campaign,
        iter=iteration,
        script=harness.script(body),
        args=["--lr=0.01", "--epochs=3"],
        env={"MLR_CAMPAIGN": campaign, "MLR_ITER": str(iteration), "MLR_OUTPUT_REPO": f"me/sweep-{iteration}"},
        flavor="cpu-basic",
        timeout_s=60,
        labels={**labels_for(campaign, iteration), **(extra_labels or {})},
    )


class BackendContract:
    @pytest.fixture
    def harness(self) -> Harness:
        raise NotImplementedError("subclasses provide a harness fixture")

    def test_submit_returns_an_id(self, harness: Harness) -> None:
        job_id = harness.backend.submit(spec=make_spec(harness))
        assert isinstance(job_id, str) and job_id

    def test_list_jobs_finds_the_job_by_campaign_only(self, harness: Harness) -> None:
        job_id = harness.backend.submit(spec=make_spec(harness, campaign="camp"))
        assert [v.job_id for v in harness.backend.list_jobs(campaign="camp")] == [job_id]
        assert harness.backend.list_jobs(campaign="another") == []

    def test_labels_round_trip(self, harness: Harness) -> None:
        spec = make_spec(harness, iteration=7, extra_labels={"team": "vision"})
        job_id = harness.backend.submit(spec=spec)
        for view in (harness.backend.inspect(job_id=job_id), *harness.backend.list_jobs(campaign="camp")):
            assert spec.labels.items() <= view.labels.items()
            assert view.iter == 7

    def test_submit_is_idempotent_by_campaign_and_iter(self, harness: Harness) -> None:
        first = harness.backend.submit(spec=make_spec(harness, iteration=1))
        again = harness.backend.submit(spec=make_spec(harness, iteration=1))
        other = harness.backend.submit(spec=make_spec(harness, iteration=2))
        assert again == first != other
        listed = harness.backend.list_jobs(campaign="camp")
        assert sorted(v.job_id for v in listed) == sorted([first, other])
        assert sorted(v.labels[ITER_LABEL] for v in listed) == ["1", "2"]

    @pytest.mark.parametrize("job_id", ["no-such-job", "local-ffffffffffff", "mem-9999", "../../etc/passwd"])
    def test_inspect_of_an_unknown_job_is_deleted(self, harness: Harness, job_id: str) -> None:
        view = harness.backend.inspect(job_id=job_id)
        assert view.stage is JobStage.DELETED
        assert view.job_id == job_id

    def test_a_fresh_job_is_not_finished(self, harness: Harness) -> None:
        job_id = harness.backend.submit(spec=make_spec(harness, SLEEP))
        assert harness.backend.inspect(job_id=job_id).stage in (JobStage.SCHEDULING, JobStage.RUNNING)
        harness.backend.cancel(job_id=job_id)

    def test_completed_job_has_duration_and_logs(self, harness: Harness) -> None:
        job_id = harness.backend.submit(spec=make_spec(harness))
        view = harness.finish(job_id)
        assert view.stage is JobStage.COMPLETED
        assert view.duration_s is not None and view.duration_s >= 0
        assert "eval_accuracy=0.5" in harness.backend.logs(job_id=job_id)
        assert [v.stage for v in harness.backend.list_jobs(campaign="camp")] == [JobStage.COMPLETED]

    def test_job_sees_its_args_and_environment(self, harness: Harness) -> None:
        job_id = harness.backend.submit(spec=make_spec(harness, campaign="camp", iteration=4))
        harness.finish(job_id)
        logs = harness.backend.logs(job_id=job_id)
        assert "argv=--lr=0.01 --epochs=3" in logs
        assert "MLR_CAMPAIGN=camp" in logs
        assert "MLR_ITER=4" in logs
        assert "MLR_OUTPUT_REPO=me/sweep-4" in logs

    def test_failing_script_is_an_error(self, harness: Harness) -> None:
        job_id = harness.backend.submit(spec=make_spec(harness, FAIL))
        view = harness.finish(job_id)
        assert view.stage is JobStage.ERROR
        assert "about to fail" in harness.backend.logs(job_id=job_id)

    def test_cancel_stops_a_running_job(self, harness: Harness) -> None:
        job_id = harness.backend.submit(spec=make_spec(harness, SLEEP))
        harness.start(job_id)
        harness.backend.cancel(job_id=job_id)
        assert harness.finish(job_id).stage is JobStage.CANCELED

    def test_cancel_of_a_finished_job_changes_nothing(self, harness: Harness) -> None:
        job_id = harness.backend.submit(spec=make_spec(harness))
        harness.finish(job_id)
        harness.backend.cancel(job_id=job_id)
        assert harness.backend.inspect(job_id=job_id).stage is JobStage.COMPLETED

    def test_prices_are_a_mapping_or_none(self, harness: Harness) -> None:
        prices = harness.backend.prices()
        assert prices is None or all(isinstance(v, float) for v in prices.values())


def write_script(directory: Path, body: str) -> str:
    """Write ``body`` to a fresh file under ``directory``; return its absolute path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"job_{len(list(directory.glob('job_*.py')))}.py"
    path.write_text(body, encoding="utf-8")
    return str(path)
