"""A first search space from a script's arguments: which to search, over what range, which to fix.

Guarantees (pure): only arguments the script accepts as ``--name=value``
(typed, with a value, not positional, not a subcommand's) are searched or
fixed, under their own names. A numeric argument is searched around its
default: learning rates, weight decay, epsilon and small positive defaults
on a log scale (a tenth to ten times the default), batch sizes and layer or
unit counts as integer ranges, probabilities inside [0, 1]; bounds the script
declares (click ``FloatRange``, typer ``min``/``max``) are kept. Choices
become choices. Paths, seeds, logging, devices, evaluation settings and
output folders are never searched; the training length (epochs, iterations)
is fixed at its default so a reviewer sees it. At most :data:`MAX_SEARCHED`
parameters are searched, by priority; the next ones are offered as
commented-out lines. Every decision carries the reason shown to the user;
a reason that quotes the script (a subcommand's name) quotes it through
:func:`mlr_action.core.markup.code`, so the reasons are Markdown that renders
nothing of the script's.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from mlr_action.core.markup import code
from mlr_action.core.redaction import holds_secret
from mlr_action.onboard.scriptinfo.model import Argument

MAX_SEARCHED = 4  # a first campaign of ~8 jobs learns little about more dimensions than this
NOT_HYPER = {"seed", "random", "dir", "path", "file", "root", "output", "out", "data", "dataset", "device", "cuda",
             "gpu", "gpus", "cpu", "workers", "worker", "log", "logging", "logger", "interval", "every", "freq",
             "frequency", "save", "checkpoint", "ckpt", "resume", "wandb", "tensorboard", "mlflow", "project", "run",
             "name", "verbose", "debug", "dry", "compile", "dtype", "backend", "port", "host", "world", "rank",
             "local", "print", "eval", "test", "val", "valid", "report", "hub", "push", "token", "cache", "tokenizer",
             "config", "profile", "nodes", "devices", "accelerator", "precision", "strategy", "samples", "download",
             "overwrite", "deterministic", "benchmark", "amp", "fp16", "bf16", "num_workers", "from", "url", "seq",
             "length", "len", "block", "vocab", "features", "max_length", "max_seq_length", "context"}
LENGTH = ("epochs", "num_train_epochs", "max_epochs", "n_epochs", "num_epochs", "epoch", "max_iters", "max_iter",
          "n_iter", "num_iterations", "iterations", "max_steps", "num_steps", "train_steps", "total_steps", "steps")
_HEADS = {"head", "heads", "nhead"}  # heads and a width that must divide by them are searched together or not at all
_WIDTH = {"embd", "dim", "hidden", "width", "d_model", "hidden_size", "channels"}
_SCHEDULE = {"iters", "iter", "steps", "step", "epochs", "epoch", "warmup"}
_ARCH = {"layers", "layer", "depth", "heads", "head", "hidden", "units", "dim", "width", "embd", "channels",
         "filters", "neurons", "estimators", "leaves", "neighbors", "k", "kernel", "d_model", "n_layer"}
_PROB = {"dropout", "drop", "momentum", "beta", "beta1", "beta2", "ratio", "fraction", "frac", "prob", "p",
         "smoothing", "subsample", "keep", "gamma", "warmup_ratio", "mask"}
_REG = {"weight_decay", "wd", "decay", "l2", "alpha", "lambda", "reg", "penalty", "eps", "epsilon", "c", "tol"}


@dataclass(frozen=True)
class Choice:
    """One argument's place in the draft: searched, offered (commented out), fixed, or left out, and why."""

    arg: Argument
    role: str  # search | offer | fixed | left
    spec: dict[str, Any] = field(default_factory=dict)  # the ParamSpec fields, or {"value": v} when fixed
    why: str = ""


def tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[_.\-]+", name.lower()) if t]


def plan(arguments: list[Argument]) -> list[Choice]:
    """Every argument's role, searched ones first in priority order."""
    coupled = any(set(tokens(a.name)) & _HEADS for a in arguments) and any(set(tokens(a.name)) & _WIDTH for a in arguments)
    length = _length_argument(arguments)
    ranked: list[tuple[int, int, Choice]] = []
    for index, arg in enumerate(arguments):
        if arg is length:
            ranked.append((90, index, Choice(arg, "fixed", {"value": arg.default},
                                             "the training length, kept at the script's default")))
            continue
        priority, choice = _decide(arg, coupled)
        ranked.append((priority, index, choice))
    ranked.sort(key=lambda item: (item[0], item[1]))
    out, searched = [], 0
    for _, _, choice in ranked:
        if choice.role == "search":
            searched += 1
            if searched > MAX_SEARCHED:
                choice = Choice(choice.arg, "offer", choice.spec, "also tunable; uncomment it in program.md to search it")
        out.append(choice)
    return out


def _length_argument(arguments: list[Argument]) -> Argument | None:
    for wanted in LENGTH:
        for arg in arguments:
            if arg.name.replace("-", "_").lower() == wanted and _passable(arg) is None and _positive(arg.default):
                return arg
    return None


def _passable(arg: Argument) -> str | None:
    """Why a job cannot pass ``arg`` as ``--name=value``; None when it can."""
    if arg.positional:
        return "a positional argument (a job passes only --name=value)"
    if arg.subcommand:
        return f"belongs to the subcommand {code(arg.subcommand)}"  # the script's text: shown, never rendered
    if not arg.takes_value:
        return "a flag that takes no value (a job passes --name=value)"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", arg.name):
        return "a name program.md cannot hold"
    if arg.kind == "list":
        return "takes a list of values"
    return None


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _decide(arg: Argument, coupled: bool) -> tuple[int, Choice]:
    words = set(tokens(arg.name))
    joined = arg.name.replace("-", "_").lower()
    cannot = _passable(arg)
    if cannot:
        return 99, Choice(arg, "left", why=cannot)
    if arg.required and not arg.has_default:
        return 99, Choice(arg, "left", why="required, with no default: give it a value under fixed")
    if "batch" in words and not words & {"eval", "test", "val", "valid"}:
        words = words - {"per", "device"}  # per_device_train_batch_size is the batch size
    if words & NOT_HYPER or joined in NOT_HYPER:
        return 99, Choice(arg, "left", why="not a hyperparameter (a path, seed, device, logging or evaluation setting)")
    if arg.kind == "bool" or isinstance(arg.default, bool):
        return 99, Choice(arg, "left", why="a yes/no switch; left at the script's default")
    if not arg.typed and arg.kind in ("int", "float"):
        return 99, Choice(arg, "left", why="has no type=, so argparse would hand the script a string")
    if arg.choices:
        return _choices(arg)
    if arg.kind not in ("int", "float") or not isinstance(arg.default, (int, float)):
        why = "no default to search around" if not arg.has_default else "not a number and has no choices"
        return 99, Choice(arg, "left", why=why)
    if coupled and words & (_WIDTH | _HEADS):
        return 99, Choice(arg, "left", why="the width must stay divisible by the number of heads; both kept as they are")
    if words & _SCHEDULE:
        return 99, Choice(arg, "left", why="a schedule setting (steps, iterations, warmup); left at the script's default")
    return _numeric(arg, words, joined)


def _choices(arg: Argument) -> tuple[int, Choice]:
    values = list(arg.choices or ())
    if len(values) < 2 or not all(_plain_choice(v) for v in values):
        return 99, Choice(arg, "left", why="its choices cannot be written plainly in program.md")
    return 3, Choice(arg, "search", {"choices": values}, "the script's own choices")


def _plain_choice(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    return isinstance(value, str) and bool(re.fullmatch(r"[A-Za-z0-9_.+/-]{1,60}", value)) and not holds_secret(value)


def _numeric(arg: Argument, words: set[str], joined: str) -> tuple[int, Choice]:
    d = arg.default
    is_int = arg.kind == "int"
    if ("lr" in words or "learning" in words) and not is_int and d > 0:
        choice = _range(arg, d / 10, d * 10, log=True, why="a learning rate: a tenth to ten times the default, log scale")
        if words & {"min", "max", "final", "end"} and choice.role == "search":  # a schedule's floor follows the rate
            return 8, Choice(arg, "offer", choice.spec, "a learning-rate schedule's bound; uncomment it to search it")
        return 1, choice
    if "batch" in words or joined in ("bs", "batchsize"):
        if is_int and d >= 1:
            return 2, _range(arg, max(1, d // 4), d * 2, log=True, why="a batch size: a quarter to twice the default")
    if words & _REG or joined in _REG:
        if d > 0:
            return 6 if "eps" in joined else 4, _range(arg, d / 10, d * 10, log=True,
                                                        why="a tenth to ten times the default, log scale")
        if d == 0 and not is_int and "eps" not in joined:
            return 4, _range(arg, 0.0, 0.1, why="a regularization strength that defaults to 0: 0 to 0.1")
    if words & _PROB and not is_int and 0 <= d <= 1:
        if "dropout" in words or "drop" in words:
            high = 0.3 if d == 0 else min(0.9, d + (1 - d) / 2)
            return 5, _range(arg, d / 2, high, why="a dropout rate inside [0, 1)")
        if d > 0:
            return 7, _range(arg, d / 2, d + (1 - d) / 2, why="a fraction inside [0, 1], around the default")
    if words & _ARCH and is_int and d >= 1:
        return 6, _range(arg, max(1, d // 2), d * 2, why="a size: half to twice the default")
    if not _positive(d):
        return 99, Choice(arg, "left", why="a default of 0 or below gives no scale to search around")
    if is_int:
        return 7, _range(arg, max(1, d // 2), d * 2, why="half to twice the default")
    if d < 0.01:
        return 7, _range(arg, d / 10, d * 10, log=True, why="a small default: a tenth to ten times it, log scale")
    return 7, _range(arg, d / 2, d * 2, why="half to twice the default")


def _range(arg: Argument, low: float, high: float, *, log: bool = False, why: str) -> Choice:
    is_int = arg.kind == "int"
    if arg.low is not None:
        low = max(low, arg.low if not log or arg.low > 0 else low)
    if arg.high is not None:
        high = min(high, arg.high)
    low, high = (int(math.floor(low)), int(math.ceil(high))) if is_int else (_round(low), _round(high))
    if not low < high:
        return Choice(arg, "left", why="the script's bounds leave nothing to search")
    spec: dict[str, Any] = {"type": "int" if is_int else "float", "low": low, "high": high}
    if log and low > 0 and (not is_int or high / low >= 4):
        spec["log"] = True
    return Choice(arg, "search", spec, why)


def _round(value: float) -> float:
    return float(f"{value:.3g}")
