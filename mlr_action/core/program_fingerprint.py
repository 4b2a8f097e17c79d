"""The approval's fingerprint: a short hash of what program.md's two blocks mean.

Guarantees: the fingerprint changes when the envelope or the campaign a reviewer approved changes, and never
when a release reads them: a key hashed since the first fingerprint counts with its default too (ledgers
carry those fingerprints), a key added since only when it is not at its default. So a release that adds a
key leaves the fingerprint of a program.md that does not set it as it was, and a stopped campaign does not
resume for an upgrade (:func:`mlr_action.core.decide.resumption`). Pure: pydantic models in, a string out.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# The keys the fingerprint has hashed since it began (ccaebc9 to 236b7bb), defaults included: kept so, since
# ledgers carry those fingerprints. A key not listed counts only when it is not at its default.
FINGERPRINTED: dict[str, tuple[str, ...]] = {
    "Envelope": ("max_jobs", "max_walltime", "allowed_flavors", "max_timeout", "allow_deletes", "output_repos",
                 "max_cost_usd", "max_parallel", "max_llm_usd"),
    "Campaign": ("metric", "direction", "target", "patience", "script", "params", "fixed", "flavor", "timeout",
                 "name", "seed", "namespace"),
    "ParamSpec": ("type", "low", "high", "log", "step", "choices"),
}
# What the releases with issues 11 and 15 (a05383a to 12c715a) hashed: every key of theirs, its default too.
FINGERPRINTED_WITH_DEFAULTS: dict[str, tuple[str, ...]] = {
    **FINGERPRINTED,
    "Campaign": (*FINGERPRINTED["Campaign"], "min_delta", "image", "dependencies", "python", "final",
                 "scheduling_timeout"),
    "FinalEvaluation": ("repeats", "seed_param", "seeds", "fixed", "metric", "flavor", "timeout"),
}


def fingerprint_of(parts: tuple[BaseModel, ...], always: dict[str, tuple[str, ...]]) -> str:
    """The first 12 hex digits of the SHA-256 of ``parts`` (the envelope, the campaign), keys as ``always`` says."""
    import hashlib

    blob = "".join(part.model_dump_json(exclude=_unwritten(part, always) or None) for part in parts)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _unwritten(model: BaseModel, always: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """pydantic's ``exclude`` for ``model``: every key not in ``always`` that is at its default, at every depth."""
    out: dict[str, Any] = {}
    kept = always.get(type(model).__name__, ())
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if name not in kept and value == field.get_default(call_default_factory=True):
            out[name] = True
        elif isinstance(value, BaseModel):
            out[name] = _unwritten(value, always) or None
        elif isinstance(value, dict):
            out[name] = {k: inner for k, v in value.items() if isinstance(v, BaseModel)
                         and (inner := _unwritten(v, always))} or None
    return {k: v for k, v in out.items() if v}
