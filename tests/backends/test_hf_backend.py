"""The hf backend over a loopback HF Jobs API, through the real HfApi: the shared contract, then what only HF does."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub")

from backend_contract import FAIL, PRINT_ARGS_AND_ENV, SLEEP, BackendContract, make_spec, write_script  # noqa: E402
from loopback.hf_server import FakeHubServer  # noqa: E402
from mlr_action.backends import _hf_http  # noqa: E402
from mlr_action.core.jobs import JobSpec, JobStage, JobView, PermanentError, TransientError, labels_for  # noqa: E402
from mlr_action.backends._hf_catalog import prices_per_hour  # noqa: E402
from mlr_action.backends._hf_ship import ship  # noqa: E402
from mlr_action.backends.hf import HfBackend  # noqa: E402

TOKEN = "hf_" + "FakeLoopbackToken0123456789abcdef"  # built, so no token-shaped literal is committed


class Sleeps:
    """A fake sleep: records how long the backend would have waited."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make_backend(hub, *, namespace: str | None = None, sleep=None, timeout_s: float = 5.0, **options) -> HfBackend:
    policy = _hf_http.Policy(timeout_s=timeout_s, backoff_s=0.0, sleep=sleep or Sleeps(), **options)
    return HfBackend(endpoint=hub.url, token=TOKEN, namespace=namespace, policy=policy)


@pytest.fixture
def hub():
    with FakeHubServer(token=TOKEN) as hub:
        yield hub


class HfHarness:
    """The loopback server plays HF: it runs a job's command for real when the test asks it to."""

    def __init__(self, hub, tmp_path: Path) -> None:
        self.hub = hub
        self.backend = make_backend(hub)
        self.dir = tmp_path / "scripts"

    def script(self, body: str) -> str:
        return write_script(self.dir, body)

    def start(self, job_id: str) -> JobView:
        self.hub.advance(job_id, "RUNNING")
        return self.backend.inspect(job_id=job_id)

    def finish(self, job_id: str) -> JobView:
        self.hub.run(job_id, running_secs=1.5)
        return self.backend.inspect(job_id=job_id)


class TestHfContract(BackendContract):
    @pytest.fixture
    def harness(self, hub, tmp_path: Path) -> HfHarness:
        return HfHarness(hub, tmp_path)


# -- what is sent ----------------------------------------------------------------


def test_submit_mounts_the_shipped_folder_read_only_with_the_token_only_as_secret(hub, tmp_path: Path) -> None:
    backend = make_backend(hub, namespace="my-org")
    spec = make_spec(HfHarness(hub, tmp_path), iteration=3)
    job_id = backend.submit(spec=spec)
    job = hub.jobs[job_id]
    assert job.namespace == "my-org"
    assert job.spec["dockerImage"].startswith("ghcr.io/astral-sh/uv:")
    assert job.spec["command"][:2] == ["bash", "-c"] and "uv run" in job.spec["command"][2]
    assert job.spec["command"][-2:] == ["--lr=0.01", "--epochs=3"]
    [volume] = job.spec["volumes"]
    assert volume["type"] == "model" and volume["source"] == "my-org/mlr-code-camp" and volume["readOnly"] is True
    assert volume["mountPath"] == "/mlr/code" and len(volume["revision"]) == 40
    repo = hub.git.get("model", "my-org/mlr-code-camp")
    shipped = repo.files_at(volume["revision"])[f"{volume['path']}/{Path(spec.script).name}"]
    assert repo.private and shipped == PRINT_ARGS_AND_ENV.encode()
    assert not any("B64" in name for name in job.environment)  # no code travels in the environment
    assert job.environment["MLR_ITER"] == "3" and job.environment["MLR_OUTPUT_REPO"] == "me/sweep-3"
    assert job.secrets == {"HF_TOKEN": TOKEN}
    assert TOKEN not in str(job.environment) and TOKEN not in str(job.spec["command"])
    assert job.spec["flavor"] == "cpu-basic" and job.spec["timeoutSeconds"] == 60
    assert job.labels["mlr-campaign"] == "camp" and job.labels["mlr-iter"] == "3"


def test_namespace_defaults_to_the_tokens_user(hub, tmp_path: Path) -> None:
    backend = make_backend(hub)
    job_id = backend.submit(spec=make_spec(HfHarness(hub, tmp_path)))
    assert hub.jobs[job_id].namespace == "me"
    backend.list_jobs(campaign="camp")
    assert hub.requests.count(("GET", "/api/whoami-v2")) == 1  # asked once, it is rate-limited


def test_args_never_pass_through_a_shell(hub, tmp_path: Path) -> None:
    harness = HfHarness(hub, tmp_path)
    spec = make_spec(harness).model_copy(update={"args": ["--name=$(touch pwned); `id`", "--x=a b"]})
    job_id = harness.backend.submit(spec=spec)
    harness.finish(job_id)
    assert "argv=--name=$(touch pwned); `id` --x=a b" in harness.backend.logs(job_id=job_id)


def test_a_script_that_cannot_be_shipped_fails_before_any_request(hub, tmp_path: Path) -> None:
    spec = make_spec(HfHarness(hub, tmp_path)).model_copy(update={"script": str(tmp_path / "missing.py")})
    with pytest.raises(PermanentError, match="does not exist"):
        make_backend(hub).submit(spec=spec)
    assert hub.requests == [] and hub.jobs == {}


def test_ship_names_the_script_safely(tmp_path: Path) -> None:
    path = tmp_path / "my train$(x)"
    path.write_text("print(1)\n")
    spec = JobSpec(campaign="c", iter=1, script=str(path), args=[], env={}, flavor="cpu-basic", timeout_s=60,
                   labels=labels_for("c", 1))
    shipment = ship(spec)
    assert [f.path for f in shipment.folder.files] == ["my_train__x_.py"]
    assert 'my_train__x_.py "$@"' in shipment.command[2] and "$(x)" not in shipment.command[2]


# -- inspect, logs -------------------------------------------------------------


def test_inspect_reports_running_seconds_and_the_status_message(hub, tmp_path: Path) -> None:
    harness = HfHarness(hub, tmp_path)
    job_id = harness.backend.submit(spec=make_spec(harness))
    hub.advance(job_id, "ERROR", message="OOMKilled", running_secs=321, logs="CUDA out of memory\n")
    view = harness.backend.inspect(job_id=job_id)
    assert (view.stage, view.duration_s, view.message) == (JobStage.ERROR, 321.0, "OOMKilled")
    assert view.url and view.url.endswith(f"/jobs/me/{job_id}")
    assert harness.backend.logs(job_id=job_id) == "CUDA out of memory\n"


def test_logs_skip_the_job_started_banner(hub, tmp_path: Path) -> None:
    harness = HfHarness(hub, tmp_path)
    job_id = harness.backend.submit(spec=make_spec(harness))
    harness.finish(job_id)
    assert "===== Job started" not in harness.backend.logs(job_id=job_id)


def test_list_follows_pagination(hub, tmp_path: Path) -> None:
    hub.page_size = 2
    harness = HfHarness(hub, tmp_path)
    ids = [harness.backend.submit(spec=make_spec(harness, iteration=i)) for i in range(1, 6)]
    assert [v.job_id for v in harness.backend.list_jobs(campaign="camp")] == ids


def test_a_deleted_job_is_deleted_not_an_error(hub, tmp_path: Path) -> None:
    harness = HfHarness(hub, tmp_path)
    job_id = harness.backend.submit(spec=make_spec(harness))
    del hub.jobs[job_id]
    assert harness.backend.inspect(job_id=job_id).stage is JobStage.DELETED
    assert harness.backend.logs(job_id=job_id) == ""
    harness.backend.cancel(job_id=job_id)  # nothing to cancel, no error


# -- prices ------------------------------------------------------------------


def test_prices_are_per_hour_from_the_catalog(hub) -> None:
    backend = make_backend(hub)
    prices = backend.prices()
    assert prices["a10g-large"] == pytest.approx(1.5) and prices["t4-small"] == pytest.approx(0.4, abs=1e-3)
    assert backend.prices_note is None


def test_prices_fall_back_and_say_so(hub) -> None:
    hub.hardware = None  # the catalog answers 404
    backend = make_backend(hub)
    assert backend.prices() is None
    assert "built-in price table" in backend.prices_note and "404" in backend.prices_note
    hub.hardware = []
    assert backend.prices() is None and "listed no prices" in backend.prices_note


def test_an_unreachable_catalog_falls_back_too(hub) -> None:
    hub.fail("GET", "^/api/jobs/hardware$", 503, times=None)
    backend = make_backend(hub)
    assert backend.prices() is None and "503" in backend.prices_note


def test_prices_per_hour_ignores_unknown_units() -> None:
    class Item:
        def __init__(self, name, cost, unit):
            self.name, self.unit_cost_usd, self.unit_label = name, cost, unit

    got = prices_per_hour([Item("a", 0.01, "minute"), Item("b", 2.0, "hour"), Item("c", 1.0, "fortnight")])
    assert got == {"a": 0.6, "b": 2.0}


# -- errors ------------------------------------------------------------------


@pytest.mark.parametrize("status, kind, words", [
    (401, PermanentError, "Start and manage Jobs"),
    (403, PermanentError, "lacks permission"),
    (402, PermanentError, "settings/billing"),
    (400, PermanentError, "fix program.md"),
])
def test_http_errors_on_submit_say_what_to_do(hub, tmp_path: Path, status, kind, words) -> None:
    hub.fail("POST", r"^/api/jobs/me$", status, times=None)
    with pytest.raises(kind, match=words) as info:
        make_backend(hub, namespace="me").submit(spec=make_spec(HfHarness(hub, tmp_path)))
    assert TOKEN not in str(info.value)


def test_a_bad_token_is_permanent_and_names_the_scope(hub, tmp_path: Path) -> None:
    backend = HfBackend(endpoint=hub.url, token="hf_wrongwrongwrongwrongwrong", policy=_hf_http.Policy(backoff_s=0))
    with pytest.raises(PermanentError, match="401.*Start and manage Jobs"):
        backend.list_jobs(campaign="camp")


def test_an_unknown_namespace_is_permanent(hub) -> None:
    with pytest.raises(PermanentError, match="no namespace nobody.*namespace:"):
        make_backend(hub, namespace="nobody").list_jobs(campaign="camp")


def test_no_token_at_all_is_permanent_before_any_request(hub, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    backend = HfBackend(endpoint=hub.url, policy=_hf_http.Policy(backoff_s=0), token_lookup=lambda: None)
    with pytest.raises(PermanentError, match="no Hugging Face token: set HF_TOKEN"):
        backend.submit(spec=make_spec(HfHarness(hub, tmp_path)))
    with pytest.raises(PermanentError, match="HF_TOKEN"):
        backend.list_jobs(campaign="camp")
    assert hub.jobs == {} and hub.requests == []


def test_rate_limit_is_honoured_within_a_bound(hub) -> None:
    sleeps = Sleeps()
    hub.fail("GET", r"^/api/jobs/me$", 429, **{"Retry-After": "3"})
    assert make_backend(hub, namespace="me", sleep=sleeps).list_jobs(campaign="camp") == []
    assert sleeps.waits == [3.0]


def test_a_long_rate_limit_is_not_waited_for(hub) -> None:
    sleeps = Sleeps()
    hub.fail("GET", r"^/api/jobs/me$", 429, **{"Retry-After": "3600"})
    with pytest.raises(TransientError, match="3600s"):
        make_backend(hub, namespace="me", sleep=sleeps).list_jobs(campaign="camp")
    assert sleeps.waits == []


@pytest.mark.parametrize("kind", ["500", "503", "drop"])
def test_reads_are_retried_a_few_times_then_transient(hub, kind) -> None:
    hub.fail("GET", r"^/api/jobs/me$", kind, times=2)
    assert make_backend(hub, namespace="me").list_jobs(campaign="camp") == []
    hub.fail("GET", r"^/api/jobs/me$", kind, times=None)
    with pytest.raises(TransientError, match="next tick"):
        make_backend(hub, namespace="me").list_jobs(campaign="camp")


@pytest.mark.parametrize("kind", ["lost", "503", "hang"])
def test_a_submit_with_an_unknown_outcome_is_transient_and_never_sent_twice(hub, tmp_path: Path, kind) -> None:
    harness = HfHarness(hub, tmp_path)
    backend = make_backend(hub, namespace="me", timeout_s=0.5)
    hub.fail("POST", r"^/api/jobs/me$", kind, seconds=2.0)
    with pytest.raises(TransientError, match="next"):
        backend.submit(spec=make_spec(harness))
    assert hub.requests.count(("POST", "/api/jobs/me")) == 1
    created = len(hub.jobs)
    assert created == (0 if kind == "503" else 1)
    # the next submit of the same iter finds the job by its labels instead of creating another
    again = backend.submit(spec=make_spec(harness))
    assert len(hub.jobs) == 1 and (created == 0 or again == next(iter(hub.jobs)))


def test_a_rate_limited_submit_is_sent_again(hub, tmp_path: Path) -> None:
    hub.fail("POST", r"^/api/jobs/me$", 429, **{"Retry-After": "1"})
    sleeps = Sleeps()
    job_id = make_backend(hub, namespace="me", sleep=sleeps).submit(spec=make_spec(HfHarness(hub, tmp_path)))
    assert list(hub.jobs) == [job_id] and sleeps.waits == [1.0]


def test_connection_refused_is_transient(tmp_path: Path) -> None:
    with FakeHubServer(token=TOKEN) as hub:
        url = hub.url
    backend = HfBackend(endpoint=url, token=TOKEN, namespace="me", policy=_hf_http.Policy(backoff_s=0, timeout_s=1))
    start = time.monotonic()
    with pytest.raises(TransientError, match="connect"):
        backend.list_jobs(campaign="camp")
    assert time.monotonic() - start < 5


# -- Hub repos -------------------------------------------------------------------


def test_delete_repo_deletes_models_or_datasets_and_reports_missing_ones(hub) -> None:
    hub.repos |= {("model", "me/sweep-1"), ("dataset", "me/sweep-2")}
    backend = make_backend(hub, namespace="me")
    assert backend.delete_repo(repo_id="me/sweep-1") is True
    assert backend.delete_repo(repo_id="me/sweep-2") is True
    assert backend.delete_repo(repo_id="me/sweep-3") is False
    assert hub.repos == set()


def test_fail_script_is_reported_with_exit_code(hub, tmp_path: Path) -> None:
    harness = HfHarness(hub, tmp_path)
    job_id = harness.backend.submit(spec=make_spec(harness, FAIL))
    view = harness.finish(job_id)
    assert view.stage is JobStage.ERROR and "exit code: 3" in view.message


def test_sleep_script_is_cancelled(hub, tmp_path: Path) -> None:
    harness = HfHarness(hub, tmp_path)
    job_id = harness.backend.submit(spec=make_spec(harness, SLEEP))
    harness.backend.cancel(job_id=job_id)
    assert harness.backend.inspect(job_id=job_id).stage is JobStage.CANCELED


def test_make_backend_builds_the_hf_backend_with_the_campaigns_namespace(hub, tmp_path: Path, monkeypatch) -> None:
    from mlr_action.backends import make_backend as make

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    backend = make("hf", root=tmp_path, namespace="my-org")
    assert isinstance(backend, HfBackend) and backend.namespace() == "my-org"
    assert backend.list_jobs(campaign="camp") == []
    assert hub.requests == [("GET", "/api/jobs/my-org")]  # HF_ENDPOINT honoured, no whoami needed


@pytest.mark.parametrize("header, seconds", [
    ("3", 3.0), ("0", 0.0), (" 2.5 ", 2.5), ("-4", 0.0), (None, None), ("", None), ("soon", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past: no wait
])
def test_retry_after_header(header, seconds) -> None:
    assert _hf_http.retry_after_s(header) == seconds
