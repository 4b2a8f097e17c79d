"""The search proposer's model: a small Gaussian process with expected improvement (numpy only).

Guarantees: deterministic for a given random generator; never proposes a
candidate ``is_new`` rejects; numpy is imported inside each function, so
importing mlr_action (or this module) stays cheap.
"""

from __future__ import annotations

import itertools
import math
from typing import Any


from mlr_action.proposers.space import bounds, choice_index, encode, from_unit, int_step, to_unit

N_CANDIDATES = 1500  # random candidates scored by the acquisition
N_LOCAL = 100  # local candidates per anchor and scale, around the three best
# The GP is cubic in its points: past this many finished experiments it is fit
# on the best half and the most recent half of them, so a step stays fast on a
# campaign of thousands of rows (see docs/BENCHMARKS.md, figure 1).
MAX_MODEL_POINTS = 200
# The GP's prior mean sits this many standard deviations on the bad side of the
# observed mean: unexplored regions are assumed poor until the data says
# otherwise. With ~10 points this spends evaluations near good ones instead of
# in far corners (a 1.5-4x lower median regret than a neutral prior in our runs).
PRIOR_SHIFT = 2.0


def _matern52(a, b, lengths):
    import numpy as np

    return _matern52_of(((a[:, None, :] - b[None, :, :]) / lengths) ** 2 @ np.ones(a.shape[1]))


def _matern52_of(r2):
    import numpy as np

    s = np.sqrt(5 * r2)
    return (1 + s + s * s / 3) * np.exp(-s)


class GaussianProcess:
    """A GP on [0, 1]^d with standardized targets; hyperparameters by MAP over a grid.

    The length-scale prior (log-normal around ``0.5 * sqrt(d)``) and the noise
    penalty keep ~10 points from being explained by a wiggly or noiseless fit.
    The prior mean is pessimistic (see ``PRIOR_SHIFT``).
    """

    def __init__(self, x, y):
        import numpy as np

        self.x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        self.std = y.std() or 1.0
        self.mean = y.mean() + PRIOR_SHIFT * self.std
        self.y = (y - self.mean) / self.std
        self._d2 = (self.x[:, None, :] - self.x[None, :, :]) ** 2  # per-dimension squared distances
        self.lengths, self.noise = self._fit()
        self._factor()

    def _objective(self, lengths, noise) -> float:
        import numpy as np

        n, dim = self.x.shape
        try:
            chol = np.linalg.cholesky(_matern52_of(self._d2 @ (1 / lengths**2)) + (noise + 1e-6) * np.eye(n))
        except np.linalg.LinAlgError:
            return math.inf
        white = np.linalg.solve(chol, self.y)
        prior = 0.5 * ((np.log(lengths) - math.log(0.5 * math.sqrt(dim))) ** 2).sum() + 2 * noise
        return float(0.5 * white @ white + np.log(np.diag(chol)).sum() + prior)

    def _fit(self):
        import numpy as np

        dim = self.x.shape[1]
        grid = [(np.full(dim, ls), nz) for ls in np.geomspace(0.05, 3.0, 10) for nz in (1e-3, 1e-2, 0.05, 0.1, 0.3, 1.0)]
        score, lengths, noise = min(((self._objective(ls, nz), ls, nz) for ls, nz in grid), key=lambda t: t[0])
        for _pass, j, factor in itertools.product(range(2), range(dim), (0.25, 0.5, 2.0, 4.0)):
            trial = lengths.copy()
            trial[j] *= factor
            if (value := self._objective(trial, noise)) < score:
                score, lengths = value, trial
        return lengths, noise

    @staticmethod
    def _solve(x, y, lengths, noise):
        import numpy as np

        chol = np.linalg.cholesky(_matern52(x, x, lengths) + (noise + 1e-6) * np.eye(len(x)))
        return chol, np.linalg.solve(chol.T, np.linalg.solve(chol, y))

    def _factor(self) -> None:
        self.chol, self.alpha = self._solve(self.x, self.y, self.lengths, self.noise)

    def predict(self, x):
        """Posterior mean and standard deviation (standardized units) at ``x``."""
        import numpy as np

        cross = _matern52(np.asarray(x, dtype=float), self.x, self.lengths)
        v = np.linalg.solve(self.chol, cross.T)
        return cross @ self.alpha, np.sqrt(np.maximum(1.0 - (v * v).sum(0), 1e-12))

    def believe(self, x) -> None:
        """Kriging believer: treat pending points as if they returned the predicted mean."""
        import numpy as np

        if len(x):
            x = np.asarray(x, dtype=float)
            mean, _ = self.predict(x)
            self.x, self.y = np.vstack([self.x, x]), np.concatenate([self.y, mean])
            self._factor()


def expected_improvement(mean, sd, best):
    """EI of minimizing below ``best`` (all in standardized units)."""
    import numpy as np

    z = (best - mean) / sd
    cdf = 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in z]))
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return sd * (z * cdf + pdf)


# --- Picking the next config --------------------------------------------------------


def _unit(spec, value: Any) -> float:
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


def _features(params: dict, units):
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


def _candidate_units(params: dict, gen, count: int, anchors=()):
    """Random coordinates, plus local ones around each anchor at three scales, all snapped."""
    import numpy as np

    blocks = [gen.random((count, len(params)))]
    choice = np.array([s.kind == "categorical" for s in params.values()])
    for anchor, scale in itertools.product(anchors, (0.02, 0.05, 0.1)):
        local = anchor + gen.normal(0.0, scale, (N_LOCAL, len(params)))
        flip = choice & (gen.random(local.shape) < 0.2)  # a choice changes now and then
        blocks.append(np.where(flip, gen.random(local.shape), np.where(choice, anchor, local)))
    units = np.vstack(blocks)
    return np.column_stack([_snap(s, units[:, j]) for j, s in enumerate(params.values())])


def _config(params: dict, units) -> dict[str, Any]:
    return {name: from_unit(spec, float(u)) for (name, spec), u in zip(params.items(), units)}


def model_subset(complete: list, maximize: bool, limit: int = MAX_MODEL_POINTS) -> list:
    """At most ``limit`` finished experiments: the best half and the most recent half, in order."""
    if len(complete) <= limit:
        return complete
    ranked = sorted(range(len(complete)), key=lambda i: complete[i][1], reverse=maximize)
    keep = set(ranked[: limit // 2]) | set(range(len(complete) - (limit - limit // 2), len(complete)))
    return [complete[i] for i in sorted(keep)]


def model_pick(params, complete, pending, gen, is_new, maximize: bool):
    """The untried config of highest expected improvement, and whether it is predicted to beat the best.

    ``complete`` is ``[(config, value)]``; ``pending`` configs are in flight.
    """
    import numpy as np

    sign = -1.0 if maximize else 1.0
    complete = model_subset(complete, maximize)
    pending = pending[-MAX_MODEL_POINTS:]
    gp = GaussianProcess([encode(params, c) for c, _ in complete], [sign * v for _, v in complete])
    gp.believe([encode(params, c) for c in pending])
    fitted, _ = gp.predict(gp.x[: len(complete)])
    best = float(fitted.min())  # the best predicted at a tried point: robust to a lucky noisy value
    anchors = [[_unit(s, complete[i][0][n]) for n, s in params.items()] for i in np.argsort(fitted)[:3]]
    units = _candidate_units(params, gen, N_CANDIDATES, anchors)
    mean, sd = gp.predict(_features(params, units))
    for i in np.argsort(-expected_improvement(mean, sd, best), kind="stable"):
        if is_new(config := _config(params, units[i])):
            return config, bool(mean[i] <= best)
    return None, False


def spread_pick(params, tried, gen, is_new) -> dict[str, Any] | None:
    """The untried random config farthest from every config tried or in flight."""
    import numpy as np

    units = _candidate_units(params, gen, 256)
    gaps = np.zeros(len(units))
    if tried:
        points, seen = _features(params, units), np.array([encode(params, c) for c in tried])
        gaps = np.sqrt(((points[:, None, :] - seen[None, :, :]) ** 2).sum(-1)).min(1)
    for i in np.argsort(-gaps, kind="stable"):
        if is_new(config := _config(params, units[i])):
            return config
    return None
