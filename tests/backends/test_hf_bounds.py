"""Reading HF within bounds, over the loopback HF Jobs API: a log read has a deadline, the launcher's last line
proves a log whole, a running job holds its upper bound in the budget, and a bad backend cache is only ignored."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub")

from huggingface_hub import HfApi  # noqa: E402

from mlr_action.core.jobs import LogIncomplete, labels_for  # noqa: E402
from mlr_action.shell.step_result import BACKEND_CACHE_PATH  # noqa: E402
from programs import ENVELOPE, program_text, with_  # noqa: E402
from test_hf_campaign import TOKEN, clock, hub  # noqa: E402,F401  (the loopback hub on a fake clock: fixtures)
from test_hf_reading import EPOCHS, LOSS, backend, make_repo, rows, spec, step_for  # noqa: E402

LINES = [*EPOCHS, "val_loss=0.2"]
SENTINEL = "mlr-launcher: exit="  # the launcher's last line, as docs/hf-jobs.md states it


def read_in_thread(hf, job_id: str, wait_s: float = 10.0) -> dict:
    """``hf.logs`` in a thread: {"log": ...} or {"error": ...}, or {} when it had not returned after ``wait_s``."""
    out: dict = {}

    def read() -> None:
        try:
            out["log"] = hf.logs(job_id=job_id)
        except LogIncomplete as exc:
            out["error"] = exc

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(wait_s)
    return out


# -- a read has a deadline ---------------------------------------------------------------------


def test_a_replay_kept_open_by_keep_alives_is_cut_at_the_deadline(hub, tmp_path: Path) -> None:
    hf = backend(hub, log_deadline_s=1.0)
    job_id = hf.submit(spec=spec(tmp_path))
    hub.advance(job_id, "COMPLETED", logs="\n".join(LINES), running_secs=60)
    hub.stall_logs(after=3, kind="trickle", seconds=20, interval=0.1)  # a keep-alive every 0.1 s, within the 0.5 s timeout
    out = read_in_thread(hf, job_id)
    assert "error" in out, f"the read did not end at its deadline: {out}"
    assert "deadline" in str(out["error"]) and out["error"].text == "\n".join(EPOCHS[:3]) + "\n"


def test_a_step_reads_the_log_again_after_a_replay_that_never_ended(tmp_path: Path, hub, clock) -> None:
    root = make_repo(tmp_path / "repo", envelope=with_(ENVELOPE, max_jobs=1))
    step = step_for(root, hub, clock, hf=backend(hub, clock, log_deadline_s=1.0))
    step.run()
    hub.run_all(running_secs=300)
    hub.stall_logs(after=4, kind="trickle", seconds=20)
    clock.advance(600)
    kept_open = step.run()
    assert rows(root).experiments[1].metric is None
    assert any("deadline" in e and "read again" in e for e in kept_open.events), kept_open.events
    clock.advance(600)
    step.run()
    exp = rows(root).experiments[1]
    assert exp.status == "completed" and exp.metric == pytest.approx(round(0.2 + abs(exp.config["lr"] - 3e-4), 4))


# -- the launcher's last line ------------------------------------------------------------------


def run_script(hub, tmp_path: Path, source: str):
    script = tmp_path / "train.py"
    script.write_text(source)
    hf = backend(hub, log_deadline_s=30.0)
    job_id = hf.submit(spec=spec(tmp_path).model_copy(update={"script": str(script)}))
    return hf, hub.run(job_id, running_secs=60)


@pytest.mark.parametrize("code, stage", [(0, "COMPLETED"), (3, "ERROR")])
def test_the_launcher_prints_its_last_line_with_the_scripts_exit_status(hub, tmp_path: Path, code, stage) -> None:
    hf, job = run_script(hub, tmp_path, f"import sys\nprint('val_loss=0.2')\nsys.exit({code})\n")
    assert job.stage == stage and [line for _, line in job.logs][-2:] == ["val_loss=0.2", f"{SENTINEL}{code}"]
    assert hf.logs(job_id=job.id) == "val_loss=0.2\n"  # the launcher's line proves the log whole; it is not the job's


def test_a_replay_that_reaches_the_launchers_last_line_is_whole_though_the_stream_stays_open(hub, tmp_path: Path) -> None:
    hf, job = run_script(hub, tmp_path, "print('val_loss=0.2')\n")
    hub.stall_logs(after=len(job.logs), kind="trickle", seconds=20)  # every line sent, then keep-alives
    out = read_in_thread(hf, job.id, wait_s=8.0)
    assert out.get("log") == "val_loss=0.2\n", out


def test_a_completed_job_whose_replay_ends_before_the_launchers_last_line_is_not_whole(hub, tmp_path: Path) -> None:
    """The service closed the replay early (a tail cut, a log shipper behind): the server's close is no proof here."""
    hf = backend(hub)
    job_id = hf.submit(spec=spec(tmp_path))
    hub.advance(job_id, "COMPLETED", logs="\n".join(EPOCHS[:3]), running_secs=60, last_line=False)
    with pytest.raises(LogIncomplete, match="after 3 lines, without the launcher's last line") as caught:
        hf.logs(job_id=job_id)
    assert caught.value.text == "\n".join(EPOCHS[:3]) + "\n"


def test_a_job_killed_before_its_launcher_could_print_is_read_when_the_replay_ends(hub, tmp_path: Path) -> None:
    hf = backend(hub)
    job_id = hf.submit(spec=spec(tmp_path))
    hub.advance(job_id, "ERROR", logs="epoch 1/5\nKilled", message="OOMKilled", running_secs=60)
    assert hf.logs(job_id=job_id) == "epoch 1/5\nKilled\n"


def test_a_job_submitted_before_the_launcher_printed_a_last_line_is_read_as_before(hub) -> None:
    hf = backend(hub)
    old = "set -e\nd=\"$(mktemp -d)\"\ncp -R /mlr/code/. \"$d\"\ncd \"$d\"\nexec python train.py \"$@\""
    info = HfApi(endpoint=hub.url, token=TOKEN).run_job(image="python:3.12", command=["bash", "-c", old, "mlr-job"],
                                                        labels=labels_for("camp", 1), namespace="me")
    hub.advance(str(info.id), "COMPLETED", logs="\n".join(LINES), running_secs=60)
    assert hf.logs(job_id=str(info.id)) == "\n".join(LINES) + "\n"


# -- what a running job holds in the budget ----------------------------------------------------


def test_a_running_job_holds_its_time_to_start_and_its_timeout_until_it_ends(tmp_path: Path, hub, clock) -> None:
    """It waited 25 minutes to start (no tick in between to cancel it): it may bill 25m + its 1h timeout."""
    envelope = with_(ENVELOPE, max_walltime="160m", max_parallel=1)  # 144m with the reserve kept: two jobs of 1h10m
    root = make_repo(tmp_path / "repo", envelope=envelope)
    step_for(root, hub, clock).run()
    (job_id,) = hub.jobs
    clock.advance(25 * 60)
    hub.advance(job_id, "RUNNING")
    clock.advance(60)
    (root / "program.md").write_text(program_text(with_(envelope, max_parallel=2), LOSS))
    result = step_for(root, hub, clock).run()
    assert result.submitted == 0 and list(hub.jobs) == [job_id], "a second job went out on money the first may bill"
    assert result.used.walltime_s == 25 * 60 + 3600
    assert rows(root).experiments[1].status == "running"


# -- the backend cache is data -----------------------------------------------------------------


@pytest.mark.parametrize("text", [
    pytest.param("[" * 200000, id="nested too deep"),
    pytest.param('{"v": 1, "pad": "' + "x" * 2_000_000 + '"}', id="over 1 MB"),
    pytest.param("\udcff not json", id="not even text"),
])
def test_a_bad_backend_cache_is_ignored_with_one_line(tmp_path: Path, hub, clock, text) -> None:
    root = make_repo(tmp_path / "repo")
    (root / "runs").mkdir()
    (root / BACKEND_CACHE_PATH).write_bytes(text.encode("utf-8", "surrogateescape"))
    result = step_for(root, hub, clock).run()
    assert result.exit_code == 0 and result.submitted == 1
    said = [e for e in result.events if "backend-cache.json" in e]
    assert len(said) == 1 and "ignored" in said[0], result.events
    assert (root / BACKEND_CACHE_PATH).read_text().startswith("{")  # replaced by a good one

