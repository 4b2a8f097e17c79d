"""The search proposer's Optuna side: the ledger as a study, and the sampler that asks the model.

Guarantees: each ledger experiment, in iter order, becomes one trial (choices
told by index, so ``true`` is never taken for ``1``); a config that no longer
fits the space is counted, not told; the sampler falls back to space-filling
samples when the model cannot be fitted. Optuna and numpy are imported inside
the functions that need them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import warnings
from typing import Any

from mlr_action.core.ledger import IN_FLIGHT
from mlr_action.proposers.pick import model_pick, spread_pick
from mlr_action.proposers.space import choice_index, coerce, finish_value, finite_values, int_step

MIN_MODEL = 3  # finished experiments the model needs; fewer: space-filling samples


def distributions(params: dict) -> dict[str, Any]:
    """Optuna distributions of the space, in the study's own terms (see :func:`to_study`).

    Choices are told by index, since optuna finds a choice by ``==`` and would
    take ``true`` for ``1``; ``log`` with ``step`` samples on the log scale and
    snaps; a range the step does not divide ends at its last grid point.
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, spec in params.items():
        if spec.kind == "categorical":
            out[name] = CategoricalDistribution(list(range(len(spec.choices))))
        elif spec.kind == "int":
            step = 1 if spec.log else int_step(spec)
            high = int(spec.low) + (int(spec.high) - int(spec.low)) // step * step
            out[name] = IntDistribution(int(spec.low), high, log=spec.log, step=step)
        elif spec.step and not spec.log:
            high = finite_values(spec)[-1]
            out[name] = FloatDistribution(spec.low, max(high, spec.low), step=spec.step)
        else:
            out[name] = FloatDistribution(spec.low, spec.high, log=spec.log)
    return out


def to_study(params: dict, config: dict[str, Any]) -> dict[str, Any]:
    """A typed config as study params: choices become their index."""
    return {
        name: choice_index(spec, config[name]) if spec.kind == "categorical" else config[name]
        for name, spec in params.items()
    }


def from_study(params: dict, values: dict[str, Any]) -> dict[str, Any]:
    """Study params back to a typed config: the declared choice itself, not a look-alike."""
    return {
        name: spec.choices[values[name]] if spec.kind == "categorical" else finish_value(spec, values[name])
        for name, spec in params.items()
    }


def ledger_trials(program, state) -> tuple[list[Any], int]:
    """The ledger's experiments as optuna trials, and how many did not fit the space."""
    import optuna
    from optuna.trial import TrialState

    params = program.campaign.params
    dists = distributions(params)
    trials, skipped = [], 0
    for row in state.experiments.values():
        typed = {n: coerce(s, row.config.get(n)) for n, s in params.items()}
        if row.status in IN_FLIGHT:
            kind, value = TrialState.RUNNING, None
        elif row.status == "completed" and row.metric is not None and math.isfinite(row.metric):
            kind, value = TrialState.COMPLETE, float(row.metric)
        else:
            kind, value = TrialState.FAIL, None
        if any(v is None for v in typed.values()):
            skipped += 1
            continue
        try:
            trials.append(
                optuna.trial.create_trial(
                    state=kind, value=value, params=to_study(params, typed), distributions=dists,
                    user_attrs={"iter": row.iter, "status": row.status},
                )
            )
        except ValueError:  # e.g. off the step grid optuna keeps
            skipped += 1
    return trials, skipped


def is_failure(trial) -> bool:
    """A ledger experiment whose job failed (error, or finished without a metric); not a canceled one."""
    from optuna.trial import TrialState

    return trial.state == TrialState.FAIL and trial.user_attrs.get("status") in ("error", "completed")


@functools.cache
def sampler_class():
    import numpy as np
    import optuna
    from optuna.trial import TrialState

    class ModelSampler(optuna.samplers.BaseSampler):
        """GP expected improvement over the whole space; space-filling until MIN_MODEL finished.

        ``note`` says what the last ask did: exploit, explore, spread or random.
        """

        def __init__(self, params, dists, seed, is_new, maximize):
            self.params, self.dists, self.is_new, self.maximize = params, dists, is_new, maximize
            self.gen = np.random.default_rng(seed)
            self.fallback = optuna.samplers.RandomSampler(seed=seed)
            self.note = ""

        def infer_relative_search_space(self, study, trial):
            return dict(self.dists)

        def sample_relative(self, study, trial, search_space):
            trials = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number and t.params]
            configs = [from_study(self.params, t.params) for t in trials]
            complete = [(c, t.value) for c, t in zip(configs, trials) if t.state == TrialState.COMPLETE]
            if len(complete) >= MIN_MODEL:
                pending = [c for c, t in zip(configs, trials) if t.state == TrialState.RUNNING]
                failed = [c for c, t in zip(configs, trials) if is_failure(t)]
                try:
                    config, better = model_pick(self.params, complete, failed, pending, self.gen, self.is_new, self.maximize)
                    self.note = "exploit" if better else "explore"
                    return to_study(self.params, config) if config else {}
                except (ArithmeticError, ValueError, np.linalg.LinAlgError):  # degenerate data: spread instead
                    self.note = "unfit"
            else:
                self.note = "spread"
            config = spread_pick(self.params, configs, self.gen, self.is_new)
            return to_study(self.params, config) if config else {}

        def sample_independent(self, study, trial, param_name, param_distribution):
            self.note = "random"
            return self.fallback.sample_independent(study, trial, param_name, param_distribution)

    return ModelSampler


@contextlib.contextmanager
def quiet(optuna):
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)
