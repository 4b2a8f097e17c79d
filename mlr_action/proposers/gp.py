"""The search proposer's model: a small Gaussian process for mixed spaces (numpy only).

Guarantees: pure and deterministic (no random numbers here); every input is a
finite number (the caller drops non-finite metrics); a fit that the data
cannot support raises ``numpy.linalg.LinAlgError`` or ``ValueError``, which
the caller turns into a space-filling proposal. numpy is imported inside each
function, so importing mlr_action (or this module) stays cheap.

The model, and why:

- Inputs are per-param *groups* of columns on [0, 1]: a float or int is one
  column on its sampling scale (log params are warped to the log scale, ints
  sit mid-bucket, see space.py); a categorical is one-hot. The kernel is a
  Matern 5/2 of a distance summed over params, each param with its own length
  scale (ARD). A categorical param contributes ``[a != b] / l**2``: a
  Hamming-distance kernel with one length per param, so "how much does the
  optimizer matter" is one learned number, while what is learned about a
  continuous param carries across categories in proportion to it (the
  distances add inside one kernel). A length scale
  that grows long switches a param off: irrelevant params stop costing
  evaluations.
- Length scales, signal scale and noise are fitted by maximum a posteriori on
  the marginal likelihood (coordinate search in log space from a grid start;
  length scales log-normal around ``LENGTH_PRIOR_MEDIAN * sqrt(params)``):
  noise is a free parameter, so a lucky result is explained as noise rather
  than chased, and the incumbent of expected improvement is the best
  *posterior mean* at a tried point, not the best observed value.
- Targets are warped before fitting: centred on the median and scaled by the
  spread of the better half, with the bad tail log-compressed, so one
  diverged-but-finite metric (a loss of 1e6) does not flatten the surface the
  good region is fitted on.
- The prior mean sits ``PRIOR_SHIFT`` warped units on the bad side: unexplored
  regions are assumed poor until the data says otherwise, which spends a
  budget of 12-24 evaluations near good points instead of in far corners.
"""

from __future__ import annotations

import itertools
import math

PRIOR_SHIFT = 2.0  # prior mean: this many warped units worse than the median
NOISE_FLOOR = 1e-4  # noise variance floor (warped units), keeps the factorization stable
LENGTH_PRIOR_SD = 1.0  # log-normal prior on length scales: sd in log space
LENGTH_PRIOR_MEDIAN = 0.3  # ... and its median, times sqrt(number of params)
FIT_PASSES = 3  # coordinate-search passes over the hyperparameters
FIT_POINTS = 60  # at most this many points for the hyperparameter fit (the model itself uses them all)
GOOD_CLIP = 20.0  # warped targets better than minus this are clipped to it


def warp_targets(y):
    """Minimization targets as the model sees them: median 0, the better half's spread 1, the bad tail compressed."""
    import numpy as np

    y = np.asarray(y, dtype=float)
    median = float(np.median(y))
    better = y[y <= median]
    scale = float(np.median(median - better)) if len(better) > 1 else 0.0
    if not scale > 0 or not math.isfinite(scale):
        scale = float(np.abs(y - median).mean()) if np.isfinite(np.abs(y - median).mean()) else 0.0
    scale = scale if scale > 0 and math.isfinite(scale) else 1.0
    with np.errstate(over="ignore", invalid="ignore"):  # a hostile 1e308 in the ledger is a number too
        z = np.nan_to_num((y - median) / scale, nan=0.0, posinf=1e12, neginf=-1e12)
    z = np.clip(z, -GOOD_CLIP, None)  # far better than the rest is the best: how much more does not matter
    return np.where(z > 1.0, 1.0 + np.log1p(np.maximum(z - 1.0, 0.0)), z)


def _matern52(r2):
    import numpy as np

    s = np.sqrt(5.0 * np.maximum(r2, 0.0))
    return (1.0 + s + s * s / 3.0) * np.exp(-s)


def group_distances(a, b, groups):
    """Squared distances per param between rows of ``a`` and ``b``: shape (len(a), len(b), params).

    A categorical group (several one-hot columns) counts 1 when the choices differ.
    """
    import numpy as np

    out = np.empty((len(a), len(b), len(groups)))
    numeric = [p for p, cols in enumerate(groups) if len(cols) == 1]
    if numeric:
        cols = [groups[p][0] for p in numeric]
        out[:, :, numeric] = (a[:, None, cols] - b[None, :, cols]) ** 2
    for p, cols in enumerate(groups):
        if len(cols) > 1:
            out[:, :, p] = 1.0 - a[:, cols] @ b[:, cols].T
    return out


def _fit_points(y):
    """Which points the hyperparameters are fitted on: all, or the best half and the latest half of FIT_POINTS."""
    import numpy as np

    n = len(y)
    if n <= FIT_POINTS:
        return np.arange(n)
    keep = set(np.argsort(y, kind="stable")[: FIT_POINTS // 2].tolist()) | set(range(n - FIT_POINTS // 2, n))
    return np.array(sorted(keep))


class GaussianProcess:
    """A GP on per-param column groups (see the module docstring); hyperparameters by MAP."""

    def __init__(self, x, y, groups: list[list[int]], *, prior_mean: float | None = None):
        import numpy as np

        self.x = np.asarray(x, dtype=float)
        self.groups = groups
        self.prior_mean = PRIOR_SHIFT if prior_mean is None else prior_mean  # unexplored regions: on the bad side
        self.y = np.asarray(y, dtype=float) - self.prior_mean
        fit = _fit_points(self.y)  # hyperparameters from at most FIT_POINTS points, so a fit stays fast
        self._fit_y = self.y[fit]
        self._d2 = group_distances(self.x[fit], self.x[fit], groups)
        self.lengths, self.signal, self.noise = self._fit()
        self._factor()

    # --- fitting ---------------------------------------------------------------

    def _objective(self, log_lengths, log_signal, log_noise) -> float:
        import numpy as np

        n, p = len(self._fit_y), len(self.groups)
        signal, noise = math.exp(log_signal), math.exp(log_noise) + NOISE_FLOOR
        cov = signal * _matern52(self._d2 @ np.exp(-2.0 * log_lengths)) + noise * np.eye(n)
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            return math.inf
        white = np.linalg.solve(chol, self._fit_y)
        centre = math.log(LENGTH_PRIOR_MEDIAN * math.sqrt(p))
        prior = 0.5 * (((log_lengths - centre) / LENGTH_PRIOR_SD) ** 2).sum()
        prior += 0.5 * (log_signal / 1.0) ** 2  # signal variance around 1 (targets are scaled)
        prior += 0.5 * ((log_noise - math.log(0.05)) / 1.5) ** 2  # noise: some, rarely most
        return float(0.5 * white @ white + np.log(np.diag(chol)).sum() + prior)

    def _fit(self):
        import numpy as np

        p = len(self.groups)
        start = [(np.full(p, math.log(ls)), 0.0, math.log(nz))
                 for ls in (0.1, 0.2, 0.4, 0.8, 1.6) for nz in (1e-3, 0.02, 0.1, 0.4)]
        score, best = min(((self._objective(*h), h) for h in start), key=lambda t: t[0])
        lengths, signal, noise = best[0].copy(), best[1], best[2]
        for _pass in range(FIT_PASSES):
            moved = False
            for j, step in itertools.product(range(p + 2), (-1.0, -0.5, 0.5, 1.0)):
                cand = [lengths.copy(), signal, noise]
                if j < p:
                    cand[0][j] = min(max(cand[0][j] + step, math.log(0.01)), math.log(100.0))
                elif j == p:
                    cand[1] = min(max(signal + step, -4.0), 3.0)
                else:
                    cand[2] = min(max(noise + step, math.log(1e-6)), math.log(4.0))
                if (value := self._objective(*cand)) < score - 1e-9:
                    score, (lengths, signal, noise), moved = value, cand, True
            if not moved:
                break
        return np.exp(lengths), math.exp(signal), math.exp(noise) + NOISE_FLOOR

    def _factor(self) -> None:
        import numpy as np

        cov = self.kernel(self.x, self.x) + self.noise * np.eye(len(self.x))
        self.chol = np.linalg.cholesky(cov)
        self.alpha = np.linalg.solve(self.chol.T, np.linalg.solve(self.chol, self.y))

    # --- prediction ------------------------------------------------------------

    def kernel(self, a, b):
        return self.signal * _matern52(group_distances(a, b, self.groups) @ (1.0 / self.lengths ** 2))

    def predict(self, x):
        """Posterior mean and standard deviation of the latent function at ``x`` (warped units, prior shift removed)."""
        import numpy as np

        cross = self.kernel(np.asarray(x, dtype=float), self.x)
        v = np.linalg.solve(self.chol, cross.T)
        var = np.maximum(self.signal - (v * v).sum(0), 1e-12)
        return cross @ self.alpha + self.prior_mean, np.sqrt(var)

    def believe(self, x) -> None:
        """Kriging believer: treat pending points as if they returned the predicted mean."""
        import numpy as np

        if len(x):
            x = np.asarray(x, dtype=float)
            mean, _ = self.predict(x)
            self.x, self.y = np.vstack([self.x, x]), np.concatenate([self.y, mean - self.prior_mean])
            self._factor()


def log_expected_improvement(mean, sd, best):
    """log EI of minimizing below ``best``, stable far into the tail (so far-off candidates still rank)."""
    import numpy as np

    z = (best - mean) / sd
    out = np.empty_like(z)
    near = z > -6.0
    zn = z[near]
    cdf = 0.5 * _erfc(-zn / math.sqrt(2.0))
    pdf = np.exp(-0.5 * zn * zn) / math.sqrt(2 * math.pi)
    out[near] = np.log(np.maximum(zn * cdf + pdf, 1e-300))
    zf = z[~near]  # z * cdf + pdf ~ pdf / z**2 for z -> -inf
    out[~near] = -0.5 * zf * zf - math.log(math.sqrt(2 * math.pi)) - 2.0 * np.log(-zf)
    return out + np.log(sd)


def _erfc(x):
    import numpy as np

    return np.array([math.erfc(v) for v in np.ravel(x)]).reshape(np.shape(x))


def model_subset(complete: list, maximize: bool, limit: int) -> list:
    """At most ``limit`` results: the best half and the most recent half, in order."""
    if len(complete) <= limit:
        return complete
    ranked = sorted(range(len(complete)), key=lambda i: complete[i][1], reverse=maximize)
    keep = set(ranked[: limit // 2]) | set(range(len(complete) - (limit - limit // 2), len(complete)))
    return [complete[i] for i in sorted(keep)]


class FailureModel:
    """Probability that a job fails at a point: a GP on the 0/1 failure labels of every finished experiment.

    A regression on the labels (least-squares classification) with its own
    length scales, fitted like the objective's, around the campaign's failure
    rate (shrunk toward 1/2 by one pseudo-experiment): near a failure and far
    from any success it is high, near a success low, far from everything the
    base rate. Its own length scales matter: the objective may be flat along
    the very param whose high end diverges.
    """

    def __init__(self, x, failed, groups):
        import numpy as np

        failed = np.asarray(failed, dtype=float)
        self.base = float((failed.sum() + 0.5) / (len(failed) + 1.0))
        self.gp = GaussianProcess(x, failed, groups, prior_mean=self.base)

    def probability(self, x):
        import numpy as np

        mean, _ = self.gp.predict(x)
        return np.clip(mean, 0.0, 1.0)
