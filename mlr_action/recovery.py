"""The seed's out-of-memory policy, as a pure function of the program and the campaign state.

Guarantees:

- :func:`recovery_proposal` returns a proposal only when the most recent
  finished experiment failed with an out-of-memory error (:func:`looks_like_oom`)
  and no recovery of that experiment was proposed yet; otherwise None.
- The proposal is the failed config with the first remedy that applies, in
  the seed's order: halve the per-device batch size and double gradient
  accumulation (when those params exist); turn on gradient checkpointing;
  move to the next larger allowed flavor (in :data:`flavors.KNOWN_FLAVORS`
  order). Nothing else changes: not the model, dataset, method, sequence
  length or any other param, and not the timeout.
- A remedy is used only when its result passes
  :func:`mlr_action.decide.proposal_problems` (inside the search space, the
  envelope and the budget; never the identical config on the same flavor
  that already failed) and has not been tried before; when none is left,
  None, and the proposer decides what comes next.
"""

from __future__ import annotations

import re
from typing import Any

from mlr_action.budget import Usage
from mlr_action.flavors import KNOWN_FLAVORS
from mlr_action.ledger import ExperimentRow
from mlr_action.program import Program
from mlr_action.proposal import Proposal
from mlr_action.state import CampaignState, config_key

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
_RECOVERS = re.compile(r"^recovery of iter (\d+)\b")
_ON = (True, "true", "True", 1, "1", "yes", "on")


def looks_like_oom(error: str | None) -> bool:
    """Does this error text (status message plus log tail) say the job ran out of memory?"""
    return bool(error) and _OOM.search(error) is not None


def recovered_iter(row: ExperimentRow) -> int | None:
    """The iter a recovery experiment retried, from the reason it was proposed with."""
    match = _RECOVERS.match(row.reason or "") if row.proposer == PROPOSER else None
    return int(match.group(1)) if match else None


def recovery_proposal(
    program: Program, state: CampaignState, *, used: Usage, prices: dict[str, float] | None = None
) -> Proposal | None:
    """The next experiment the OOM policy asks for, or None (see the module docstring)."""
    from mlr_action.decide import proposal_problems

    failed = _oom_to_recover(state)
    if failed is None:
        return None
    flavor = failed.flavor or program.default_flavor
    tried = {(config_key(e.config), e.flavor or program.default_flavor) for e in state.experiments.values()}
    for remedy in (_smaller_batch, _checkpointing, _bigger_flavor):
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


def _bigger_flavor(program: Program, config: dict[str, Any], flavor: str) -> tuple[dict, str, str] | None:
    order = {name: i for i, name in enumerate(KNOWN_FLAVORS)}
    current = order.get(flavor, -1)
    larger = sorted((f for f in program.envelope.allowed_flavors if order.get(f, -1) > current), key=order.__getitem__)
    if not larger:
        return None
    return config, larger[0], f"the next larger allowed flavor, {larger[0]} instead of {flavor}"
