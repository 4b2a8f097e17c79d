"""Data loading for train.py: the table, split once and for all into train and validation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn import datasets
from sklearn.model_selection import train_test_split

LOADERS = {
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
}


@dataclass
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    feature_names: list[str]


def load_splits(cfg: dict) -> Splits:
    """The dataset named in ``cfg["dataset"]``, split with a fixed seed (stratified)."""
    name = cfg["dataset"]
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(LOADERS)}")
    bunch = LOADERS[name]()
    x_train, x_val, y_train, y_val = train_test_split(
        bunch.data, bunch.target, test_size=cfg["val_fraction"], random_state=cfg["split_seed"], stratify=bunch.target
    )
    return Splits(x_train, y_train, x_val, y_val, list(bunch.feature_names))
