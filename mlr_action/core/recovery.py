"""The seed's out-of-memory policy, as a pure function of the program and the campaign state.

Guarantees:

- :func:`recovery_proposal` returns a proposal only when the most recent
  finished experiment failed with an out-of-memory error (:func:`looks_like_oom`)
  and no recovery of that experiment was proposed yet; otherwise None.
- The proposal is the failed config with the first remedy that applies, in
  the seed's order: halve the per-device batch size and double gradient
  accumulation (when those params exist); turn on gradient checkpointing;
  move to a larger allowed flavor. Nothing else changes: not the model,
  dataset, method, sequence length or any other param, and not the timeout.
- A larger flavor has more memory *of the kind that ran out*
  (:func:`memory_kinds`): GPU memory per accelerator for a CUDA-style
  out-of-memory error, RAM for a killed process (``OOMKilled``, exit code
  137, ``MemoryError``), both when the text does not say which; and no less
  of the other kind. The memory comes from the live hardware catalog when the
  step has it, else from :data:`flavors.BUILTIN_MEMORY`; a flavor whose memory
  is unknown is never moved to or from. Of those, the cheapest is taken (the
  smallest step on a tie): never a pricier flavor with less memory, and never
  several GPUs standing in for a bigger one.
- A remedy is used only when its result passes
  :func:`mlr_action.core.admission.proposal_problems` (inside the search space, the
  envelope and the budget; never the identical config on the same flavor
  that already failed) and has not been tried before; when none is left,
  None, and the proposer decides what comes next.
"""

from __future__ import annotations

import re
from typing import Any

from mlr_action.core.budget import Usage
from mlr_action.core.flavors import FlavorMemory, memory_of, price_per_hour
from mlr_action.core.ledger import ExperimentRow
from mlr_action.core.program import Program
from mlr_action.core.proposal import Proposal
from mlr_action.core.state import CampaignState, config_key

BATCH_PARAMS = ("per_device_train_batch_size", "train_batch_size", "batch_size", "per_device_batch_size",
                "micro_batch_size")
ACCUMULATION_PARAMS = ("gradient_accumulation_steps", "grad_accum", "gradient_accumulation", "accumulation_steps")
CHECKPOINTING_PARAMS = ("gradient_checkpointing",)
PROPOSER = "recovery"
_OOM = re.compile(
    r"out of memory|OutOfMemory|\bOOM\b|OOM-?Killed|MemoryError|Cannot allocate memory|CUBLAS_STATUS_ALLOC_FAILED"
    r"|exit(?:ed)?(?: with)?(?: status| code)?:?\s*137\b",
    re.IGNORECASE,
)
# Which memory ran out. GPU first: torch.OutOfMemoryError ends in "MemoryError" too.
_GPU_OOM = re.compile(
    r"CUDA out of memory|CUDA error: out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED"
    r"|HIP out of memory|MPS backend out of memory|out of memory on device|RESOURCE_EXHAUSTED",
    re.IGNORECASE,
)
_RAM_OOM = re.compile(
    r"OOM-?Killed|(?<!OutOf)MemoryError|Cannot allocate memory|std::bad_alloc|exit(?:ed)?(?: with)?(?: status| code)?:?\s*137\b",
    re.IGNORECASE,
)
_RECOVERS = re.compile(r"^recovery of iter (\d+)\b")
_ON = (True, "true", "True", 1, "1", "yes", "on")


def looks_like_oom(error: str | None) -> bool:
    """Does this error text (status message plus log tail) say the job ran out of memory?"""
    return bool(error) and _OOM.search(error) is not None


def memory_kinds(error: str | None) -> frozenset[str]:
    """The memory an out-of-memory error says ran out: {"gpu"}, {"ram"}, or both when it does not tell."""
    gpu, ram = bool(_GPU_OOM.search(error or "")), bool(_RAM_OOM.search(error or ""))
    if gpu != ram:
        return frozenset({"gpu"} if gpu else {"ram"})
    return frozenset({"gpu", "ram"})


def recovered_iter(row: ExperimentRow) -> int | None:
    """The iter a recovery experiment retried, from the reason it was proposed with."""
    match = _RECOVERS.match(row.reason or "") if row.proposer == PROPOSER else None
    return int(match.group(1)) if match else None


def recovery_proposal(
    program: Program, state: CampaignState, *, used: Usage, prices: dict[str, float] | None = None,
    memory: dict[str, FlavorMemory] | None = None,
) -> Proposal | None:
    """The next experiment the OOM policy asks for, or None (see the module docstring).

    ``memory`` is the live hardware catalog's memory per flavor, when the step has it.
    """
    from mlr_action.core.admission import proposal_problems

    failed = _oom_to_recover(state)
    if failed is None:
        return None
    flavor = failed.flavor or program.default_flavor
    tried = {(config_key(e.config), e.flavor or program.default_flavor) for e in state.experiments.values()}
    bigger = _bigger_flavor(memory_kinds(failed.error), memory, prices)
    for remedy in (_smaller_batch, _checkpointing, bigger):
        change = remedy(program, dict(failed.config), flavor)
        if change is None:
            continue
        config, new_flavor, what = change
        proposal = Proposal(
            config=config, flavor=new_flavor, timeout_s=failed.charged_timeout_s or None, proposer=PROPOSER,
            hypothesis=f"iter {failed.iter} ran out of memory; the same experiment with {what} should fit",
            reason=f"recovery of iter {failed.iter} (out of memory): {what}; nothing else changed",
        )
        if (config_key(config), new_flavor) in tried:
            continue
        if not proposal_problems(program, state, proposal, used=used, prices=prices):
            return proposal
    return None


def _oom_to_recover(state: CampaignState) -> ExperimentRow | None:
    finished = state.finished
    if not finished:
        return None
    last = finished[-1]
    if last.status != "error" or not looks_like_oom(last.error):
        return None
    if any(recovered_iter(e) == last.iter for e in state.experiments.values()):
        return None
    return last


def _param(program: Program, config: dict[str, Any], names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in config and n in program.campaign.params), None)


def _whole(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        return None
    return int(value)


def _smaller_batch(program: Program, config: dict[str, Any], flavor: str) -> tuple[dict, str, str] | None:
    batch = _param(program, config, BATCH_PARAMS)
    size = _whole(config.get(batch)) if batch else None
    if batch is None or size is None or size < 2:
        return None
    space = program.campaign.params
    config[batch] = type(config[batch])(size // 2)
    if not space[batch].contains(config[batch]):
        return None
    what = f"{batch} halved to {config[batch]}"
    accum = _param(program, config, ACCUMULATION_PARAMS)
    steps = _whole(config.get(accum)) if accum else None
    if accum is not None:
        if steps is None:
            return None
        config[accum] = type(config[accum])(steps * 2)
        if not space[accum].contains(config[accum]):
            return None  # the effective batch would change: leave it to the next remedy
        what += f" and {accum} doubled to {config[accum]}"
    return config, flavor, what


def _checkpointing(program: Program, config: dict[str, Any], flavor: str) -> tuple[dict, str, str] | None:
    name = _param(program, config, CHECKPOINTING_PARAMS)
    if name is None or config[name] in _ON:
        return None
    choices = program.campaign.params[name].choices or []
    on = next((c for c in choices if any(type(c) is type(o) and c == o for o in _ON)), None)
    if on is None:
        return None
    config[name] = on
    return config, flavor, f"{name} turned on"


def _bigger_flavor(kinds: frozenset[str], memory: dict[str, FlavorMemory] | None, prices: dict[str, float] | None):
    """The remedy that moves to the cheapest allowed flavor with more of the memory in ``kinds`` and no less of any."""

    def remedy(program: Program, config: dict[str, Any], flavor: str) -> tuple[dict, str, str] | None:
        now = memory_of(flavor, memory)
        if now is None:
            return None
        need = kinds if now.gpus else kinds - {"gpu"}  # a CPU flavor's OOM is a RAM one
        larger = [(f, m) for f in program.envelope.allowed_flavors
                  if f != flavor and (m := memory_of(f, memory)) is not None and _more(m, now, need or {"ram"})]
        if not larger:
            return None
        name, got = min(larger, key=lambda fm: (price_per_hour(fm[0], prices), fm[1].gpu_gb, fm[1].ram_gb, fm[0]))
        what = " and ".join(_amount(k, now, got) for k in sorted(need or {"ram"}))
        return config, name, f"a flavor with more memory, {name} instead of {flavor} ({what})"

    return remedy


def _more(m: FlavorMemory, now: FlavorMemory, need: frozenset[str] | set[str]) -> bool:
    """More of every kind in ``need``, and no less of either kind."""
    if m.ram_gb < now.ram_gb or m.gpu_gb < now.gpu_gb:
        return False
    return ("ram" not in need or m.ram_gb > now.ram_gb) and ("gpu" not in need or m.gpu_gb > now.gpu_gb)


def _amount(kind: str, now: FlavorMemory, got: FlavorMemory) -> str:
    if kind == "gpu":
        return f"{got.gpu_gb:g} GB of GPU memory per accelerator instead of {now.gpu_gb:g}"
    return f"{got.ram_gb:g} GB of RAM instead of {now.ram_gb:g}"
