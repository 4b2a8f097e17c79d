"""Reading a training script without running it: arguments, metric lines, frameworks.

Guarantees: :func:`read_script` only parses the script's text into a syntax
tree (:mod:`ast`); nothing of the script is imported, executed or evaluated
beyond the bounded constant folding of :mod:`mlr_action.onboard.scriptinfo.values`.
It understands argparse (anywhere in the module: groups, subcommands, helper
functions), click and typer options, ``HfArgumentParser`` dataclasses and
nanoGPT-style globals with a ``--key=value`` configurator; every argument it
reports is one a job can pass as ``--name=value`` unless marked otherwise
(a flag, a positional, a subcommand's). A script that cannot be read (too
big, not UTF-8, a syntax error) gives a :class:`ScriptInfo` whose
``problems`` say so, never an exception.
"""

from __future__ import annotations

import ast
from pathlib import Path

from mlr_action.core.markup import code
from mlr_action.onboard.scriptinfo.argparse_reader import read_argparse
from mlr_action.onboard.scriptinfo.click_reader import read_click, read_typer
from mlr_action.onboard.scriptinfo.globals_reader import read_globals
from mlr_action.onboard.scriptinfo.hf_reader import read_hf
from mlr_action.onboard.scriptinfo.metric_reader import read_metrics
from mlr_action.onboard.scriptinfo.model import Argument, MetricLine, ScriptInfo
from mlr_action.onboard.scriptinfo.values import assignment, module_constants

__all__ = ["Argument", "MetricLine", "ScriptInfo", "read_script", "read_source", "DEEP_LEARNING"]

MAX_SCRIPT_BYTES = 1_000_000
# Packages that want a GPU: a script importing one of them is drafted on the cheapest GPU flavor.
DEEP_LEARNING = frozenset({
    "torch", "torchvision", "torchaudio", "tensorflow", "keras", "jax", "flax", "transformers", "lightning",
    "pytorch_lightning", "accelerate", "deepspeed", "timm", "diffusers", "peft", "trl", "fastai", "mxnet",
    "paddle", "sentence_transformers", "unsloth", "vllm", "xformers", "bitsandbytes",
})


def read_script(root: Path, script: str) -> ScriptInfo:
    """What ``root/script`` says about itself; problems (unreadable, too big) instead of exceptions."""
    path = root / script
    try:
        if path.stat().st_size > MAX_SCRIPT_BYTES:
            return ScriptInfo(script, problems=[f"{code(script)} is over {MAX_SCRIPT_BYTES} bytes; it was not read"])
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return ScriptInfo(script, problems=[f"{code(script)} could not be read ({type(exc).__name__}); it was not read"])
    return read_source(source, script, root)


def read_source(source: str, script: str, root: Path | None = None) -> ScriptInfo:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, SyntaxError) else ""
        return ScriptInfo(script, problems=[f"{code(script)} is not Python 3 this reader can parse{where}; nothing was "
                                            "read from it"])
    names = module_constants(tree)
    info = ScriptInfo(script)
    readers = (
        ("hf", lambda: read_hf(tree, names, script)),
        ("click", lambda: read_click(tree, names, script)),
        ("typer", lambda: read_typer(tree, names, script)),
        ("argparse", lambda: read_argparse(tree, names, script)),
        ("globals", lambda: read_globals(tree, names, script, root)),
    )
    seen: set[str] = set()
    for style, read in readers:
        arguments, problems = read()
        info.problems += problems
        fresh = [a for a in arguments if a.name not in seen]
        seen.update(a.name for a in fresh)
        info.arguments += fresh
        if fresh and info.style is None:
            info.style = style
    info.metrics = read_metrics(tree, source)
    info.frameworks = _frameworks(tree)
    info.constants = _constants(tree, names)
    info.reads = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    return info


def _frameworks(tree: ast.Module) -> dict[str, int]:
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
        for module in modules:
            top = module.split(".")[0]
            if top in DEEP_LEARNING:
                found[top] = min(found.get(top, node.lineno), node.lineno)
    return dict(sorted(found.items(), key=lambda item: item[1]))


def _constants(tree: ast.Module, names: dict) -> list[tuple[str, object, int]]:
    out = []
    for stmt in tree.body:
        target, _ = assignment(stmt)
        value = names.get(target) if target else None
        if target and not target.startswith("_") and isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((target, value, stmt.lineno))
    return out
