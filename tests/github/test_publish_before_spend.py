"""Nothing is spent that cannot be recorded: a tick whose rows cannot reach the remote spends nothing more.

Run as a workflow runs it: ``python -m mlr_action.github.action`` (``action.main``) on
a clone of a real bare origin, the hf backend over the loopback HF Jobs API and
the Claude proposer over the loopback Anthropic API, so every job and every LLM
call is counted where it is made. The origin rejects pushes with a
``pre-receive`` hook: one that exits 1 (a rejected push), or one that says the
branch is protected.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from loopback.anthropic_stub import StubAnthropic, is_research, search_turn, structured, user_text
from claude_helpers import FAKE_KEY, answer
from gitrepos import clone, git, isolate_git, make_origin
from programs import CAMPAIGN, ENVELOPE, program_text, with_

from mlr_action.github import action

pytest.importorskip("huggingface_hub")
from loopback.hf_server import FakeHubServer  # noqa: E402

HF_TOKEN = "hf_" + "FakeLoopbackToken0123456789abcdef"  # built, so no token-shaped literal is committed
PROGRAM = program_text(with_(ENVELOPE, max_jobs=6, max_parallel=1, max_llm_usd=2),
                       with_(CAMPAIGN, target=None, patience=None))
REJECT = "#!/bin/sh\necho 'rejected by a hook' >&2\nexit 1\n"
PROTECTED = "#!/bin/sh\necho 'error: GH006: Protected branch update failed for refs/heads/main.' >&2\nexit 1\n"
INPUTS = {"backend": "hf", "proposer": "claude", "forge": "none"}


def claude(body: dict):
    if is_research(body):
        return search_turn([("A recipe", "https://example.org/recipe")], "Recipes use lr 3e-4.")
    n = int(re.search(r"Propose experiment iter (\d+)", user_text(body)).group(1))
    return structured(answer(lr=[1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4][(n - 1) % 6], batch_size=8 + n))


class World:
    """The origin, the HF Jobs API and the Anthropic API that outlive every tick; a tick is ``action.main``."""

    def __init__(self, tmp_path: Path, monkeypatch, hub, llm) -> None:
        self.tmp, self.mp, self.hub, self.llm = tmp_path, monkeypatch, hub, llm
        self.origin = make_origin(tmp_path, {"program.md": PROGRAM, "train.py": "print('eval_accuracy=0.5')\n"})
        self.ticks = 0
        event = tmp_path / "event.json"
        event.write_text(json.dumps({"repository": {"full_name": "me/sweep", "default_branch": "main", "fork": False}}))
        env = {"GITHUB_EVENT_NAME": "schedule", "GITHUB_EVENT_PATH": str(event), "GITHUB_REF": "refs/heads/main",
               "GITHUB_REPOSITORY": "me/sweep", "GITHUB_SHA": "0123456789abcdef",
               "GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
               "HF_ENDPOINT": hub.url, "HF_TOKEN": HF_TOKEN, "ANTHROPIC_BASE_URL": llm.url, "ANTHROPIC_API_KEY": FAKE_KEY}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        for name in action.DEFAULTS:
            monkeypatch.delenv(action.env_name(name), raising=False)
        for name, value in INPUTS.items():
            monkeypatch.setenv(action.env_name(name), value)

    def checkout(self) -> Path:
        """A fresh clone, in a folder of the repository's name, as actions/checkout gives every run."""
        self.ticks += 1
        where = self.tmp / f"run{self.ticks}"
        where.mkdir()
        return clone(self.origin, where / "sweep")

    def tick(self, work: Path | None = None) -> int:
        work = work or self.checkout()
        self.mp.setenv("GITHUB_WORKSPACE", str(work))
        return action.main([])

    def hook(self, script: str | None) -> None:
        hook = self.origin / "hooks" / "pre-receive"
        if script is None:
            hook.unlink(missing_ok=True)
            return
        hook.write_text(script)
        hook.chmod(0o755)

    def finish_jobs(self) -> None:
        for job in list(self.hub.jobs.values()):
            if job.stage not in ("COMPLETED", "ERROR", "CANCELED", "DELETED"):
                self.hub.advance(job.id, "RUNNING")
                self.hub.advance(job.id, "COMPLETED", logs="eval_accuracy=0.5", running_secs=600)

    def remote_rows(self) -> list[dict]:
        text = git(self.origin, "show", "main:runs/ledger.jsonl", check=False)
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def llm_calls(self) -> int:
        return len(self.llm.requests)


@pytest.fixture
def world(tmp_path, monkeypatch, capsys):
    isolate_git(monkeypatch, tmp_path)
    for name in ("GITHUB_TOKEN", "MLR_LEDGER_BRANCH", "GITHUB_API_URL"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    with FakeHubServer(token=HF_TOKEN) as hub, StubAnthropic(claude) as llm:
        yield World(tmp_path, monkeypatch, hub, llm)


def recorded_jobs(rows: list[dict]) -> set[str]:
    return {r["job_id"] for r in rows if r.get("job_id") and "iter" in r}


def test_a_remote_that_rejects_every_push_gets_no_job_and_no_llm_call_in_ten_ticks(world, capsys):
    world.hook(REJECT)
    codes = [world.tick() for _ in range(10)]
    assert codes == [1] * 10
    assert world.hub.jobs == {} and world.llm_calls() == 0
    assert world.remote_rows() == []
    out = capsys.readouterr().out
    assert "could not publish runs/ before calling the LLM" in out and "Nothing more is spent in this tick" in out


def test_after_the_first_rejected_push_nothing_more_is_spent_than_is_recorded(world):
    for _ in range(3):
        assert world.tick() == 0
        world.finish_jobs()
    before_jobs, before_calls = set(world.hub.jobs), world.llm_calls()
    assert len(before_jobs) == 3 and before_calls >= 3
    assert recorded_jobs(world.remote_rows()) == before_jobs  # every job so far is on the remote
    world.hook(REJECT)
    codes = [world.tick() for _ in range(10)]
    assert set(codes) == {1}
    assert set(world.hub.jobs) == before_jobs and world.llm_calls() == before_calls
    # Every LLM row on the remote covers every call made: each reservation was published before its calls.
    rows = world.remote_rows()
    reserved = {r["reservation"] for r in rows if r.get("reason") == "reserved"}
    settled = {r["settles"] for r in rows if r.get("reason") == "settled"}
    assert reserved == settled and len(reserved) == 3


def test_a_protected_branch_spends_nothing_and_says_to_set_ledger_branch(world, capsys):
    world.hook(PROTECTED)
    assert world.tick() == 2
    assert world.tick() == 2
    assert world.hub.jobs == {} and world.llm_calls() == 0
    out = capsys.readouterr().out
    assert "protected" in out and "ledger-branch" in out


def test_when_pushes_work_again_the_tick_publishes_first_then_continues(world):
    assert world.tick() == 0
    world.finish_jobs()
    work = world.checkout()  # one checkout kept across ticks (a self-hosted runner, or a laptop)
    world.hook(REJECT)
    assert world.tick(work) == 1 and world.tick(work) == 1
    assert len(world.hub.jobs) == 1
    local = [json.loads(line) for line in (work / "runs" / "ledger.jsonl").read_text().splitlines()]
    assert len(local) > len(world.remote_rows())  # the rows of the failed ticks wait on disk
    world.hook(None)
    assert world.tick(work) == 0
    assert len(world.hub.jobs) == 2
    rows = world.remote_rows()
    assert recorded_jobs(rows) == set(world.hub.jobs)
    remote = {json.dumps(r, sort_keys=True) for r in rows}
    assert all(json.dumps(r, sort_keys=True) in remote for r in local)  # what waited on disk reached the remote
    # The first commit that names iter 2's job has a parent that already held iter 2's intent: published, then submitted.
    job2 = next(j.id for j in world.hub.jobs.values() if j.labels["mlr-iter"] == "2")
    commits = git(world.origin, "rev-list", "--reverse", "main").split()
    first = next(c for c in commits if job2 in git(world.origin, "show", f"{c}:runs/ledger.jsonl", check=False))
    parent = [json.loads(line) for line in git(world.origin, "show", f"{first}~1:runs/ledger.jsonl").splitlines()]
    assert any(r.get("iter") == 2 and r.get("status") == "proposed" for r in parent)
    assert "(recorded before submitting 1 job(s))" in git(world.origin, "log", "-1", "--format=%B", f"{first}~1")


def test_each_commit_of_a_tick_says_what_it_adds(world):
    for _ in range(2):
        assert world.tick() == 0
        world.finish_jobs()
    subjects = git(world.origin, "log", "--reverse", "--format=%s", "main").splitlines()[1:]  # after the initial commit
    # Tick 2: iter 1 completed and a reservation, published before calling the LLM; the LLM's rows and iter 2's
    # intent, published before its submit; then the submit itself. Three commits, three different subjects.
    tick2 = subjects[-3:]
    assert len(set(subjects)) == len(subjects), subjects
    assert tick2[0].startswith("mlr: record before calling the LLM: iter 1 completed"), tick2
    assert tick2[1].startswith("mlr: record before submitting 1 job(s): llm: "), tick2
    assert "iter 1 completed" not in tick2[1]  # already in the commit before: not what this one adds
    assert tick2[2].startswith("mlr: iter 2 submitted "), tick2
    assert all(len(s) <= 72 for s in subjects), subjects
