"""A ledger-branch writer edits runs/ledger.jsonl between ticks: spend stays what the backend says it is.

The attacker may push anything to the ledger (branch): delete rows, lower the
durations, costs and timeouts on them, drop the ``stopped`` row, start the
campaign afresh under another name, or mark jobs in flight as finished to free
``max_parallel`` slots. After every tick the backend's own record (every job it
created, whatever its labels) must fit the merged envelope: at most
``max_jobs`` jobs, their walltime and dollars within ``max_walltime`` and
``max_cost_usd``, never more than ``max_parallel`` jobs live at once.

Two worlds: the in-memory backend driven through :class:`Step`, and the hf
backend over the loopback HF Jobs API driven through the CLI (``mlr step
--backend hf``), as a workflow would run it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
from programs import program_text, with_
from reliability import OPEN, GridProposer, RanJob, charged_truth, memory_truth
from simulate import FakeClock

from mlr_action.core.jobs import JobStage
from mlr_action.backends.memory import InMemoryBackend
from mlr_action.core.flavors import price_per_hour
from mlr_action.forges.files import FileForge
from mlr_action.shell.step import Step

TOKEN = "hf_" + "FakeLoopbackToken0123456789abcdef"  # built, so no token-shaped literal is committed
# Binding on walltime: a job runs 50 minutes, its timeout is an hour; three fit in 3h with 10% kept back.
ENVELOPE = {"max_jobs": 8, "max_walltime": "3h", "allowed_flavors": ["a10g-large"], "max_timeout": "1h",
            "allow_deletes": False, "output_repos": ["me/sweep-*"], "max_parallel": 1, "max_cost_usd": 6}
CAMPAIGN = with_(OPEN, flavor="a10g-large", timeout="1h")
RAN_S = 3000
TICKS = 14


# --- what the attacker does to the ledger between ticks -------------------------------------------

Rows = list[dict]


def delete_rows(rows: Rows) -> Rows:
    return []


def lower_charges(rows: Rows) -> Rows:
    for row in rows:
        if "iter" in row:
            row.update(timeout="1m", timeout_s=60)
            if row.get("duration_s") is not None or row.get("status") in ("completed", "error", "canceled"):
                row.update(duration_s=0.0, cost_usd=0.0)
        if "llm_usd" in row:
            row["llm_usd"] = 0.0
    return rows


def drop_stopped(rows: Rows) -> Rows:
    return [r for r in rows if r.get("event") != "stopped"]


def rename_campaign(rows: Rows) -> Rows:
    """A fresh campaign under another id: one ``started`` row naming it, nothing else."""
    return [{"event": "started", "ts": "2026-01-01T00:00:00+00:00", "campaign": "sweep-fresh"}]


def mark_finished(rows: Rows) -> Rows:
    latest: dict[int, dict] = {}
    for row in rows:
        if "iter" in row:
            latest[row["iter"]] = row
    for row in latest.values():
        if row.get("status") in ("proposed", "submitted", "running") and row.get("job_id"):
            rows.append({**row, "status": "completed", "metric": 0.1, "decision": "discard", "duration_s": 1.0,
                         "cost_usd": 0.0})
    return rows


def everything(rows: Rows) -> Rows:
    return mark_finished(lower_charges(drop_stopped(rows)))


ATTACKS: dict[str, Callable[[Rows], Rows]] = {
    "delete-rows": delete_rows, "lower-charges": lower_charges, "drop-stopped": drop_stopped,
    "rename-campaign": rename_campaign, "mark-finished": mark_finished, "everything": everything,
}


def attack(root: Path, edit: Callable[[Rows], Rows]) -> None:
    path = root / "runs" / "ledger.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    path.write_text("".join(json.dumps(r) + "\n" for r in edit(rows)))


# --- the checks, on the backend's own record ---------------------------------------------------------


def assert_backend_within_envelope(jobs: list[RanJob], prices: dict[str, float] | None = None) -> None:
    from mlr_action.core.durations import parse_duration

    live = [j for j in jobs if not j.finished]
    assert len(live) <= ENVELOPE["max_parallel"], f"{len(live)} jobs live at once: {live}"
    assert len(jobs) <= ENVELOPE["max_jobs"], f"{len(jobs)} jobs: {jobs}"
    walltime = sum(charged_truth(j) for j in jobs)
    assert walltime <= parse_duration(ENVELOPE["max_walltime"]) + 1e-6, f"walltime {walltime}s: {jobs}"
    dollars = sum(price_per_hour(j.flavor, prices) * charged_truth(j) / 3600 for j in jobs)
    assert dollars <= ENVELOPE["max_cost_usd"] + 1e-6, f"${dollars:.2f}: {jobs}"


# --- the worlds ------------------------------------------------------------------------------------


def make_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "train.py").write_text("print('eval_accuracy=0.5')\n")
    (root / "program.md").write_text(program_text(ENVELOPE, CAMPAIGN))
    return root


class MemoryWorld:
    def __init__(self, root: Path) -> None:
        self.root, self.clock = root, FakeClock()
        self.backend = InMemoryBackend(clock=self.clock.seconds)

    def step(self) -> int:
        step = Step(root=self.root, backend=self.backend, proposer=GridProposer(), forge=FileForge(self.root),
                    clock=self.clock)
        return step.run().exit_code

    def jobs(self) -> list[RanJob]:
        return memory_truth(self.backend, self.clock.seconds())

    def move(self) -> None:
        """A job starts on the tick after its submit and finishes (after 50 minutes) on the one after that."""
        self.clock.advance(1800)
        for job in list(self.backend.jobs.values()):
            if job.stage is JobStage.SCHEDULING:
                self.backend.advance(job.job_id, JobStage.RUNNING)
            elif job.stage is JobStage.RUNNING:
                self.backend.advance(job.job_id, JobStage.COMPLETED, duration_s=RAN_S, logs="eval_accuracy=0.5\n")


class HubWorld:
    def __init__(self, root: Path, hub, monkeypatch) -> None:
        self.root, self.hub = root, hub
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)

    def step(self) -> int:
        from mlr_action.commands.cli import main

        return main(["step", "--repo", str(self.root), "--backend", "hf", "--proposer", "search"])

    def jobs(self) -> list[RanJob]:
        return [RanJob(j.id, int(j.labels["mlr-iter"]), j.spec["flavor"], int(j.spec["timeoutSeconds"]),
                       j.stage in ("COMPLETED", "ERROR", "CANCELED", "DELETED"), j.running_secs, j.stage == "CANCELED")
                for j in self.hub.jobs.values()]  # every job, whatever campaign its labels name

    def move(self) -> None:
        for job in list(self.hub.jobs.values()):
            if job.stage == "SCHEDULING":
                self.hub.advance(job.id, "RUNNING")
            elif job.stage == "RUNNING":
                self.hub.advance(job.id, "COMPLETED", logs="eval_accuracy=0.5", running_secs=RAN_S)


def run_attacked(world, edit: Callable[[Rows], Rows], prices=None) -> list[int]:
    codes = []
    for _ in range(TICKS):
        codes.append(world.step())
        assert_backend_within_envelope(world.jobs(), prices)
        attack(world.root, edit)
        world.move()
    return codes


@pytest.mark.parametrize("name", ATTACKS)
def test_a_ledger_writer_never_makes_the_memory_backend_spend_past_the_envelope(tmp_path, name):
    world = MemoryWorld(make_repo(tmp_path / "sweep"))
    run_attacked(world, ATTACKS[name])
    assert len(world.backend.jobs) >= 1


@pytest.fixture(scope="module")
def hub_server():
    pytest.importorskip("huggingface_hub")
    from loopback.hf_server import FakeHubServer

    with FakeHubServer(token=TOKEN) as hub:
        yield hub


@pytest.mark.parametrize("name", ATTACKS)
def test_a_ledger_writer_never_makes_hf_jobs_spend_past_the_envelope(tmp_path, monkeypatch, hub_server, name):
    hub_server.jobs.clear()
    world = HubWorld(make_repo(tmp_path / "sweep"), hub_server, monkeypatch)
    prices = {name: per_minute * 60 for name, per_minute, *_ in hub_server.hardware}
    codes = run_attacked(world, ATTACKS[name], prices)
    assert set(codes) <= {0, 2}, codes
    assert len(hub_server.jobs) >= 1


def test_without_an_attacker_the_campaign_uses_the_envelope(tmp_path):
    """The control: the same world with an honest ledger runs three jobs and stops on the budget."""
    world = MemoryWorld(make_repo(tmp_path / "sweep"))
    run_attacked(world, lambda rows: rows)
    assert len(world.backend.jobs) == 3


def test_status_says_its_budget_is_the_ledgers_view_and_the_step_notes_a_renamed_campaign(tmp_path, capsys):
    from mlr_action.commands.cli import main

    world = MemoryWorld(make_repo(tmp_path / "sweep"))
    world.step()
    attack(world.root, lambda rows: rows + rename_campaign([]))
    world.step()
    notes = [r for r in map(json.loads, (world.root / "runs" / "ledger.jsonl").read_text().splitlines())
             if r.get("reason") == "campaign-id"]
    assert len(notes) == 1 and "'sweep-fresh'" in notes[0]["detail"] and notes[0]["campaign"] == "sweep"
    assert {j.labels["mlr-campaign"] for j in world.backend.jobs.values()} == {"sweep"}
    assert main(["status", "--repo", str(world.root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["budget_source"] == "ledger" and status["campaign"] == "sweep"
    assert main(["status", "--repo", str(world.root)]) == 0
    assert "as the ledger records it" in capsys.readouterr().out


def test_hf_jobs_in_flight_are_charged_their_own_timeout_not_the_envelopes_worst(tmp_path, monkeypatch, hub_server):
    """HF does not report a job's timeout, so the job carries it in a label: three 1h jobs (each with the 10m it may
    spend starting) fit a 4h envelope whose max_timeout is 2h while they run, where charging each max_timeout would
    let only one run at a time."""
    hub_server.jobs.clear()
    root = tmp_path / "sweep"
    root.mkdir()
    (root / "train.py").write_text("print('eval_accuracy=0.5')\n")
    envelope = {**ENVELOPE, "max_walltime": "4h", "max_timeout": "2h", "max_parallel": 3, "max_cost_usd": 100}
    (root / "program.md").write_text(program_text(envelope, CAMPAIGN))
    world = HubWorld(root, hub_server, monkeypatch)
    world.step()
    # The ledger is gone, as after a lost push: only the backend's record says what runs and for how long.
    (root / "runs" / "ledger.jsonl").write_text("")
    world.step()
    live = [j for j in world.jobs() if not j.finished]
    assert len(live) == 3 and {j.timeout_s for j in live} == {3600}, live
    from mlr_action.backends.hf import HfBackend

    assert sorted(v.timeout_s for v in HfBackend().list_jobs(campaign="sweep")) == [3600, 3600, 3600]
    adopted = [json.loads(line) for line in (root / "runs" / "ledger.jsonl").read_text().splitlines()]
    assert sorted(r["timeout_s"] for r in adopted if r.get("job_id")) == [3600, 3600, 3600], adopted
    assert not any(r.get("reason") == "budget" for r in adopted)
