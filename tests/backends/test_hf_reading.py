"""Reading the real service right, over the loopback HF Jobs API: whole logs only, timeouts, starting time,
jobs stuck in SCHEDULING, the hardware catalog, and one request for a tick with nothing to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub")

from huggingface_hub import HfApi, get_session  # noqa: E402

from backend_contract import PRINT_ARGS_AND_ENV, write_script  # noqa: E402
from mlr_action.backends import _hf_http  # noqa: E402
from mlr_action.core.jobs import JobSpec, LogIncomplete, TransientError, labels_for  # noqa: E402
from mlr_action.backends.hf import HfBackend  # noqa: E402
from mlr_action.forges.files import FileForge  # noqa: E402
from mlr_action.core.ledger import read_ledger  # noqa: E402
from mlr_action.proposers.search import SearchProposer  # noqa: E402
from mlr_action.core.state import fold  # noqa: E402
from mlr_action.shell.step import Step  # noqa: E402
from mlr_action.shell.step_result import BACKEND_CACHE_PATH  # noqa: E402
from programs import CAMPAIGN, ENVELOPE, program_text, with_  # noqa: E402
from test_hf_campaign import TOKEN, clock, hub  # noqa: E402,F401  (the loopback hub on a fake clock: fixtures)

# A training script as people write them: one validation line per epoch; the result is the last epoch's.
TRAIN = '''\
# /// script
# dependencies = []
# ///
import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=3e-4)
parser.add_argument("--batch_size", type=int, default=32)
parser.add_argument("--scheduler", default="cosine")
parser.add_argument("--epochs", type=int, default=5)
args = parser.parse_args()

for epoch in range(1, args.epochs + 1):
    train_loss = 2.0 / epoch
    val_loss = 1.0 / epoch + abs(args.lr - 3e-4)
    print(f"epoch {epoch}/{args.epochs} - train_loss={train_loss:.4f} - val_loss={val_loss:.4f}")
print("saving checkpoint to ./out ... done")
'''
EPOCHS = [f"epoch {e}/5 - train_loss={2.0 / e:.4f}" for e in range(1, 6)]
LOSS = with_(CAMPAIGN, metric="val_loss", direction="minimize", target=None, patience=None, fixed={"epochs": 5})


def backend(hub, clock=None, **policy) -> HfBackend:
    options = {"backoff_s": 0.0, "timeout_s": 0.5, "sleep": lambda s: None, **policy}
    extra = {"clock": clock} if clock else {}
    return HfBackend(endpoint=hub.url, token=TOKEN, policy=_hf_http.Policy(**options), **extra)


def spec(tmp_path: Path) -> JobSpec:
    return JobSpec(campaign="camp", iter=1, script=write_script(tmp_path, PRINT_ARGS_AND_ENV), args=[], env={},
                   flavor="a10g-large", timeout_s=3600, labels=labels_for("camp", 1))


def finished_job(hub, tmp_path: Path, lines: list[str]) -> tuple[HfBackend, str]:
    hf = backend(hub)
    job_id = hf.submit(spec=spec(tmp_path))
    hub.advance(job_id, "COMPLETED", logs="\n".join(lines), running_secs=60)
    return hf, job_id


# -- a log is whole, or it is not taken ----------------------------------------------


def test_a_whole_replay_is_read_whole(hub, tmp_path: Path) -> None:
    lines = [*EPOCHS, "Époque 5 terminée ✓", "val_loss=0.2"]
    hf, job_id = finished_job(hub, tmp_path, lines)
    assert hf.logs(job_id=job_id) == "\n".join(lines) + "\n"


@pytest.mark.parametrize("kind, how", [("pause", "stalled"), ("drop", "broke off")])
def test_a_replay_that_stops_halfway_is_never_taken_for_the_whole_log(hub, tmp_path: Path, kind, how) -> None:
    hf, job_id = finished_job(hub, tmp_path, [*EPOCHS, "val_loss=0.2"])
    hub.stall_logs(after=3, kind=kind, seconds=3)  # past the 0.5 s read timeout of this backend's policy
    with pytest.raises(LogIncomplete) as caught:
        hf.logs(job_id=job_id)
    assert how in str(caught.value) and "after 3 lines" in str(caught.value)
    assert caught.value.text == "\n".join(EPOCHS[:3]) + "\n"


def test_the_sdks_own_replay_returns_a_cut_off_log_as_if_whole(hub, tmp_path: Path) -> None:
    """The attack, as huggingface_hub's fetch_job_logs(follow=False) meets it: why the backend reads the stream itself."""
    hf, job_id = finished_job(hub, tmp_path, [*EPOCHS, "val_loss=0.2"])
    hub.stall_logs(after=3, seconds=3)
    with _hf_http.applied(hf.policy):
        lines = list(HfApi(endpoint=hub.url, token=TOKEN).fetch_job_logs(job_id=job_id, namespace="me", follow=False))
    assert lines == EPOCHS[:3]  # no error, no sign: the last epochs and the result are gone


# -- timeouts and the SDK's hooks ---------------------------------------------------------


def test_the_client_sets_no_timeout_of_its_own_so_the_policys_is_the_one(hub) -> None:
    backend(hub)  # installs the client factory
    request = get_session().build_request("GET", f"{hub.url}/api/whoami-v2")
    assert set(request.extensions["timeout"].values()) == {None}  # not httpx's 5 s default
    caps = _hf_http._timeouts(request.extensions["timeout"], _hf_http.Policy(timeout_s=30))
    assert caps == {"connect": 10.0, "read": 30.0, "write": 30.0, "pool": 30.0}
    assert _hf_http._timeouts({"read": 5}, _hf_http.Policy(timeout_s=30))["read"] == 5  # the SDK's own, when shorter


def test_a_slow_answer_within_the_policys_timeout_is_waited_for(hub) -> None:
    hub.fail("GET", "^/api/whoami-v2$", "hang", seconds=1.0)
    assert backend(hub, timeout_s=3).namespace() == "me"
    hub.fail("GET", "^/api/whoami-v2$", "hang", seconds=1.0, times=None)
    with pytest.raises(TransientError, match="whoami.*ReadTimeout"):
        backend(hub, timeout_s=0.3, retries=0).namespace()


def test_the_sdks_request_hook_stays_in_place(hub) -> None:
    from huggingface_hub.utils._http import default_client_factory

    backend(hub).list_jobs(campaign="camp")
    assert hub.request_headers and all("X-Amzn-Trace-Id" in h for h in hub.request_headers)
    sdk = default_client_factory()
    assert get_session().event_hooks == sdk.event_hooks  # every hook the SDK's own client has, and no other
    sdk.close()


# -- what HF bills: starting and running -------------------------------------------------


def test_a_finished_job_is_charged_from_its_creation_to_its_end(hub, tmp_path: Path, clock) -> None:
    hf = backend(hub)
    job_id = hf.submit(spec=spec(tmp_path))
    clock.advance(240)  # four minutes in SCHEDULING: HF bills the part spent starting, and does not say which part
    assert hf.inspect(job_id=job_id).waiting_s == 240
    hub.advance(job_id, "RUNNING")
    clock.advance(600)
    hub.advance(job_id, "COMPLETED")
    view = hf.inspect(job_id=job_id)
    assert view.duration_s == 840 and view.waiting_s is None and view.finished_at is not None


# -- the hardware catalog: prices and memory ------------------------------------------------


def test_the_catalog_gives_ram_and_gpu_memory_per_accelerator(hub) -> None:
    hf = backend(hub)
    assert hf.flavor_memory() is None  # nothing read yet
    hf.prices()
    memory = hf.flavor_memory()
    assert (memory["a10g-largex2"].gpu_gb, memory["a10g-largex2"].gpus) == (24.0, 2)  # 48 GB over two GPUs
    assert (memory["cpu-basic"].ram_gb, memory["cpu-basic"].gpu_gb) == (16.0, 0.0)
    hub.hardware = [("odd", 0.01, "a lot", ("X", 1, "24 GB"))]
    fresh = backend(hub)
    fresh.prices()
    assert fresh.flavor_memory() == {}  # unreadable RAM: the built-in table stands in for that flavor


# -- whole campaigns ---------------------------------------------------------------------


def make_repo(root: Path, campaign: dict = LOSS, envelope: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(TRAIN)
    (root / "program.md").write_text(program_text(envelope or with_(ENVELOPE, max_jobs=2), campaign))
    return root


def step_for(root: Path, hub, clock, hf=None) -> Step:
    return Step(root=root, backend=hf or backend(hub, clock, timeout_s=0.5), proposer=SearchProposer(),
                forge=FileForge(root), clock=clock)


def rows(root: Path):
    return fold(read_ledger(root / "runs" / "ledger.jsonl"))


def test_a_result_is_read_from_the_whole_log_when_the_replay_paused_halfway(tmp_path: Path, hub, clock) -> None:
    root = make_repo(tmp_path / "repo")
    step = step_for(root, hub, clock)
    assert step.run().submitted == 1
    hub.run_all(running_secs=300)
    hub.stall_logs(after=4, seconds=3)  # banner, epochs 1-3, then a pause longer than the read timeout
    clock.advance(600)
    paused = step.run()
    exp = rows(root).experiments[1]
    assert exp.status in ("submitted", "running") and exp.metric is None  # not the epoch-3 value
    assert any("not whole" in e and "read again" in e for e in paused.events), paused.events
    clock.advance(600)
    step.run()
    exp = rows(root).experiments[1]
    epoch5 = round(1 / 5 + abs(exp.config["lr"] - 3e-4), 4)
    assert exp.status == "completed" and exp.metric == pytest.approx(epoch5)  # not epoch 3's


def test_a_log_that_never_replays_whole_becomes_an_error_that_says_so(tmp_path: Path, hub, clock) -> None:
    root = make_repo(tmp_path / "repo", envelope=with_(ENVELOPE, max_jobs=1))
    step = step_for(root, hub, clock)
    step.run()
    hub.run_all(running_secs=300)
    hub.stall_logs(after=4, seconds=3, times=None)  # every replay pauses after epoch 3
    for _ in range(3):
        clock.advance(900)
        step.run()
        assert rows(root).experiments[1].metric is None
    clock.advance(3600)  # over an hour after the job ended
    step.run()
    exp = rows(root).experiments[1]
    assert exp.status == "error" and exp.metric is None and "could not be read whole" in exp.error
    assert exp.duration_s is not None and exp.cost_usd is not None  # charged all the same


def test_a_job_stuck_in_scheduling_is_canceled_and_recorded_with_its_charge(tmp_path: Path, hub, clock) -> None:
    root = make_repo(tmp_path / "repo", campaign=with_(LOSS, scheduling_timeout="20m"))
    step = step_for(root, hub, clock)
    step.run()
    job_id = next(iter(hub.jobs))
    clock.advance(15 * 60)
    step.run()
    assert hub.jobs[job_id].stage == "SCHEDULING" and ("POST", f"/api/jobs/me/{job_id}/cancel") not in hub.requests
    clock.advance(10 * 60)
    result = step.run()
    assert hub.jobs[job_id].stage == "CANCELED"
    exp = rows(root).experiments[1]
    assert exp.status == "error" and "SCHEDULING" in exp.error and "scheduling_timeout 20m" in exp.error
    assert exp.duration_s == 25 * 60 and exp.cost_usd == pytest.approx(1.5 * 25 / 60)  # billed while starting
    assert any("canceled by the bot" in e for e in result.events)
    assert result.submitted == 1  # the slot is free again: the next experiment went out in the same tick


def test_every_job_in_flight_reserves_what_it_may_spend_starting(tmp_path: Path, hub, clock) -> None:
    root = make_repo(tmp_path / "repo", campaign=with_(LOSS, scheduling_timeout="45m"))
    result = step_for(root, hub, clock).run()
    assert result.used.walltime_s == 3600 + 45 * 60
    assert result.used.cost_usd == pytest.approx(1.5 * 1.75)


# -- a tick with nothing to do makes one request ----------------------------------------------


def test_a_tick_with_nothing_to_do_makes_one_request(tmp_path: Path, hub, clock) -> None:
    root = make_repo(tmp_path / "repo")
    step_for(root, hub, clock).run()  # whoami, the catalog, the listing, the submit
    hub.advance(next(iter(hub.jobs)), "RUNNING")
    assert (root / BACKEND_CACHE_PATH).is_file()
    for _ in range(3):  # a fresh process each tick, as in Actions: only runs/ carries over
        clock.advance(900)
        before = len(hub.requests)
        result = step_for(root, hub, clock).run()
        assert result.exit_code == 0 and result.submitted == 0
        assert [path for _, path in hub.requests[before:]] == ["/api/jobs/me"]  # the campaign's jobs, by label
    clock.advance(1800)  # over an hour since the catalog was read: read again, once
    before = len(hub.requests)
    step_for(root, hub, clock).run()
    assert sorted(path for _, path in hub.requests[before:]) == ["/api/jobs/hardware", "/api/jobs/me"]


@pytest.mark.parametrize("edit", [
    pytest.param(lambda data: data["hardware"][5].update(usd_per_hour=0.01), id="a price lowered"),
    pytest.param(lambda data: data.update(namespace="someone-else"), id="the namespace changed"),
    pytest.param(lambda data: data.update(mac="0" * 64), id="the seal replaced"),
])
def test_an_edited_cache_is_not_believed(tmp_path: Path, hub, clock, edit) -> None:
    root = make_repo(tmp_path / "repo")
    step_for(root, hub, clock).run()
    hub.advance(next(iter(hub.jobs)), "RUNNING")
    path = root / BACKEND_CACHE_PATH
    data = json.loads(path.read_text())
    assert data["hardware"][5]["name"] == "a10g-large" and TOKEN not in path.read_text()
    edit(data)
    path.write_text(json.dumps(data))
    clock.advance(900)
    before = len(hub.requests)
    result = step_for(root, hub, clock).run()
    assert {"/api/whoami-v2", "/api/jobs/hardware"} <= {p for _, p in hub.requests[before:]}  # looked up again
    assert result.used.cost_usd == pytest.approx(1.5 * 70 / 60)  # the live $1.50/h for the hour and the 10m to start


def test_a_cache_sealed_with_another_token_is_not_believed(tmp_path: Path, hub, clock) -> None:
    root = make_repo(tmp_path / "repo")
    step_for(root, hub, clock).run()
    other = HfBackend(endpoint=hub.url, token=TOKEN + "x", policy=_hf_http.Policy(sleep=lambda s: None))
    other.use_cache(json.loads((root / BACKEND_CACHE_PATH).read_text()))
    assert other.cache() is None and other._hardware is None and other._namespace is None


# -- what a job's log is spared ------------------------------------------------------------

NOISY = '''\
import os
from tqdm import tqdm

for name in ("PYTHONUNBUFFERED", "HF_HUB_DISABLE_PROGRESS_BARS"):
    print(f"{name}={os.environ.get(name)}")
total = 0
for step in tqdm(range(20000), desc="train"):
    total += step
print("eval_accuracy=0.5")
'''


@pytest.mark.parametrize("kind", ["hf", "local"])
def test_a_job_runs_unbuffered_and_without_progress_bars(hub, tmp_path: Path, kind) -> None:
    from mlr_action.backends.local import LocalBackend

    job = JobSpec(campaign="camp", iter=1, script=write_script(tmp_path, NOISY), args=[], env={}, flavor="cpu-basic",
                  timeout_s=60, labels=labels_for("camp", 1))
    if kind == "hf":
        hf = backend(hub, timeout_s=5)
        job_id = hf.submit(spec=job)
        hub.run(job_id)
        log = hf.logs(job_id=job_id)
    else:
        local = LocalBackend(tmp_path)
        job_id = local.submit(spec=job)
        for _ in range(400):
            if local.inspect(job_id=job_id).stage.terminal:
                break
            __import__("time").sleep(0.05)
        log = local.logs(job_id=job_id)
    assert "PYTHONUNBUFFERED=1" in log and "HF_HUB_DISABLE_PROGRESS_BARS=1" in log
    assert "it/s" not in log and "train:" not in log and log.rstrip().endswith("eval_accuracy=0.5")


def test_a_step_parses_program_md_once(tmp_path: Path, hub, monkeypatch) -> None:
    from unittest import mock

    import mlr_action.core.program as program_module
    from mlr_action.commands.cli import main

    root = make_repo(tmp_path / "repo")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with mock.patch.object(program_module, "parse_program", wraps=program_module.parse_program) as parse:
        assert main(["step", "--repo", str(root), "--backend", "hf"]) == 0
    assert parse.call_count == 1 and len(hub.jobs) == 1


def test_a_tick_in_a_fresh_process_makes_one_request_too(tmp_path: Path, hub, clock) -> None:
    """As on a fresh runner: no huggingface_hub cache in HF_HOME, a new process, only runs/ carried over."""
    import os
    import subprocess
    import sys

    root = make_repo(tmp_path / "repo")
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf-home"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("HF_HUB_DISABLE_TELEMETRY", None)

    def tick() -> list[str]:
        before = len(hub.requests)
        done = subprocess.run([sys.executable, "-m", "mlr_action", "step", "--repo", str(root), "--backend", "hf"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return [path for _, path in hub.requests[before:]]

    assert "/api/jobs/hardware" in tick()  # the first tick looks things up and submits
    hub.advance(next(iter(hub.jobs)), "RUNNING")
    tick()  # records `running`
    assert tick() == ["/api/jobs/me"]  # nothing to do: the campaign's jobs, and nothing else (no agent registry)


def test_the_oom_ladder_reads_memory_from_the_live_catalog(tmp_path: Path, hub, clock) -> None:
    oom = 'print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 4.00 GiB", flush=True)\nraise SystemExit(1)\n'
    envelope = with_(ENVELOPE, max_jobs=2, allowed_flavors=["a10g-large", "l40sx1", "a10g-largex2"])
    campaign = with_(LOSS, params={"lr": CAMPAIGN["params"]["lr"]}, fixed={})

    def second_flavor(name: str, catalog) -> tuple[str, str]:
        root = make_repo(tmp_path / name, campaign=campaign, envelope=envelope)
        (root / "train.py").write_text(oom)
        hub.hardware, hub.jobs = catalog, {}
        step = step_for(root, hub, clock)
        step.run()
        hub.run_all()
        clock.advance(900)
        step.run()
        second = rows(root).experiments[2]
        return second.flavor, second.proposer

    from loopback.hf_server import HARDWARE

    # l40sx1's one 48 GB GPU is more than a10g-large's 24 GB; a10g-largex2's two 24 GB GPUs are not
    assert second_flavor("as-listed", list(HARDWARE)) == ("l40sx1", "recovery")
    # the catalog of the day says l40sx1 has a 24 GB GPU: no flavor has more GPU memory, the proposer decides
    smaller = [(n, c, r, ("L40S", 1, "24 GB") if n == "l40sx1" else a) for n, c, r, a in HARDWARE]
    assert second_flavor("smaller", smaller)[1] != "recovery"
