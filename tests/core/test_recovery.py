"""The out-of-memory policy (mlr_action.core.recovery), table-driven."""

from __future__ import annotations

import pytest

from mlr_action.core.budget import usage
from mlr_action.core.admission import proposal_problems
from mlr_action.core.ledger import EventRow, experiment_row
from mlr_action.core.program import parse_program
from mlr_action.core.flavors import FlavorMemory, memory_of
from mlr_action.core.recovery import looks_like_oom, memory_kinds, recovery_proposal
from mlr_action.core.state import fold
from programs import ENVELOPE, program_text, with_

SFT = {
    "metric": "eval_loss",
    "direction": "minimize",
    "script": "train.py",
    "params": {
        "lr": {"type": "float", "low": 1.0e-5, "high": 1.0e-3, "log": True},
        "per_device_train_batch_size": {"type": "int", "low": 1, "high": 64},
        "gradient_accumulation_steps": {"type": "int", "low": 1, "high": 16},
        "gradient_checkpointing": {"choices": [False, True]},
    },
    "fixed": {"model": "Qwen/Qwen2-0.5B", "dataset": "trl-lib/Capybara", "max_seq_length": 2048},
    "flavor": "t4-small",
    "timeout": "1h",
}
FLAVORS = with_(ENVELOPE, allowed_flavors=["t4-small", "a10g-small", "a10g-large"])
BASE = {"lr": 1e-4, "per_device_train_batch_size": 16, "gradient_accumulation_steps": 2, "gradient_checkpointing": False}
CUDA_OOM = "Job failed with exit code: 1\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"


def program(envelope=FLAVORS, campaign=SFT):
    return parse_program(program_text(envelope, campaign))


def done(iteration: int, config: dict, *, status="error", error=CUDA_OOM, flavor="t4-small", **extra):
    return experiment_row(iter=iteration, ts=f"t{iteration}", status=status, config=config, timeout_s=3600,
                          flavor=flavor, error=error if status == "error" else None, job_id=f"job-{iteration}",
                          decision="discard", **extra)


def recover(rows, prog=None):
    prog = prog or program()
    state = fold([EventRow(event="started", ts="t0", campaign="c"), *rows])
    proposal = recovery_proposal(prog, state, used=usage(state), prices=None)
    if proposal is not None:
        assert proposal_problems(prog, state, proposal, used=usage(state), prices=None) == []
        assert proposal.proposer == "recovery"
    return proposal


@pytest.mark.parametrize("text, oom", [
    (CUDA_OOM, True),
    ("OOMKilled", True),
    ("Job failed with exit code: 137", True),
    ("RuntimeError: CUDA error: out of memory", True),
    ("MemoryError", True),
    ("exit code 1\nRuntimeError: size mismatch", False),
    ("the job printed no `eval_loss=<number>` line", False),
    ("Job failed with exit code: 1", False),
    ("", False),
    (None, False),
])
def test_looks_like_oom(text, oom) -> None:
    assert looks_like_oom(text) is oom


@pytest.mark.parametrize("failed, flavor, expected, expected_flavor", [
    # halve the batch, double accumulation: the effective batch stays the same
    (BASE, "t4-small", {**BASE, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 4}, "t4-small"),
    # the batch cannot be halved: gradient checkpointing
    ({**BASE, "per_device_train_batch_size": 1}, "t4-small", {**BASE, "per_device_train_batch_size": 1, "gradient_checkpointing": True}, "t4-small"),
    # accumulation cannot be doubled inside the space: checkpointing rather than a smaller effective batch
    ({**BASE, "gradient_accumulation_steps": 16}, "t4-small", {**BASE, "gradient_accumulation_steps": 16, "gradient_checkpointing": True}, "t4-small"),
    # nothing left to shrink: the cheapest allowed flavor with more GPU memory, same config
    ({**BASE, "per_device_train_batch_size": 1, "gradient_checkpointing": True}, "t4-small",
     {**BASE, "per_device_train_batch_size": 1, "gradient_checkpointing": True}, "a10g-small"),
])
def test_each_remedy_in_the_seeds_order(failed, flavor, expected, expected_flavor) -> None:
    proposal = recover([done(1, failed, flavor=flavor)])
    assert proposal.config == expected
    assert (proposal.flavor, proposal.timeout_s) == (expected_flavor, 3600)
    assert proposal.reason.startswith("recovery of iter 1 (out of memory)")


@pytest.mark.parametrize("rows", [
    pytest.param([done(1, BASE, status="completed", metric=1.2)], id="last one completed"),
    pytest.param([done(1, BASE, error="RuntimeError: size mismatch")], id="not out of memory"),
    pytest.param([done(1, BASE), done(2, {**BASE, "lr": 2e-4}, status="completed", metric=1.0)], id="a later one finished"),
    pytest.param([done(1, BASE), done(2, {**BASE, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 4},
                                      status="running", proposer="recovery", reason="recovery of iter 1 (out of memory): x")],
                 id="already being recovered"),
    pytest.param([done(1, {**BASE, "per_device_train_batch_size": 1, "gradient_checkpointing": True}, flavor="a10g-large")],
                 id="nothing left to try"),
    # a10g-large has more RAM than a10g-small but the same 24 GB GPU: no help for a CUDA out-of-memory error
    pytest.param([done(1, {**BASE, "per_device_train_batch_size": 1, "gradient_checkpointing": True}, flavor="a10g-small")],
                 id="no allowed flavor has more GPU memory"),
    pytest.param([], id="nothing finished"),
])
def test_no_recovery(rows) -> None:
    assert recover(rows) is None


def test_a_recovery_that_ran_out_of_memory_too_is_recovered_in_turn() -> None:
    halved = {**BASE, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 4}
    rows = [done(1, BASE), done(2, halved, proposer="recovery", reason="recovery of iter 1 (out of memory): x")]
    proposal = recover(rows)
    assert proposal.config == {**halved, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 8}
    assert proposal.reason.startswith("recovery of iter 2")


def test_a_remedy_already_tried_is_skipped_for_the_next() -> None:
    halved = {**BASE, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 4}
    rows = [done(1, halved, status="completed", metric=1.1), done(2, BASE)]
    assert recover(rows).config == {**BASE, "gradient_checkpointing": True}


def test_only_the_batch_size_when_there_is_no_accumulation_param() -> None:
    campaign = with_(SFT, params={k: v for k, v in SFT["params"].items() if k != "gradient_accumulation_steps"})
    failed = {k: v for k, v in BASE.items() if k != "gradient_accumulation_steps"}
    assert recover([done(1, failed)], program(campaign=campaign)).config == {**failed, "per_device_train_batch_size": 8}


def test_plain_batch_size_and_grad_accum_names_are_recognised() -> None:
    params = {"batch_size": {"type": "int", "low": 2, "high": 64}, "grad_accum": {"choices": [1, 2, 4]}}
    campaign = with_(SFT, params=params)
    assert recover([done(1, {"batch_size": 32, "grad_accum": 2})], program(campaign=campaign)).config == {"batch_size": 16, "grad_accum": 4}


def test_a_bigger_flavor_the_budget_cannot_afford_is_not_proposed() -> None:
    poor = with_(FLAVORS, max_cost_usd=1.0)  # t4-small for 1h fits ($0.40), a10g-small does not fit with the reserve
    failed = {**BASE, "per_device_train_batch_size": 1, "gradient_checkpointing": True}
    assert recover([done(1, failed)], program(envelope=poor)) is None


def test_the_same_config_on_a_larger_flavor_is_not_the_identical_failing_thing() -> None:
    prog = program()
    state = fold([EventRow(event="started", ts="t0", campaign="c"), done(1, BASE)])
    from mlr_action.core.proposal import Proposal

    same = proposal_problems(prog, state, Proposal(config=BASE, flavor="t4-small"), used=usage(state), prices=None)
    bigger = proposal_problems(prog, state, Proposal(config=BASE, flavor="a10g-small"), used=usage(state), prices=None)
    assert any("already failed" in p for p in same) and bigger == []


SHRUNK = {**BASE, "per_device_train_batch_size": 1, "gradient_checkpointing": True}  # nothing left but the flavor


@pytest.mark.parametrize("text, kinds", [
    (CUDA_OOM, {"gpu"}),
    ("RuntimeError: CUDA error: out of memory", {"gpu"}),
    ("torch.cuda.OutOfMemoryError: HIP out of memory", {"gpu"}),
    ("RuntimeError: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate(handle)", {"gpu"}),
    ("OOMKilled", {"ram"}),
    ("Job failed with exit code: 137", {"ram"}),
    ("MemoryError\nUnable to allocate 12.0 GiB for an array", {"ram"}),
    ("OSError: [Errno 12] Cannot allocate memory", {"ram"}),
    ("out of memory", {"gpu", "ram"}),  # it does not say which: more of both
    ("OOMKilled\ntorch.OutOfMemoryError: CUDA out of memory", {"gpu", "ram"}),
])
def test_which_memory_ran_out(text, kinds) -> None:
    assert memory_kinds(text) == kinds


@pytest.mark.parametrize("allowed, flavor, error, expected", [
    # GPU memory per accelerator: four 24 GB A10Gs are not a bigger GPU than one 48 GB L40S, and cost more
    (["l40sx1", "a10g-largex2", "a10g-largex4"], "l40sx1", CUDA_OOM, None),
    (["a10g-large", "a10g-largex2", "l40sx1", "a100-large"], "a10g-large", CUDA_OOM, "l40sx1"),  # cheapest with more
    (["a10g-large", "a10g-largex4", "a100-large"], "a10g-large", CUDA_OOM, "a100-large"),
    # RAM ran out: more RAM, and never less GPU memory (a10g-small has as little RAM as t4-small)
    (["t4-small", "a10g-small", "t4-medium"], "t4-small", "OOMKilled", "t4-medium"),
    (["t4-small", "cpu-xl"], "t4-small", "OOMKilled", None),  # more RAM, but no GPU at all
    (["cpu-basic", "cpu-upgrade", "t4-small"], "cpu-basic", "Job failed with exit code: 137", "cpu-upgrade"),
    (["cpu-basic", "cpu-upgrade"], "cpu-basic", "out of memory", "cpu-upgrade"),  # a CPU job's OOM is a RAM one
    # it does not say which: more of both
    (["t4-small", "a10g-small", "a10g-large"], "t4-small", "killed: out of memory", "a10g-large"),
])
def test_a_bigger_flavor_has_more_of_the_memory_that_ran_out(allowed, flavor, error, expected) -> None:
    prog = program(envelope=with_(ENVELOPE, allowed_flavors=allowed), campaign=with_(SFT, flavor=allowed[0]))
    proposal = recover([done(1, SHRUNK, flavor=flavor, error=error)], prog)
    assert (proposal.flavor if proposal else None) == expected
    if proposal:
        assert proposal.config == SHRUNK and "instead of" in proposal.reason


def test_the_live_catalogs_memory_decides_over_the_built_in_table() -> None:
    prog = program()  # t4-small, a10g-small, a10g-large
    state = fold([EventRow(event="started", ts="t0", campaign="c"), done(1, SHRUNK)])
    assert recovery_proposal(prog, state, used=usage(state)).flavor == "a10g-small"  # the table: 24 GB, the cheapest
    # the catalog says a10g-small has no more GPU memory than a T4, and a10g-large has 32 GB
    live = {"t4-small": FlavorMemory(15, 16, 1), "a10g-small": FlavorMemory(15, 16, 1), "a10g-large": FlavorMemory(46, 32, 1)}
    assert recovery_proposal(prog, state, used=usage(state), memory=live).flavor == "a10g-large"


def test_a_flavor_of_unknown_memory_is_never_a_step() -> None:
    prog = program(envelope=with_(ENVELOPE, allowed_flavors=["t4-small", "a10g-small"]))
    state = fold([EventRow(event="started", ts="t0", campaign="c"), done(1, SHRUNK)])
    live = {"t4-small": FlavorMemory(15, 16, 1)}  # a10g-small missing from the catalog: the built-in table stands in
    assert recovery_proposal(prog, state, used=usage(state), memory=live).flavor == "a10g-small"
    assert memory_of("no-such-flavor", live) is None


# allow_deletes: see test_ledger_rows_are_data.py (the backend's record decides, never a ledger row).
