"""The metric lines a script prints, and the direction a metric's name implies.

Guarantees: a call that prints (``print``, ``logging``/``logger`` methods,
``tqdm.write``, ``click.echo``, ``sys.stdout.write``, ...) is read as the
text it would print, with every runtime value as a hole; a ``name=<hole>`` or
``name: <hole>`` in it is a sighting :func:`mlr_action.core.metric.read_metric`
would find (a quoted key in a printed dict too). A value followed by ``/``
(``Accuracy: 98/100``) is a fraction, not a metric. ``trainer.evaluate()``
counts as printing ``eval_loss`` and ``eval_<key>`` for each key
``compute_metrics`` returns (the Trainer prints its evaluation logs). A
metric word printed with no ``=`` or ``:`` before its value (``val loss
1.23``) is a sighting mlr cannot read (``readable`` False), so the draft can
say what line to add.
"""

from __future__ import annotations

import ast
import re

from mlr_action.onboard.scriptinfo.model import MetricLine
from mlr_action.onboard.scriptinfo.values import dotted, keyword, value_of

HOLE = "\x00"
MINIMIZE = {"loss", "error", "err", "perplexity", "ppl", "wer", "cer", "mae", "mse", "rmse", "nll", "bpc", "bpb",
            "bpd", "fid", "regret", "distance", "mape", "logloss", "ter"}
MAXIMIZE = {"accuracy", "acc", "f1", "auc", "bleu", "rouge", "rouge1", "rouge2", "rougel", "score", "reward",
            "return", "precision", "recall", "map", "iou", "miou", "dice", "r2", "em", "mcc", "top1", "top5",
            "sacrebleu", "chrf", "meteor", "spearman", "pearson", "spearmanr", "pearsonr", "correlation", "ndcg",
            "mrr", "psnr", "ssim", "auroc", "auprc", "kappa", "exact"}
NOT_METRICS = {"epoch", "epochs", "step", "steps", "iter", "iters", "iteration", "it", "lr", "learning_rate", "time",
               "elapsed", "eta", "seed", "batch", "samples", "tokens", "mfu", "dt", "memory", "mem", "gpu", "device",
               "throughput", "speed", "grad_norm", "norm", "n", "size", "trial", "fold", "rank", "config", "runtime",
               "train_runtime", "total_flos", "hub_url", "params", "parameters", "set", "dataset", "model"}
_EVALISH = {"eval", "val", "valid", "validation", "test", "dev", "holdout", "heldout", "final", "best"}
_PRINTERS = {"print", "echo", "secho", "info", "warning", "warn", "debug", "critical", "error", "write", "exception"}
_SIGHTING = re.compile(r"(?<![\w.\-/])([A-Za-z_][A-Za-z0-9_./-]*)['\"]?[ \t]*[=:][ \t]*" + HOLE + r"(?![/\w])")
_WORDS = "|".join(sorted(MINIMIZE | MAXIMIZE, key=len, reverse=True))
_UNREADABLE = re.compile(rf"(?<![\w.\-/])((?:[A-Za-z]+[ _])?(?:{_WORDS}))[ \t]+{HOLE}", re.IGNORECASE)
_PERCENT = re.compile(r"%[-+ #0]*\d*(?:\.\d+)?[sdifgeExXr]")
_FORMAT = re.compile(r"\{[^{}]*\}")
_EVAL_KEYS = {"accuracy", "f1", "precision", "recall", "matthews_correlation", "bleu", "sacrebleu", "mse", "mae", "wer", "cer"}


def direction_of(name: str) -> tuple[str | None, str | None]:
    """``("minimize" | "maximize", the word that says so)``, or ``(None, None)`` when the name does not tell."""
    tokens = [t for t in re.split(r"[_./\-\s]+|(?<=[a-z])(?=[A-Z])", name) if t]
    for token in reversed([t.lower() for t in tokens]):
        if token in MINIMIZE:
            return "minimize", token
        if token in MAXIMIZE:
            return "maximize", token
    return None, None


def is_evalish(name: str) -> bool:
    return bool(_EVALISH & {t.lower() for t in re.split(r"[_./\-\s]+", name)})


def read_metrics(tree: ast.Module, source: str) -> list[MetricLine]:
    """Every sighting in source order."""
    owners = _enclosing_functions(tree)
    out: list[MetricLine] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func).rsplit(".", 1)[-1]
        in_eval = bool(re.search(r"test|eval|valid", owners.get(node, ""), re.IGNORECASE))
        snippet = " ".join((ast.get_source_segment(source, node) or name).split())[:120]
        if name == "evaluate" and isinstance(node.func, ast.Attribute) and "trainer" in dotted(node.func.value).lower():
            for key in ["loss", *_compute_metrics_keys(tree)]:
                out.append(MetricLine(f"eval_{key}", node.lineno, "trainer.evaluate()", snippet, True))
            continue
        if name not in _PRINTERS:
            continue
        how = "print" if name in ("print", "echo", "secho", "write") else "logging"
        for text in _call_texts(node):
            for match in _SIGHTING.finditer(text):
                out.append(MetricLine(match.group(1), node.lineno, how, snippet, in_eval))
            for match in _UNREADABLE.finditer(text):
                out.append(MetricLine(match.group(1), node.lineno, how, snippet, in_eval, readable=False))
    return sorted(out, key=lambda m: m.line)


def _enclosing_functions(tree: ast.Module) -> dict[ast.AST, str]:
    owners: dict[ast.AST, str] = {}
    for fn in ast.walk(tree):  # outer functions first, so an inner one overrides
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                owners[node] = fn.name
    return owners


def _call_texts(call: ast.Call) -> list[str]:
    """What the call prints, with holes for runtime values (one text per argument that is a dict)."""
    if not call.args:
        return []
    parts = [_text(a) for a in call.args]
    dicts = [_dict_text(a) for a, text in zip(call.args, parts) if text is None]
    first = parts[0]
    if len(call.args) > 1 and first is not None and _PERCENT.search(first):  # logger.info("loss=%.3f", loss)
        joined = _PERCENT.sub(HOLE, first)
    else:
        sep = value_of(keyword(call, "sep"))
        joined = (sep if isinstance(sep, str) else " ").join(p if p is not None else HOLE for p in parts)
    return [joined, *[d for d in dicts if d]]


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else HOLE for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        return None if left is None and right is None else (left or HOLE) + (right or HOLE)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        left = _text(node.left)
        return _PERCENT.sub(HOLE, left) if left is not None else None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        template = _text(node.func.value)
        return _FORMAT.sub(HOLE, template) if template is not None else None
    if isinstance(node, ast.Call) and dotted(node.func).endswith("dumps") and node.args:
        return _dict_text(node.args[0])
    return None


def _dict_text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call) and dotted(node.func).endswith("dumps") and node.args:
        node = node.args[0]
    if not isinstance(node, ast.Dict):
        return None
    keys = [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    return ", ".join(f"'{k}': {HOLE}" for k in keys) or None


def _compute_metrics_keys(tree: ast.Module) -> list[str]:
    """The keys ``compute_metrics`` returns: a dict literal's keys, or ``evaluate.load("accuracy")``'s name."""
    keys: list[str] = []
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and "metric" in n.name):
        for ret in (n for n in ast.walk(fn) if isinstance(n, ast.Return) and n.value is not None):
            if isinstance(ret.value, ast.Dict):
                keys += [k.value for k in ret.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and dotted(node.func).endswith(("evaluate.load", "load_metric")) and node.args:
            loaded = value_of(node.args[0])
            if loaded in _EVAL_KEYS:
                keys.append(str(loaded))
    return list(dict.fromkeys(k for k in keys if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)))
