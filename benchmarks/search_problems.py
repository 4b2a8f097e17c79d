"""The problems of figure 2 (benchmarks/search_efficiency.py): noisy functions over campaign-like spaces.

Each problem is a search space as program.md declares it, a true value per
config (or, where the job fails, the kind of failure as a string: "diverged",
"oom"; each kind is one failure region),
observation noise, and whether it was held out: the search proposer was
designed on the problems with ``held_out=False`` only; the held-out ones were
written before the proposer was changed and were run only to confirm.

The training-like surfaces are ours, written in the shape of real
hyperparameter responses (a log-scale step size whose best value moves with
the optimizer and the batch size, weight decay that only one optimizer wants,
a divergence cliff just above the best step size, a batch that no longer fits
in memory, knobs that do nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class Problem:
    name: str
    params: dict[str, dict]  # as in program.md's Campaign block
    direction: str  # maximize | minimize
    optimum: float | None  # None: estimated as the best true value any run saw
    noise_sd: float
    description: str
    held_out: bool  # True: not used while designing the search proposer
    fixed: dict[str, Any] | None = None
    failed_value: float | None = None  # the true value charged to a run with no successful evaluation yet

    def true_value(self, config: dict[str, Any]) -> Optional[float]:
        """The true metric, None where the job fails."""
        value = SYNTHETIC[self.name](config)
        return None if isinstance(value, str) else value

    def failure_kind(self, config: dict[str, Any]) -> Optional[str]:
        """Which failure region ``config`` is in (None: the job succeeds)."""
        value = SYNTHETIC[self.name](config) if self.name in SYNTHETIC else 0.0
        return value if isinstance(value, str) else None


# --- rugged continuous functions ------------------------------------------------------


def branin(c: dict) -> float:
    x1, x2 = c["x1"], c["x2"]
    b, cc, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + cc * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H3_A = [[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]]
_H3_P = [[0.3689, 0.1170, 0.2673], [0.4699, 0.4387, 0.7470], [0.1091, 0.8732, 0.5547], [0.0381, 0.5743, 0.8828]]
_H6_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
_H6_P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886], [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
         [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650], [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]
_H_ALPHA = [1.0, 1.2, 3.0, 3.2]


def _hartmann(x: list[float], a_rows, p_rows) -> float:
    return -sum(a * math.exp(-sum(A * (xi - P) ** 2 for A, xi, P in zip(As, x, Ps)))
                for a, As, Ps in zip(_H_ALPHA, a_rows, p_rows))


def hartmann3(c: dict) -> float:
    return _hartmann([c[f"x{i}"] for i in range(1, 4)], _H3_A, _H3_P)


def hartmann6(c: dict) -> float:
    return _hartmann([c[f"x{i}"] for i in range(1, 7)], _H6_A, _H6_P)


def levy4(c: dict) -> float:
    w = [1 + (c[f"x{i}"] - 1) / 4 for i in range(1, 5)]
    body = sum((wi - 1) ** 2 * (1 + 10 * math.sin(math.pi * wi + 1) ** 2) for wi in w[:-1])
    return math.sin(math.pi * w[0]) ** 2 + body + (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)


def ackley5(c: dict) -> float:
    x = [c[f"x{i}"] for i in range(1, 6)]
    d = len(x)
    return (-20 * math.exp(-0.2 * math.sqrt(sum(v * v for v in x) / d))
            - math.exp(sum(math.cos(2 * math.pi * v) for v in x) / d) + 20 + math.e)


def styblinski_tang4(c: dict) -> float:
    return sum(v ** 4 - 16 * v ** 2 + 5 * v for v in (c[f"x{i}"] for i in range(1, 5))) / 2


# --- training-like mixed spaces ---------------------------------------------------------


def finetune(c: dict) -> float:
    """Fine-tuning accuracy: the best step size grows with the batch; too large a step hurts."""
    u = math.log10(c["lr"]) - (math.log10(2e-4) + 0.15 * math.log2(c["batch_size"] / 16))
    acc = 0.93 - 0.06 * u * u - 0.25 * max(0.0, u - 0.4) ** 2
    acc -= 0.01 * math.log2(c["batch_size"] / 24) ** 2
    acc -= 0.5 * (c["warmup_ratio"] - 0.06) ** 2
    return acc + (0.01 if c["scheduler"] == "cosine" else 0.0)


_MLP_LR = {"relu": 3e-3, "tanh": 1e-3, "logistic": 1e-2}
_MLP_BASE = {"relu": 0.0, "tanh": -0.006, "logistic": -0.02}


def mlp(c: dict) -> float:
    """A digits-like surface: each activation has its own best step size; too small a net or too much L2 hurts."""
    act = c["activation"]
    acc = 0.975 + _MLP_BASE[act] - 0.04 * (math.log10(c["learning_rate_init"]) - math.log10(_MLP_LR[act])) ** 2
    acc -= 0.012 * max(0.0, math.log2(64 / c["hidden"])) ** 2 + 0.003 * max(0.0, math.log2(c["hidden"] / 128)) ** 2
    acc -= 0.01 * max(0.0, math.log10(c["alpha"]) + 3) ** 2
    return acc


_TRAIN_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1.5e-3}
_TRAIN_CLIFF = {"sgd": 0.45, "adam": 0.6, "adamw": 0.6}  # decades above the best step size where training diverges
_TRAIN_BASE = {"sgd": -0.01, "adam": 0.0, "adamw": 0.008}
_TRAIN_SCHED = {"constant": -0.012, "linear": 0.0, "cosine": 0.004}


def training(c: dict) -> float | str:
    """Image-classifier accuracy (the issue's surface): optimizer x step size x batch interact; divergence fails.

    SGD's best step size grows linearly with the batch, Adam's with its square
    root; weight decay helps AdamW at 1e-2 and the others only a little, at
    1e-4; a step size a few tenths of a decade above the best diverges.
    """
    opt, bs = c["optimizer"], c["batch_size"]
    scale = bs / 128 if opt == "sgd" else math.sqrt(bs / 128)
    u = math.log10(c["lr"]) - math.log10(_TRAIN_LR[opt] * scale)
    if u > _TRAIN_CLIFF[opt]:
        return "diverged"  # loss is nan: the job exits without a metric
    acc = 0.93 + _TRAIN_BASE[opt] + _TRAIN_SCHED[c["scheduler"]]
    acc -= 0.05 * u * u + 0.04 * max(0.0, u - 0.2) ** 2
    w_best = 1e-2 if opt == "adamw" else 1e-4
    acc -= (0.006 if opt == "adamw" else 0.003) * min(9.0, (math.log10(c["weight_decay"]) - math.log10(w_best)) ** 2)
    acc -= 0.004 * math.log2(bs / 96) ** 2
    return acc


_PRE_CLIFF = {"adam": 3e-3, "lion": 4e-4, "adafactor": 1e-2}
_PRE_BASE = {"adam": 0.0, "lion": -0.03, "adafactor": 0.05}


def pretrain(c: dict) -> float | str:
    """Validation loss of a small language model (design set): warm-up moves the divergence cliff; a big batch OOMs."""
    opt, bs = c["optimizer"], c["batch_size"]
    if bs * (1 + c["dropout"]) > 200:  # activations no longer fit in memory
        return "oom"
    cliff = _PRE_CLIFF[opt] * (1 + c["warmup_steps"] / 500)
    if c["lr"] > cliff:
        return "diverged"
    u = math.log10(c["lr"]) - math.log10(cliff / 2.5)
    loss = 2.8 + _PRE_BASE[opt] + 0.35 * u * u
    loss += 0.25 * (c["dropout"] - 0.1) ** 2 / 0.04 * 0.2
    loss += 0.03 * math.log2(128 / bs) if bs < 128 else 0.0
    loss += 0.00005 * c["warmup_steps"]
    return loss


_ACT_DEPTH = {"relu": 4, "gelu": 6, "tanh": 2, "sigmoid": 1}
_ACT_BASE = {"relu": 0.0, "gelu": 0.01, "tanh": -0.02, "sigmoid": -0.06}
_NORM = {"none": 0.0, "batch": 0.01, "layer": 0.005}


def mixed_a(c: dict) -> float:
    """Accuracy over ints and choices (design set): depth wants the activation's own value; deep nets want a norm."""
    act, norm, depth = c["activation"], c["norm"], c["n_layers"]
    acc = 0.9 + _ACT_BASE[act] + _NORM[norm] - 0.008 * (depth - _ACT_DEPTH[act]) ** 2
    if norm == "none" and depth > 3:
        acc -= 0.015 * (depth - 3)
    acc -= 0.01 * (math.log2(c["width"]) - 8) ** 2
    return acc  # log_every, data_seed and progress_bar do nothing


_BOOST_DEPTH = {"gbtree": 6, "dart": 4}
_BOOST_BASE = {"gbtree": 0.0, "dart": 0.01, "gblinear": 0.06}


def mixed_b(c: dict) -> float:
    """Gradient-boosting log loss (held out): rounds x step size trade off; depth and booster interact."""
    booster = c["booster"]
    steps = math.log10(c["n_estimators"]) + math.log10(c["learning_rate"])  # log10 of the total step
    loss = 0.30 + _BOOST_BASE[booster] + 0.04 * (steps - 1.3) ** 2 + 0.03 * max(0.0, math.log10(c["learning_rate"]) + 1) ** 2
    if booster in _BOOST_DEPTH:
        loss += 0.004 * (c["max_depth"] - _BOOST_DEPTH[booster]) ** 2
    loss += 0.02 * (c["subsample"] - 0.8) ** 2 / 0.09
    return loss  # n_jobs, verbosity and cache_ratio do nothing


SYNTHETIC: dict[str, Callable[[dict], Any]] = {
    f.__name__: f for f in (branin, hartmann3, hartmann6, levy4, ackley5, styblinski_tang4, finetune, mlp,
                            training, pretrain, mixed_a, mixed_b)
}

FLOAT = {"type": "float"}


def _box(n: int, low: float, high: float) -> dict[str, dict]:
    return {f"x{i}": {**FLOAT, "low": low, "high": high} for i in range(1, n + 1)}


def _logf(low: float, high: float) -> dict:
    return {**FLOAT, "low": low, "high": high, "log": True}


PROBLEMS = [
    # design set: the proposer was tuned on these
    Problem("branin", {"x1": {**FLOAT, "low": -5, "high": 10}, "x2": {**FLOAT, "low": 0, "high": 15}},
            "minimize", 0.397887, 0.5, "2 floats, noise sd 0.5", held_out=False),
    Problem("hartmann3", _box(3, 0, 1), "minimize", -3.86278, 0.05, "3 floats, noise sd 0.05", held_out=False),
    Problem("levy4", _box(4, -10, 10), "minimize", 0.0, 0.1, "4 floats, rugged, noise sd 0.1", held_out=False),
    Problem("pretrain", {"lr": _logf(1e-5, 1e-1), "warmup_steps": {"type": "int", "low": 0, "high": 2000},
                         "batch_size": {"type": "int", "low": 8, "high": 512, "log": True},
                         "optimizer": {"choices": ["adam", "lion", "adafactor"]},
                         "dropout": {**FLOAT, "low": 0.0, "high": 0.5}},
            "minimize", 2.77, 0.02, "LM loss: log float, int, log int, 3 optimizers, float; divergence and OOM fail; "
            "noise sd 0.02", held_out=False, failed_value=4.0),
    Problem("mixed_a", {"n_layers": {"type": "int", "low": 1, "high": 10},
                        "width": {"type": "int", "low": 16, "high": 2048, "log": True},
                        "activation": {"choices": ["relu", "gelu", "tanh", "sigmoid"]},
                        "norm": {"choices": ["none", "batch", "layer"]},
                        "log_every": {"type": "int", "low": 10, "high": 1000, "log": True},
                        "data_seed": {"type": "int", "low": 0, "high": 100},
                        "progress_bar": {"choices": [True, False]}},
            "maximize", 0.92, 0.003, "int, log int, 4- and 3-way choices, 3 irrelevant (log int, int, bool); "
            "noise sd 0.003", held_out=False),
    # held out: written before the proposer changed, run only to confirm
    Problem("training", {"lr": _logf(1e-5, 1.0), "batch_size": {"type": "int", "low": 16, "high": 1024, "log": True},
                         "weight_decay": _logf(1e-6, 1e-1),
                         "optimizer": {"choices": ["sgd", "adam", "adamw"]},
                         "scheduler": {"choices": ["constant", "linear", "cosine"]}},
            "maximize", 0.942, 0.005, "accuracy: log lr, log-int batch, log weight decay, 3 optimizers, 3 schedulers; "
            "divergence fails; noise sd 0.005", held_out=True, failed_value=0.1),
    Problem("mixed_b", {"n_estimators": {"type": "int", "low": 10, "high": 2000, "log": True},
                        "max_depth": {"type": "int", "low": 1, "high": 12},
                        "learning_rate": _logf(1e-3, 1.0), "subsample": {**FLOAT, "low": 0.5, "high": 1.0},
                        "booster": {"choices": ["gbtree", "dart", "gblinear"]},
                        "n_jobs": {"type": "int", "low": 1, "high": 16}, "verbosity": {"choices": [0, 1, 2]},
                        "cache_ratio": {**FLOAT, "low": 0.0, "high": 1.0}},
            "minimize", 0.30, 0.003, "log int, int, log float, float, 3 boosters, 3 irrelevant (int, choice, float); "
            "noise sd 0.003", held_out=True),
    Problem("ackley5", _box(5, -5, 10), "minimize", 0.0, 0.1, "5 floats, rugged, noise sd 0.1", held_out=True),
    Problem("styblinski_tang4", _box(4, -5, 5), "minimize", -39.16617 * 4, 0.5,
            "4 floats, 2^4 local minima, noise sd 0.5", held_out=True),
    Problem("hartmann6", _box(6, 0, 1), "minimize", -3.32237, 0.05, "6 floats, noise sd 0.05", held_out=True),
    Problem("finetune", {"lr": _logf(1e-5, 1e-3), "batch_size": {"type": "int", "low": 4, "high": 64},
                         "scheduler": {"choices": ["linear", "cosine"]},
                         "warmup_ratio": {**FLOAT, "low": 0.0, "high": 0.2}},
            "maximize", 0.94, 0.005, "log float, int, 2-way choice, float; noise sd 0.005", held_out=True),
    Problem("mlp", {"learning_rate_init": _logf(1e-4, 1e-1), "hidden": {"type": "int", "low": 8, "high": 256, "log": True},
                    "alpha": _logf(1e-6, 1e-1), "activation": {"choices": ["relu", "tanh", "logistic"]}},
            "maximize", 0.975, 0.003, "2 log floats, log int, 3-way choice; noise sd 0.003", held_out=True),
]
