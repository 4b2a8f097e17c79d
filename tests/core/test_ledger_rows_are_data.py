"""A ledger row is data: it never decides where a job writes, what the bot deletes, or which commit authorized it.

The attacker is a ledger-branch writer: they push anything to runs/ledger.jsonl
between ticks. A planted ``proposed`` row with an ``output_repo`` of their
choice must not send a job (which holds ``HF_TOKEN``) to write there; with
``allow_deletes``, flipping the best run to ``discard`` or planting a
discarded row that names a repo must not make the bot delete it. The commit
that authorized a job is recorded by the bot, on the job (a label) and on its
rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitrepos import clone, git, isolate_git, make_origin
from mlr_action.core.jobs import JobStage, JobView
from mlr_action.backends.memory import InMemoryBackend
from mlr_action.core.cleanup import deleted_row, repos_to_delete
from mlr_action.forges.files import FileForge
from mlr_action.job.jobspec import job_spec
from mlr_action.core.ledger import EventRow, experiment_row, read_ledger
from mlr_action.core.program import parse_program
from mlr_action.proposers.search import SearchProposer
from mlr_action.core.state import fold
from mlr_action.shell.step import Step
from programs import CAMPAIGN, ENVELOPE, program_text, with_
from reliability import DeletingBackend
from simulate import FakeClock

TRAIN = "print('eval_accuracy=0.5')\n"
OPEN = with_(CAMPAIGN, target=None, patience=None)
PLANTED = {"iter": 1, "ts": "2026-01-01T00:00:00+00:00", "status": "proposed",
           "config": {"lr": 1e-4, "batch_size": 8, "scheduler": "linear"}, "timeout": "1h", "timeout_s": 3600,
           "flavor": "a10g-large", "hypothesis": "planted", "output_repo": "victim-org/production-model"}


def make_repo(root: Path, envelope: dict | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "train.py").write_text(TRAIN)
    (root / "program.md").write_text(program_text(envelope, OPEN))
    return root


def write_ledger(root: Path, rows: list[dict]) -> None:
    (root / "runs").mkdir(exist_ok=True)
    (root / "runs" / "ledger.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def step(root: Path, backend, snapshot=None) -> Step:
    return Step(root=root, backend=backend, proposer=SearchProposer(), forge=FileForge(root), clock=FakeClock(),
                snapshot=snapshot)


# --- 1. the output repo comes from program.md, never from a row ---------------------------------------------------


def test_a_planted_intent_never_sends_its_job_to_the_repo_it_names(tmp_path):
    root = make_repo(tmp_path / "sweep")
    write_ledger(root, [PLANTED])
    backend = InMemoryBackend()
    result = step(root, backend).run()
    assert result.exit_code == 0 and result.submitted == 1, result.events
    [job] = backend.jobs.values()
    assert job.spec.env["MLR_OUTPUT_REPO"] == "me/sweep-sweep-001"  # the first output_repos glob, made concrete
    submitted = fold(read_ledger(root / "runs" / "ledger.jsonl")).experiments[1]
    assert submitted.output_repo == "me/sweep-sweep-001"
    assert any("victim-org/production-model" in e and "me/sweep-sweep-001" in e for e in result.events), result.events


def test_a_planted_intent_never_reaches_an_hf_job_through_the_cli(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    from loopback.hf_server import FakeHubServer
    from mlr_action.commands.cli import main

    token = "hf_" + "FakeLoopbackToken0123456789abcdef"
    root = make_repo(tmp_path / "sweep")
    write_ledger(root, [PLANTED])
    with FakeHubServer(token=token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", token)
        assert main(["step", "--repo", str(root), "--backend", "hf"]) == 0
        [job] = hub.jobs.values()
    assert job.environment["MLR_OUTPUT_REPO"] == "me/sweep-sweep-001"
    assert "HF_TOKEN" in job.secrets and "victim-org" not in json.dumps(job.spec)


@pytest.mark.parametrize("planted", ["victim-org/production-model", "me/sweep-production", None, ""])
def test_the_job_spec_takes_the_output_repo_from_the_envelope_whatever_the_row_says(tmp_path, planted):
    (tmp_path / "train.py").write_text(TRAIN)
    program = parse_program(program_text(None, OPEN), root=tmp_path)
    row = experiment_row(iter=7, ts="t", status="proposed", config={}, timeout_s=60, flavor="t4-small",
                         output_repo=planted)
    assert job_spec(program, "sweep", row, tmp_path).env["MLR_OUTPUT_REPO"] == "me/sweep-sweep-007"
    closed = parse_program(program_text(with_(ENVELOPE, output_repos=[]), OPEN), root=tmp_path)
    assert job_spec(closed, "sweep", row, tmp_path).env["MLR_OUTPUT_REPO"] == ""  # no glob: no repo at all


# --- 4. allow_deletes deletes only what the backend's record shows as the bot's own discarded runs ------------------


METRICS = {1: 0.9, 2: 0.5, 3: 0.6}  # iter 1 is the best (kept); 2 and 3 are discarded


def finish(world: DeletingBackend) -> None:
    """Every live job completes with its iter's metric and pushes its MLR_OUTPUT_REPO, as a real script would."""
    for job in list(world.jobs.values()):
        if not job.stage.terminal:
            iteration = int(job.labels["mlr-iter"])
            world.advance(job.job_id, JobStage.COMPLETED, duration_s=600, logs=f"eval_accuracy={METRICS[iteration]}\n")
            world.repos.add(job.spec.env["MLR_OUTPUT_REPO"])


def run_to_the_stop(root: Path, attack=lambda rows: rows) -> DeletingBackend:
    """Three experiments, one at a time; ``attack`` edits the ledger just before the tick that stops and cleans up."""
    clock = FakeClock()
    world = DeletingBackend(clock.seconds)
    world.repos |= {"me/sweep-production", "me/sweep-other"}  # repos the glob matches that no job of ours wrote
    for tick in range(1, 10):
        if tick == 4:
            path = root / "runs" / "ledger.jsonl"
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            path.write_text("".join(json.dumps(r) + "\n" for r in attack(rows)))
        result = Step(root=root, backend=world, proposer=SearchProposer(), forge=FileForge(root), clock=clock).run()
        assert result.exit_code == 0, result.events
        if result.stopped:
            return world
        clock.advance(900)
        finish(world)
    raise AssertionError("the campaign did not stop")


def deleting_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "sweep", with_(ENVELOPE, max_jobs=3, allow_deletes=True))


def test_without_an_attacker_the_discarded_runs_repos_are_deleted(tmp_path):
    world = run_to_the_stop(deleting_repo(tmp_path))
    assert sorted(world.deleted) == ["me/sweep-sweep-002", "me/sweep-sweep-003"]


def flip_the_best(rows: list[dict]) -> list[dict]:
    for row in rows:
        if row.get("iter") == 1:
            row["decision"] = "discard"
    return rows


def plant_a_discarded_run(rows: list[dict]) -> list[dict]:
    """A finished, discarded row for an iter no job of the campaign ran, naming a repo the glob matches."""
    return rows + [{"iter": 2, "ts": "2026-01-01T09:00:00+00:00", "status": "completed", "job_id": "mem-x2",
                    "metric": 0.1, "decision": "discard", "config": {"lr": 2e-4, "batch_size": 8, "scheduler": "linear"},
                    "timeout": "1h", "timeout_s": 3600, "flavor": "a10g-large", "output_repo": "me/sweep-production"},
                   {"iter": 9, "ts": "2026-01-01T09:00:00+00:00", "status": "completed", "job_id": "mem-x9",
                    "metric": 0.1, "decision": "discard", "config": {"lr": 3e-4, "batch_size": 8, "scheduler": "linear"},
                    "timeout": "1h", "timeout_s": 3600, "flavor": "a10g-large", "output_repo": "me/sweep-sweep-009"}]


def rename_a_repo(rows: list[dict]) -> list[dict]:
    for row in rows:
        if row.get("iter") == 3:
            row["output_repo"] = "me/sweep-other"
    return rows


@pytest.mark.parametrize("attack, kept", [
    (flip_the_best, {"me/sweep-sweep-001"}),
    (plant_a_discarded_run, {"me/sweep-production", "me/sweep-sweep-009"}),
    (rename_a_repo, {"me/sweep-other"}),
])
def test_a_ledger_writer_never_makes_the_bot_delete_a_repo_it_should_keep(tmp_path, attack, kept):
    world = run_to_the_stop(deleting_repo(tmp_path), attack)
    assert not kept & set(world.deleted), world.deleted
    assert set(world.deleted) <= {"me/sweep-sweep-002", "me/sweep-sweep-003"}, world.deleted
    assert "me/sweep-sweep-001" not in world.deleted  # never the best run's


def view(iteration: int, stage: JobStage = JobStage.COMPLETED, job: str | None = None) -> JobView:
    return JobView(job_id=job or f"j{iteration}", stage=stage, labels={"mlr-campaign": "c", "mlr-iter": str(iteration)})


def done(iteration: int, decision: str, repo: str | None, status: str = "completed"):
    return experiment_row(iter=iteration, ts=f"t{iteration}", status=status, config={"lr": iteration}, timeout_s=60,
                          flavor="t4-small", decision=decision, metric=0.5, output_repo=repo, job_id=f"j{iteration}")


STOP = EventRow(event="stopped", ts="t9", reason="budget")


@pytest.mark.parametrize("rows, listed, logs, expected", [
    pytest.param([done(1, "keep", "me/sweep-c-001"), done(2, "discard", "me/sweep-c-002"), STOP],
                 [view(1), view(2)], {"j1": "eval_accuracy=0.9", "j2": "eval_accuracy=0.5"}, ["me/sweep-c-002"],
                 id="the bot's own discard"),
    pytest.param([done(1, "discard", "me/sweep-c-001"), done(2, "discard", "me/sweep-c-002"), STOP],
                 [view(1), view(2)], {"j1": "eval_accuracy=0.9", "j2": "eval_accuracy=0.5"}, ["me/sweep-c-002"],
                 id="the best flipped to discard"),
    pytest.param([done(1, "keep", "me/sweep-c-001"), done(2, "discard", "me/sweep-c-002"), STOP],
                 [view(1)], {"j1": "eval_accuracy=0.9"}, [], id="a row whose job the backend does not list"),
    pytest.param([done(1, "keep", "me/sweep-c-001"), done(2, "discard", "me/sweep-c-002"), STOP],
                 [view(1), view(2, JobStage.RUNNING)], {"j1": "eval_accuracy=0.9"}, [], id="a job still running"),
    pytest.param([done(1, "keep", "me/sweep-c-001"), done(2, "discard", "me/sweep-c-002"), STOP],
                 [view(1), view(2), view(2, job="j2b")], {"j1": "eval_accuracy=0.9", "j2": "eval_accuracy=0.5"}, [],
                 id="two jobs for one iter: unsure"),
    pytest.param([done(1, "keep", "me/sweep-c-001"), done(2, "discard", "me/sweep-c-002"), STOP],
                 [view(1), view(2)], {"j1": "eval_accuracy=0.5", "j2": "eval_accuracy=0.9"}, [],
                 id="the backend's record makes it a keep"),
    pytest.param([done(1, "discard", "me/sweep-c-001", status="error"), done(2, "keep", "me/sweep-c-002"), STOP],
                 [view(1, JobStage.ERROR), view(2)], {"j2": "eval_accuracy=0.5"}, ["me/sweep-c-001"], id="failed run"),
    pytest.param([done(1, "keep", "me/sweep-c-001"), done(2, "discard", "me/sweep-c-002")],
                 [view(1), view(2)], {"j1": "eval_accuracy=0.9", "j2": "eval_accuracy=0.5"}, [], id="not stopped"),
    pytest.param([done(1, "keep", "me/sweep-c-001"), done(2, "discard", "me/sweep-c-002"), STOP,
                  deleted_row(ts="t10", deleted=["me/sweep-c-002"], missing=[], refused={})],
                 [view(1), view(2)], {"j1": "eval_accuracy=0.9", "j2": "eval_accuracy=0.5"}, [], id="already deleted"),
    pytest.param([done(1, "keep", "me/sweep-c-001"), done(2, "discard", "me/sweep-c-002"), STOP,
                  deleted_row(ts="t10", deleted=[], missing=[], refused={"me/sweep-c-002": "403"})],
                 [view(1), view(2)], {"j1": "eval_accuracy=0.9", "j2": "eval_accuracy=0.5"}, [], id="refused once"),
])
def test_repos_to_delete(tmp_path, rows, listed, logs, expected):
    (tmp_path / "train.py").write_text(TRAIN)
    program = parse_program(program_text(with_(ENVELOPE, allow_deletes=True, output_repos=["me/sweep-*"]), OPEN),
                            root=tmp_path)
    state = fold([EventRow(event="started", ts="t0", campaign="c"), *rows], campaign_id="c")
    assert repos_to_delete(program, state, listed=listed, logs=logs).delete == expected


@pytest.mark.parametrize("envelope", [with_(ENVELOPE, allow_deletes=False), with_(ENVELOPE, allow_deletes=True,
                                      output_repos=["me/sweep-*", "me/exact"])])
def test_nothing_is_deleted_unless_allowed_and_the_first_glob_gives_the_repo(tmp_path, envelope):
    (tmp_path / "train.py").write_text(TRAIN)
    program = parse_program(program_text(envelope, OPEN), root=tmp_path)
    rows = [done(1, "keep", "me/sweep-c-001"), done(2, "discard", "me/exact"), STOP]
    state = fold([EventRow(event="started", ts="t0", campaign="c"), *rows], campaign_id="c")
    plan = repos_to_delete(program, state, listed=[view(1), view(2)], logs={"j1": "eval_accuracy=0.9",
                                                                           "j2": "eval_accuracy=0.5"})
    assert plan.delete == []  # me/exact matches a glob, but no job was given it: iter 2's repo is me/sweep-c-002


# --- 6. the commit that authorized a job is on the job and on its rows ---------------------------------------------


def test_the_authorizing_commit_is_on_the_jobs_label_and_every_row_of_its_iter(tmp_path, monkeypatch):
    from mlr_action.shell import authority

    isolate_git(monkeypatch, tmp_path)
    origin = make_origin(tmp_path, {"program.md": program_text(None, OPEN), "train.py": TRAIN})
    tip = git(origin, "rev-parse", "main")
    work = clone(origin, tmp_path / "work")
    snapshot = authority.read_authorized(work, branch="main")
    backend = InMemoryBackend()
    assert step(work, backend, snapshot).run().exit_code == 0
    [job] = backend.jobs.values()
    assert job.labels["mlr-commit"] == tip and len(tip) == 40
    backend.advance(job.job_id, JobStage.COMPLETED, duration_s=60, logs="eval_accuracy=0.5\n")
    assert step(work, backend, snapshot).run().exit_code == 0
    rows = [r for r in read_ledger(work / "runs" / "ledger.jsonl") if getattr(r, "iter", None) == 1]
    assert [r.status for r in rows] == ["proposed", "submitted", "completed"]
    assert {r.commit for r in rows} == {tip}


def test_a_local_step_records_no_commit(tmp_path):
    root = make_repo(tmp_path / "sweep")
    backend = InMemoryBackend()
    assert step(root, backend).run().exit_code == 0
    [job] = backend.jobs.values()
    assert "mlr-commit" not in job.labels
    assert [r.commit for r in read_ledger(root / "runs" / "ledger.jsonl") if getattr(r, "iter", None)] == [None, None]


# --- 4. a stale intent after its job's row never freezes the campaign -----------------------------------------------


def test_a_stale_intent_after_the_jobs_row_never_freezes_the_campaign(tmp_path):
    """Two runs raced (or a ledger writer planted it): the merge of a rejected push appends the loser's ``proposed``
    row for an iter after the winner's ``submitted`` row with the job's id. The intent must not undo the job: the
    job is still counted, its result recorded, and the campaign runs to its stop, never stuck "in flight"."""
    from simulate import finish_jobs

    root = make_repo(tmp_path / "repo", with_(ENVELOPE, max_jobs=4, max_parallel=2))
    backend = InMemoryBackend()
    first = step(root, backend)
    first.run()  # iters 1 and 2: intents, then submitted with their job ids
    rows = read_ledger(root / "runs" / "ledger.jsonl")
    stale = [r for r in rows if getattr(r, "status", None) == "proposed"]
    assert [r.iter for r in stale] == [1, 2]
    with (root / "runs" / "ledger.jsonl").open("a") as ledger:  # the loser's intents, merged after the winner's rows
        for row in stale:
            ledger.write(row.model_copy(update={"ts": "2026-01-01T00:00:09+00:00"}).model_dump_json() + "\n")
    for _ in range(8):
        finish_jobs(backend)
        result = step(root, backend).run()
        if result.stopped:
            break
    state = fold(read_ledger(root / "runs" / "ledger.jsonl"))
    assert state.stopped is not None and state.stopped.reason == "budget", [e.status for e in state.experiments.values()]
    assert len(backend.jobs) == 4 and all(e.status == "completed" for e in state.experiments.values())
