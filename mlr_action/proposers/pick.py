"""Picking the next config: candidates over the space, scored by expected improvement times success.

Guarantees: deterministic for a given random generator; never returns a
config ``is_new`` rejects; every config returned is in the space and typed
(built by :func:`mlr_action.proposers.space.from_unit`). numpy is imported
inside each function.

How (see :mod:`mlr_action.proposers.gp` for the model):

- Candidates: uniform samples of the whole space, plus a trust region around
  the three best points by posterior mean: Gaussian steps at several scales,
  each param's step proportional to its fitted length scale (a param the model
  finds irrelevant moves freely, a sensitive one finely), with a categorical
  switched now and then. The best candidates are then refined by a second,
  finer round around themselves.
- Score: ``log EI + log P(success)``. EI is of the posterior mean's best at a
  tried point (robust to a lucky noisy value), computed in log space so
  candidates far in the tail still rank; P(success) comes from
  :class:`mlr_action.proposers.gp.FailureModel` over every finished
  experiment (constrained expected improvement), and a candidate more likely
  than ``FAILURE_CAP`` to fail comes after every one that is not: failed jobs
  (diverged, out of memory, no metric) push the search away from where they
  happened, even when the best results sit right next to them.
"""

from __future__ import annotations

import itertools
from typing import Any

from mlr_action.proposers.gp import FailureModel, GaussianProcess, log_expected_improvement, model_subset, warp_targets
from mlr_action.proposers.space import bounds, choice_index, from_unit, int_step, to_unit

N_CANDIDATES = 1000  # uniform candidates scored by the acquisition
N_LOCAL = 100  # trust-region candidates per anchor and scale
LOCAL_SCALES = (0.03, 0.08, 0.2)  # trust-region step sizes (unit-cube sd at the mean length scale)
N_REFINE = 5  # best candidates refined by a finer local round
FAILURE_WEIGHT = 1.0  # exponent of P(success) in the score
FAILURE_CAP = 0.2  # candidates more likely than this to fail come last
# The GP is cubic in its points: past this many finished experiments it is fit
# on the best half and the most recent half of them, so a step stays fast on a
# campaign of thousands of rows (see docs/BENCHMARKS.md, figure 1).
MAX_MODEL_POINTS = 200


def groups(params: dict) -> list[list[int]]:
    """The model's columns of each param: one per number, one per choice."""
    out, at = [], 0
    for spec in params.values():
        width = len(spec.choices) if spec.kind == "categorical" else 1
        out.append(list(range(at, at + width)))
        at += width
    return out


def unit_of(spec, value: Any) -> float:
    """One coordinate per param: the inverse of :func:`from_unit` (a choice sits mid-bucket)."""
    if spec.kind == "categorical":
        return (choice_index(spec, value) + 0.5) / len(spec.choices)
    return to_unit(spec, value)[0]


def _snap(spec, u):
    """A column of coordinates moved to where :func:`from_unit` lands (grid, ints, buckets)."""
    import numpy as np

    u = np.clip(u, 0.0, 1.0)
    if spec.kind == "categorical":
        k = len(spec.choices)
        return (np.minimum(np.floor(u * k), k - 1) + 0.5) / k
    if spec.kind == "float" and not spec.step:
        return u  # only the 4-digit rounding, too small to matter to the model
    low, high = bounds(spec)
    raw = low + u * (high - low)
    value = np.exp(raw) if spec.log else raw
    step = int_step(spec) if spec.kind == "int" else spec.step
    value = spec.low + np.round((np.clip(value, spec.low, spec.high) - spec.low) / step) * step
    value = np.where(value > spec.high + 1e-9, value - step, value)
    return ((np.log(value) if spec.log else value) - low) / (high - low)


def features(params: dict, units):
    """Model inputs of a matrix of coordinates: numeric columns as they are, choices one-hot."""
    import numpy as np

    columns = []
    for j, spec in enumerate(params.values()):
        if spec.kind == "categorical":
            k = len(spec.choices)
            index = np.minimum(np.floor(units[:, j] * k), k - 1).astype(int)
            columns.append(np.eye(k)[index])
        else:
            columns.append(units[:, j : j + 1])
    return np.hstack(columns)


def _snapped(params: dict, units):
    import numpy as np

    return np.column_stack([_snap(s, units[:, j]) for j, s in enumerate(params.values())])


def _local(params: dict, gen, anchors, scales, steps, count: int):
    """Gaussian steps around each anchor (per-param ``steps``), a choice switched with probability 0.2."""
    import numpy as np

    choice = np.array([s.kind == "categorical" for s in params.values()])
    blocks = []
    for anchor, scale in itertools.product(anchors, scales):
        local = anchor + gen.normal(0.0, 1.0, (count, len(params))) * scale * steps
        flip = choice & (gen.random(local.shape) < 0.2)
        blocks.append(np.where(flip, gen.random(local.shape), np.where(choice, anchor, local)))
    return _snapped(params, np.vstack(blocks)) if blocks else np.empty((0, len(params)))


def _config(params: dict, units) -> dict[str, Any]:
    return {name: from_unit(spec, float(u)) for (name, spec), u in zip(params.items(), units)}


class _Scorer:
    """The acquisition over unit coordinates: log EI of the model plus log P(success)."""

    def __init__(self, params, gp, best, failures: FailureModel | None):
        self.params, self.gp, self.best, self.failures = params, gp, best, failures

    def __call__(self, units):
        import numpy as np

        x = features(self.params, units)
        mean, sd = self.gp.predict(x)
        score = log_expected_improvement(mean, sd, self.best)
        if self.failures is not None:
            p_fail = self.failures.probability(x)
            score = score + FAILURE_WEIGHT * np.log(np.maximum(1.0 - p_fail, 1e-6))
            if (p_fail <= FAILURE_CAP).any():  # likely to fail: last, after every candidate that is not
                score = np.where(p_fail <= FAILURE_CAP, score, score - 1e3)
        return score, mean


def model_pick(params, complete, failed, pending, gen, is_new, maximize: bool):
    """The untried config of highest score, and whether its predicted mean beats the best.

    ``complete`` is ``[(config, value)]``; ``failed`` are configs whose job
    failed; ``pending`` configs are in flight (believed at their prediction).
    """
    import numpy as np

    sign = -1.0 if maximize else 1.0
    complete = model_subset(complete, maximize, MAX_MODEL_POINTS)
    failed, pending = failed[-(MAX_MODEL_POINTS // 2):], pending[-MAX_MODEL_POINTS:]
    cols = groups(params)
    x = np.array([_feature_row(params, c) for c, _ in complete])
    gp = GaussianProcess(x, warp_targets([sign * v for _, v in complete]), cols)
    fitted, _ = gp.predict(x)
    best = float(fitted.min())  # the best predicted at a tried point: robust to a lucky noisy value
    failures = None
    if failed:  # the latest successes and failures, at most MAX_MODEL_POINTS in all
        ok_x, fail_x = x[-(MAX_MODEL_POINTS // 2):], np.array([_feature_row(params, c) for c in failed])
        failures = FailureModel(np.vstack([ok_x, fail_x]), [0.0] * len(ok_x) + [1.0] * len(fail_x), cols)
    if pending:
        gp.believe(np.array([_feature_row(params, c) for c in pending]))
    score = _Scorer(params, gp, best, failures)
    anchors = np.array([[unit_of(s, complete[i][0][n]) for n, s in params.items()] for i in np.argsort(fitted)[:3]])
    steps = gp.lengths / gp.lengths.mean()
    units = np.vstack([_snapped(params, gen.random((N_CANDIDATES, len(params)))),
                       _local(params, gen, anchors, LOCAL_SCALES, steps, N_LOCAL)])
    values, mean = score(units)
    top = units[np.argsort(-values, kind="stable")[:N_REFINE]]
    fine = _local(params, gen, top, (0.01, 0.03), steps, N_LOCAL // 2)
    fine_values, fine_mean = score(fine)
    units, values, mean = np.vstack([units, fine]), np.concatenate([values, fine_values]), np.concatenate([mean, fine_mean])
    for i in np.argsort(-values, kind="stable"):
        if is_new(config := _config(params, units[i])):
            return config, bool(mean[i] <= best)
    return None, False


def _feature_row(params: dict, config: dict[str, Any]) -> list[float]:
    return [u for name, spec in params.items() for u in to_unit(spec, config[name])]


def spread_pick(params, tried, gen, is_new) -> dict[str, Any] | None:
    """The untried random config farthest from every config tried or in flight."""
    import numpy as np

    units = _snapped(params, gen.random((256, len(params))))
    gaps = np.zeros(len(units))
    if tried:
        points, seen = features(params, units), np.array([_feature_row(params, c) for c in tried])
        gaps = np.sqrt(((points[:, None, :] - seen[None, :, :]) ** 2).sum(-1)).min(1)
    for i in np.argsort(-gaps, kind="stable"):
        if is_new(config := _config(params, units[i])):
            return config
    return None
