"""The model for train.py: a support-vector classifier on standardized features, from the config's `model` section."""

from __future__ import annotations

from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

HPARAMS = ("kernel", "C", "gamma", "degree", "class_weight")


def build_model(cfg: dict, seed: int) -> Pipeline:
    """Scaler + SVC with the hyperparameters in ``cfg`` (an unknown key is an error, never ignored)."""
    unknown = sorted(set(cfg) - set(HPARAMS))
    if unknown:
        raise ValueError(f"unknown model settings: {', '.join(unknown)}")
    return Pipeline([("scale", StandardScaler()), ("svc", SVC(**cfg, random_state=seed))])


def count_support_vectors(model: Pipeline) -> int:
    return int(model.named_steps["svc"].n_support_.sum())
