"""examples/tabular, a multi-file project, runs to a stop on the loopback HF server and locally with the same results.

The campaign is cut to 4 jobs (its envelope's ``max_jobs``) so the test stays fast: it stops on its budget, and
the two backends run side by side. Both run the folder as committed (a git checkout of the example, ``outputs/`` ignored), with the dependencies of
its requirements.txt through ``uv run --with-requirements`` (the uv stand-in of tests/fake_uv.py, which runs this
Python: it has scikit-learn and PyYAML).
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("huggingface_hub")

from fake_uv import make_uv  # noqa: E402
from gitrepos import git, isolate_git  # noqa: E402
from loopback.hf_server import FakeHubServer  # noqa: E402
from mlr_action.backends import _hf_http  # noqa: E402
from mlr_action.backends.hf import HfBackend  # noqa: E402
from mlr_action.backends.local import LocalBackend  # noqa: E402
from mlr_action.forges.files import FileForge  # noqa: E402
from mlr_action.core.ledger import read_ledger  # noqa: E402
from mlr_action.proposers.search import SearchProposer  # noqa: E402
from mlr_action.core.state import fold  # noqa: E402
from mlr_action.shell.step import Step  # noqa: E402
from simulate import FakeClock  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tabular"
TOKEN = "hf_" + "FakeLoopbackToken0123456789abcdef"  # built, so no token-shaped literal is committed


def checkout(where: Path) -> Path:
    shutil.copytree(EXAMPLE, where, ignore=shutil.ignore_patterns("runs", ".mlr", "outputs", "__pycache__"))
    program = (where / "program.md").read_text()
    (where / "program.md").write_text(program.replace("max_jobs: 12 ", "max_jobs: 4  "))
    git(where, "init", "-q", "-b", "main")
    git(where, "add", "-A")
    git(where, "commit", "-q", "-m", "the example")
    return where


def run_to_a_stop(step: Step, deadline_s: float = 240) -> None:
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        result = step.run()
        assert result.exit_code == 0, result.events
        if result.stopped:
            return
        time.sleep(0.1)
    raise AssertionError("the campaign did not stop in time")


def results(root: Path) -> list[tuple]:
    state = fold(read_ledger(root / "runs" / "ledger.jsonl"))
    return [(e.iter, e.config, e.metric, e.decision, e.status, e.folder_hash) for e in state.experiments.values()]


def test_the_example_runs_to_the_same_stop_on_hf_and_locally(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    uv = make_uv(tmp_path / "bin") / "uv"
    local, remote = checkout(tmp_path / "local"), checkout(tmp_path / "remote")
    with FakeHubServer(token=TOKEN) as hub:
        hub.autorun = 3.0  # every job runs as soon as it is created, for 3 s of charged time
        policy = _hf_http.Policy(timeout_s=10.0, backoff_s=0.0, sleep=lambda s: None)
        hf = HfBackend(endpoint=hub.url, token=TOKEN, policy=policy)
        steps = [Step(root=local, backend=LocalBackend(local, uv=str(uv)), proposer=SearchProposer(),
                      forge=FileForge(local), clock=FakeClock()),
                 Step(root=remote, backend=hf, proposer=SearchProposer(), forge=FileForge(remote), clock=FakeClock())]
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(run_to_a_stop, steps))
        jobs = list(hub.jobs.values())
        assert all("fake uv: --with-requirements requirements.txt" in "".join(line for _, line in j.logs) for j in jobs)
        assert hub.git.commit_count == 1  # one folder, uploaded once for the whole campaign

    here, there = results(local), results(remote)
    assert here == there and len(here) == 4 and all(row[2] is not None for row in here)
    assert {row[-1] for row in here} == {here[0][-1]} and here[0][-1]  # one folder digest, recorded on every row
    for root in (local, remote):
        stop = [r for r in read_ledger(root / "runs" / "ledger.jsonl") if getattr(r, "event", None) == "stopped"]
        assert stop and stop[-1].reason in ("target", "budget")
        assert not (root / "outputs").exists()  # the job wrote its metrics.json in its own copy of the folder


def test_the_example_validates_with_no_preflight_problem_and_names_its_requirements(tmp_path, monkeypatch, capsys):
    from mlr_action.commands.cli import main

    isolate_git(monkeypatch, tmp_path)
    root = checkout(tmp_path / "example")
    assert main(["validate", "--repo", str(root)]) == 0
    out = capsys.readouterr().out
    assert "dependencies  requirements.txt" in out and "no problem found" in out
    assert ("command       uv run --no-project --with-requirements requirements.txt train.py --C=<C> --gamma=<gamma> "
            "--kernel=<kernel> --config=configs/default.yaml") in out
