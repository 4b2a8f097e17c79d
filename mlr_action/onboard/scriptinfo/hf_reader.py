"""``HfArgumentParser`` dataclasses, read from the syntax tree.

Guarantees: the dataclasses handed to ``HfArgumentParser(...)`` are read
field by field: ``name: type = default`` or ``= field(default=...,
metadata={"choices": [...]})``; a field with no default is required. Each
field is passed as ``--field_name=value`` (HfArgumentParser's own spelling;
bool fields take ``=True``/``=False``). ``TrainingArguments`` and its
subclasses from transformers are not in the repository, so their usual
hyperparameters come from :data:`TRAINING_ARGUMENTS`, the documented fields
and defaults of transformers' ``TrainingArguments``; a dataclass imported from
anywhere else is reported as not read.
"""

from __future__ import annotations

import ast
from typing import Any

from mlr_action.core.markup import code
from mlr_action.onboard.scriptinfo.model import Argument
from mlr_action.onboard.scriptinfo.values import UNKNOWN, dotted, keyword, value_of

# transformers.TrainingArguments: the fields a first search or its fixed values use, with their documented
# defaults. output_dir had no default before transformers 4.50, so a script that runs on an older one needs it.
TRAINING_ARGUMENTS: tuple[tuple[str, str, Any], ...] = (
    ("learning_rate", "float", 5e-5),
    ("per_device_train_batch_size", "int", 8),
    ("weight_decay", "float", 0.0),
    ("warmup_ratio", "float", 0.0),
    ("lr_scheduler_type", "str", "linear"),
    ("num_train_epochs", "float", 3.0),
    ("gradient_accumulation_steps", "int", 1),
    ("adam_epsilon", "float", 1e-8),
    ("max_grad_norm", "float", 1.0),
    ("label_smoothing_factor", "float", 0.0),
    ("seed", "int", 42),
    ("per_device_eval_batch_size", "int", 8),
    ("logging_steps", "float", 500),
    ("output_dir", "str", None),
    ("do_train", "bool", False),
    ("do_eval", "bool", False),
)
# transformers.SchedulerType values; a draft searches only the two every version has.
SCHEDULER_CHOICES = ("linear", "cosine")
_TRAINING_CLASSES = {"TrainingArguments", "Seq2SeqTrainingArguments"}
_TYPES = {"float": "float", "int": "int", "str": "str", "bool": "bool"}


def read_hf(tree: ast.Module, names: dict[str, Any], script: str) -> tuple[list[Argument], list[str]]:
    """The fields of every dataclass given to ``HfArgumentParser``, as arguments a job passes."""
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and dotted(n.func).endswith("HfArgumentParser")]
    if not calls:
        return [], []
    classes = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    arguments: list[Argument] = []
    problems: list[str] = []
    for call in calls:
        given = call.args[0] if call.args else keyword(call, "dataclass_types")
        for node in given.elts if isinstance(given, (ast.Tuple, ast.List)) else [given] if given else []:
            found, problem = _dataclass(dotted(node), classes, names, script, call.lineno)
            arguments += found
            problems += [problem] if problem else []
    seen: set[str] = set()
    unique = [a for a in arguments if not (a.name in seen or seen.add(a.name))]  # type: ignore[func-returns-value]
    return unique, problems


def _dataclass(name: str, classes: dict[str, ast.ClassDef], names, script, line) -> tuple[list[Argument], str | None]:
    short = name.rsplit(".", 1)[-1]
    if short in _TRAINING_CLASSES:
        return _training_arguments(short, line), None
    cls = classes.get(short)
    if cls is None:
        return [], f"{code(script)} line {line}: the fields of {code(short)} (imported) were not read; add the ones to search by hand"
    inherited: list[Argument] = []
    for base in cls.bases:
        if dotted(base).rsplit(".", 1)[-1] in classes or dotted(base).rsplit(".", 1)[-1] in _TRAINING_CLASSES:
            inherited += _dataclass(dotted(base), classes, names, script, line)[0]
    own = [a for a in (_field(s, names, short) for s in cls.body) if a is not None]
    mine = {a.name for a in own}
    return [a for a in inherited if a.name not in mine] + own, None


def _training_arguments(cls: str, line: int) -> list[Argument]:
    out = []
    for name, kind, default in TRAINING_ARGUMENTS:
        out.append(Argument(
            name=name, kind=kind, line=line, origin=f"{name} ({cls}, transformers)", default=default,
            has_default=default is not None, required=name == "output_dir",
            choices=SCHEDULER_CHOICES if name == "lr_scheduler_type" else None,
        ))
    return out


def _field(stmt: ast.stmt, names: dict[str, Any], cls: str) -> Argument | None:
    if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
        return None
    kind, choices = _kind(stmt.annotation, names)
    default: Any = UNKNOWN
    has_default = stmt.value is not None
    if isinstance(stmt.value, ast.Call) and dotted(stmt.value.func).rsplit(".", 1)[-1] == "field":
        has_default = any(k.arg in ("default", "default_factory") for k in stmt.value.keywords)
        default = value_of(keyword(stmt.value, "default"), names)
        meta = keyword(stmt.value, "metadata")
        if isinstance(meta, ast.Dict):
            for key, value in zip(meta.keys, meta.values):
                if value_of(key, names) == "choices":
                    found = value_of(value, names)
                    choices = found if isinstance(found, tuple) and found else choices
    elif stmt.value is not None:
        default = value_of(stmt.value, names)
    if kind == "bool" and not has_default:
        has_default, default = True, False  # HfArgumentParser: a bool field with no default is False
    name = stmt.target.id
    return Argument(name=name, kind=kind, line=stmt.lineno, origin=f"{name} ({cls})",
                    default=None if default is UNKNOWN else default,
                    has_default=has_default and default is not UNKNOWN and default is not None,
                    choices=choices, required=not has_default)


def _kind(node: ast.AST, names: dict[str, Any]) -> tuple[str, tuple | None]:
    if isinstance(node, ast.Subscript):
        head = dotted(node.value).rsplit(".", 1)[-1]
        if head == "Optional":
            return _kind(node.slice, names)
        if head == "Literal":
            values = value_of(node.slice, names)
            values = values if isinstance(values, tuple) else (values,)
            return "str", None if UNKNOWN in values else values
        return ("list", None) if head in ("List", "list") else ("unknown", None)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # float | None
        side = node.left if not (isinstance(node.left, ast.Constant) and node.left.value is None) else node.right
        return _kind(side, names)
    return _TYPES.get(dotted(node), "unknown"), None
