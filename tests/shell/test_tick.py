"""Both ways to leave no idle GPU, end to end: linger and the job wake-up, through the action and the CLI.

The action runs as the runner runs it (tests/github/test_action.py's Runner: GITHUB_* variables, an event file, a real
bare origin); the HF backend speaks to tests/loopback/hf_server.py, which runs each job's command for real, so the
launcher's dispatch reaches tests/loopback/github_server.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gitrepos import append, clone, git, make_origin, show
from programs import CAMPAIGN, ENVELOPE, program_text, with_
from test_action import TRAIN, jobs_started, ledger, origin, runner  # noqa: F401 (fixtures)

SHORT = program_text(with_(ENVELOPE, max_jobs=3, allowed_flavors=["cpu-basic"], max_timeout="5m", max_walltime="1h"),
                     with_(CAMPAIGN, flavor="cpu-basic", timeout="1m", target=0.99, patience=5))
LOCAL = dict(backend="local", proposer="search", forge="none")
HF = "hf_" + "FakeLoopbackToken0123456789abcdef"
WAKE = "github_pat_" + "11FAKE0WAKE0" + "y" * 40  # built at run time: never a committed token-shaped literal
WORKFLOW_REF = "me/repo/.github/workflows/mlr.yml@refs/heads/main"


def wait_for_local_jobs(work: Path, timeout: float = 20.0) -> None:
    from mlr_action.backends.local import LocalBackend

    backend, deadline = LocalBackend(work), time.monotonic() + timeout
    while not all(backend.inspect(job_id=j).stage.terminal for j in jobs_started(work)):
        assert time.monotonic() < deadline, "the local jobs did not finish"
        time.sleep(0.1)


def statuses(rows: list[dict]) -> dict[int, str]:
    return {r["iter"]: r["status"] for r in rows if "iter" in r}


# -- linger ------------------------------------------------------------------------------------------------------


def test_the_action_lingers_on_a_job_due_then_evaluates_it_and_submits_the_next_in_the_same_run(runner, tmp_path):
    origin = make_origin(tmp_path, {"program.md": SHORT, "train.py": TRAIN})
    work = clone(origin, tmp_path / "work")
    assert runner.run(work, linger="1m", **LOCAL) == 0, runner.out
    assert "linger:" not in runner.out  # iter 1 just submitted, nothing finished yet: no request, no sleep
    wait_for_local_jobs(work)
    started = time.monotonic()
    assert runner.run(work, linger="1m", **LOCAL) == 0, runner.out
    assert time.monotonic() - started < 40
    # iter 1 evaluated, iter 2 submitted; iter 2 (as short as iter 1) followed, evaluated, iter 3 submitted; then 3
    assert statuses(ledger(origin)) == {1: "completed", 2: "completed", 3: "completed"}
    assert "linger: following iter 2" in runner.out and "linger: following iter 3" in runner.out
    assert runner.outputs["jobs-used"] == "3" and runner.outputs["state"] == "stopped"
    # every step of the run pushed its rows as it ended, the intents before each submit
    subjects = git(origin, "log", "--format=%s", "main").splitlines()
    assert sum(s.startswith("mlr: record before submitting 1 job(s)") for s in subjects) == 3
    assert "linger: following iter 2" in runner.summary
    assert git(work, "status", "--porcelain") == ""


def test_mlr_step_lingers_through_the_cli(tmp_path, capsys):
    from mlr_action.commands.cli import main

    (tmp_path / "program.md").write_text(SHORT)
    (tmp_path / "train.py").write_text(TRAIN)
    assert main(["step", "--repo", str(tmp_path), "--linger", "1m", "--no-uv"]) == 0
    wait_for_local_jobs(tmp_path)
    assert main(["step", "--repo", str(tmp_path), "--linger", "1m", "--no-uv"]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "runs" / "ledger.jsonl").read_text().splitlines()]
    assert statuses(rows) == {1: "completed", 2: "completed", 3: "completed"}
    assert "linger: following iter 2" in out and "iter 3 submitted" in out
    with pytest.raises(SystemExit) as exited:  # argparse: the message, and exit 2
        main(["step", "--repo", str(tmp_path), "--linger", "soon"])
    assert exited.value.code == 2
    assert "'soon' is not a duration; give a duration such as 10m" in capsys.readouterr().err


def test_a_bad_linger_input_is_named_with_its_fix(runner, tmp_path):
    assert runner.run(tmp_path, argv=["--check-inputs"], linger="forever") == 2
    assert "input linger: 'forever' is not a duration. Fix: set `linger:` to a duration such as 10m" in runner.out


# -- the job wake-up -------------------------------------------------------------------------------------------


@pytest.fixture
def servers(runner):
    from loopback.github_server import FakeGitHub
    from loopback.hf_server import FakeHubServer

    with FakeHubServer(token=HF) as hub, FakeGitHub(owner="me", name="repo", token="ghs_" + "w" * 36,
                                                   action_tokens=(WAKE,)) as gh:
        for name, value in {"HF_ENDPOINT": hub.url, "HF_TOKEN": HF, "MLR_WAKE_TOKEN": WAKE,
                            "GITHUB_API_URL": gh.base_url, "GITHUB_WORKFLOW_REF": WORKFLOW_REF}.items():
            runner.mp.setenv(name, value)
        yield hub, gh


HF_RUN = dict(backend="hf", proposer="search", forge="none", linger="0")


def test_a_job_wakes_the_workflow_and_the_run_queued_behind_a_tick_that_pushed_runs_spends(runner, servers, tmp_path):
    hub, gh = servers
    origin = make_origin(tmp_path, {"program.md": SHORT, "train.py": TRAIN})
    for where in ("first", "queued"):  # each run's checkout is a folder named after the repository, as on GitHub
        (tmp_path / where).mkdir()
    assert runner.run(clone(origin, tmp_path / "first" / "repo"), **HF_RUN) == 0, runner.out
    [job] = hub.jobs.values()
    assert job.secrets == {"HF_TOKEN": HF, "MLR_WAKE_TOKEN": WAKE} and WAKE not in json.dumps(job.environment)
    at_dispatch = git(origin, "rev-parse", "main")
    queued = clone(origin, tmp_path / "queued" / "repo")  # the dispatched run's checkout: the tip when it was queued
    # Meanwhile a tick ran and pushed runs/ (as the bot does), so the queued run's commit is no longer the tip.
    bot = clone(origin, tmp_path / "bot")
    append(bot / "runs" / "summary.md", "a tick rewrote the summary")
    git(bot, "commit", "-q", "-am", "mlr: update runs/")
    git(bot, "push", "-q", "origin", "HEAD:main")
    hub.run(job.id, running_secs=30)  # the job ends: its launcher dispatches the workflow
    assert gh.dispatches == [{"workflow": "mlr.yml", "ref": "main", "inputs": {"reason": "iter 1 ended"}, "token": WAKE}]
    assert runner.run(queued, sha=at_dispatch, **HF_RUN) == 0, runner.out
    assert "behind main" in runner.out and "only by commits to runs/" in runner.out
    assert runner.outputs["dry-run"] == "false" and len(hub.jobs) == 2  # iter 1 evaluated, iter 2 submitted
    assert statuses(ledger(origin))[1] == "completed"
    assert "a tick rewrote the summary" not in show(origin, "main", "runs/summary.md")  # this run's summary, at the tip
    assert "noted:" not in runner.out  # the same campaign
    for text in (runner.out.replace(f"::add-mask::{WAKE}", ""), runner.summary, show(origin, "main", "runs/ledger.jsonl"),
                 git(origin, "log", "--format=%B", "main")):
        assert WAKE not in text


def test_wake_up_true_without_its_token_is_named_and_nothing_is_spent(runner, servers, tmp_path):
    hub, _ = servers
    runner.mp.delenv("MLR_WAKE_TOKEN")
    origin = make_origin(tmp_path, {"program.md": SHORT, "train.py": TRAIN})
    assert runner.run(clone(origin, tmp_path / "work"), wake_up="true", **HF_RUN) == 2
    assert "wake-up is true and MLR_WAKE_TOKEN is empty. Fix: add a repository secret MLR_WAKE_TOKEN" in runner.out
    assert hub.jobs == {}
    assert runner.run(tmp_path, argv=["--check-inputs"], wake_up="true", backend="local") == 2
    assert "input wake-up: true needs backend hf" in runner.out


def test_wake_up_auto_is_off_without_the_token(runner, servers, tmp_path):
    hub, gh = servers
    runner.mp.delenv("MLR_WAKE_TOKEN")
    origin = make_origin(tmp_path, {"program.md": SHORT, "train.py": TRAIN})
    assert runner.run(clone(origin, tmp_path / "work"), **HF_RUN) == 0, runner.out
    [job] = hub.jobs.values()
    assert job.secrets == {"HF_TOKEN": HF}
    hub.run(job.id)
    assert gh.dispatches == []


def test_mlr_step_wakes_the_workflow_through_the_cli_with_the_github_forge(tmp_path, monkeypatch, capsys):
    from loopback.github_server import FakeGitHub
    from gitrepos import isolate_git
    from loopback.hf_server import FakeHubServer
    from mlr_action.commands.cli import main

    isolate_git(monkeypatch, tmp_path)
    origin = make_origin(tmp_path, {"program.md": SHORT, "train.py": TRAIN})
    work = clone(origin, tmp_path / "work")
    with FakeHubServer(token=HF) as hub, FakeGitHub(action_tokens=(WAKE,)) as gh:
        for name, value in {**gh.env(), "HF_ENDPOINT": hub.url, "HF_TOKEN": HF, "MLR_WAKE_TOKEN": WAKE}.items():
            monkeypatch.setenv(name, value)
        argv = ["step", "--repo", str(work), "--forge", "github", "--backend", "hf", "--proposer", "search"]
        assert main([*argv, "--wake-workflow", "mlr.yml"]) == 0, capsys.readouterr()
        [job] = hub.jobs.values()
        hub.run(job.id)
        assert gh.dispatches == [{"workflow": "mlr.yml", "ref": "main", "inputs": {"reason": "iter 1 ended"},
                                  "token": WAKE}]
        monkeypatch.delenv("MLR_WAKE_TOKEN")
        assert main([*argv, "--wake-workflow", "mlr.yml"]) == 2
        assert "the job wake-up needs a token in MLR_WAKE_TOKEN" in capsys.readouterr().err
        assert main(["step", "--repo", str(work), "--backend", "hf", "--wake-workflow", "mlr.yml"]) == 2
        assert "--wake-workflow needs --backend hf and --forge github" in capsys.readouterr().err
        assert len(hub.jobs) == 1
