"""The campaign's search space as the search proposer sees it, without optuna.

Guarantees: every function here is pure. Values are coerced to the declared
type (ints are ``int``, floats inside ``[low, high]`` on the ``step`` grid or
rounded to 4 significant digits, categoricals the declared value itself);
:func:`space_key` compares configs over the current params only; the unit
cube mapping (:func:`to_unit`, :func:`from_unit`) is what the model works in.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from typing import Any

from mlr_action.core.state import config_key


def choice_index(spec, value: Any) -> int:
    """Where ``value`` stands in ``spec.choices``, by type and value (``1`` is not ``True``)."""
    return next(i for i, c in enumerate(spec.choices) if type(c) is type(value) and c == value)


def coerce(spec, value: Any) -> Any:
    """``value`` as this dimension's type, or ``None`` when it is not a legal value."""
    if value is None or not spec.contains(value):
        return None
    if spec.kind == "categorical":
        return spec.choices[choice_index(spec, value)]
    return int(value) if spec.kind == "int" else float(f"{value:.12g}")  # 0.30000000000000004 is 0.3


def space_key(params: dict, config: dict[str, Any]) -> str:
    """:func:`config_key` of ``config`` over the current ``params``: extra keys ignored, numbers typed."""
    projected = {}
    for name, spec in params.items():
        if name in config:
            typed = coerce(spec, config[name])
            projected[name] = config[name] if typed is None else typed
    return config_key(projected)


def int_step(spec) -> int:
    return max(1, int(round(spec.step))) if spec.step else 1


def finish_value(spec, value: float) -> Any:
    """Clamp, snap to the step grid and type a raw numeric value."""
    low, high = spec.low, spec.high
    value = min(max(value, low), high)
    if spec.kind == "int":
        step = int_step(spec)
        snapped = int(low) + int(round((value - low) / step)) * step
        return snapped if snapped <= high else snapped - step
    if spec.step:
        k = round((value - low) / spec.step)
        snapped = low + k * spec.step
        snapped = snapped if snapped <= high + 1e-12 else low + (k - 1) * spec.step
        return float(f"{snapped:.10g}")
    return min(max(float(f"{value:.4g}"), low), high)


def bounds(spec) -> tuple[float, float]:
    """The numeric range on the sampling scale; ints half a unit wider so each end gets its share."""
    low, high = spec.low, spec.high
    if spec.kind == "int":  # log ints have low >= 1, so low stays positive
        low, high = low - 0.5 + 1e-9, high + 0.5 - 1e-9
    return (math.log(low), math.log(high)) if spec.log else (low, high)


def from_unit(spec, u: float) -> Any:
    """Map ``u`` in [0, 1] to a value of the dimension (on the log scale when ``log``)."""
    u = min(max(u, 0.0), 1.0)
    if spec.kind == "categorical":
        return spec.choices[min(int(u * len(spec.choices)), len(spec.choices) - 1)]
    low, high = bounds(spec)
    raw = low + u * (high - low)
    return finish_value(spec, math.exp(raw) if spec.log else raw)


def to_unit(spec, value: Any) -> list[float]:
    """The model's coordinates of a value: one in [0, 1], or a one-hot vector for choices."""
    if spec.kind == "categorical":
        return [1.0 if type(c) is type(value) and c == value else 0.0 for c in spec.choices]
    low, high = bounds(spec)
    return [((math.log(value) if spec.log else value) - low) / (high - low)]


def encode(params: dict, config: dict[str, Any]) -> list[float]:
    return [u for name, spec in params.items() for u in to_unit(spec, config[name])]


def finite_values(spec) -> list[Any] | None:
    """Every value of a discrete dimension, or ``None`` for a continuous one."""
    if spec.kind == "categorical":
        return list(spec.choices)
    if spec.kind == "int":
        return list(range(int(spec.low), int(spec.high) + 1, int_step(spec)))
    if spec.step:
        n = int(math.floor((spec.high - spec.low) / spec.step + 1e-9)) + 1
        return [finish_value(spec, spec.low + k * spec.step) for k in range(n)]
    return None


def latin_hypercube(params: dict, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` configs spread over the space: the maximin of a few seeded Latin hypercubes."""
    rng = random.Random(seed)
    best, best_gap = [], -1.0
    for _ in range(32):
        columns = []
        for _name in params:
            strata = [(i + rng.random()) / n for i in range(n)]
            rng.shuffle(strata)
            columns.append(strata)
        points = list(zip(*columns))
        gap = min((math.dist(a, b) for a, b in itertools.combinations(points, 2)), default=0.0)
        if gap > best_gap:
            best, best_gap = points, gap
    return [{name: from_unit(spec, u) for (name, spec), u in zip(params.items(), p)} for p in best]


def derive_seed(*parts: int) -> int:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
