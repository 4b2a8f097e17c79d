"""nanoGPT-style configuration: module-level globals a configurator overrides with ``--key=value``.

Guarantees: the style is recognised by a configurator run on the script's
globals, either ``exec(open('configurator.py').read())`` or a loop over
``sys.argv`` that writes ``globals()``. The arguments are the module-level
``name = <int | float | bool | str>`` assignments made *before* that line
(nanoGPT's configurator overrides only keys that already exist, and asserts
the new value has the old one's type, so an int global stays an int range).
A configurator file that is not in the repository is reported.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from mlr_action.core.markup import code
from mlr_action.onboard.scriptinfo.model import Argument
from mlr_action.onboard.scriptinfo.values import UNKNOWN, assignment, dotted, value_of


def configurator_line(tree: ast.Module, names: dict[str, Any]) -> tuple[int, str | None] | None:
    """The line where globals get overridden, and the configurator file it runs (None: inline)."""
    for stmt in tree.body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call) and dotted(node.func) == "exec" and node.args:
                opened = _opened_file(node.args[0], names)
                if opened and "config" in Path(opened).name:
                    return stmt.lineno, opened
        if isinstance(stmt, ast.For) and "sys.argv" in ast.unparse(stmt.iter) and "globals()" in ast.unparse(stmt):
            return stmt.lineno, None
    return None


def _opened_file(node: ast.AST, names: dict[str, Any]) -> str | None:
    """``'configurator.py'`` from ``open('configurator.py').read()``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "read":
        inner = node.func.value
        if isinstance(inner, ast.Call) and dotted(inner.func) == "open" and inner.args:
            found = value_of(inner.args[0], names)
            return found if isinstance(found, str) else None
    return None


def read_globals(tree: ast.Module, names: dict[str, Any], script: str, root: Path | None) -> tuple[list[Argument], list[str]]:
    found = configurator_line(tree, names)
    if found is None:
        return [], []
    line, config_file = found
    problems = []
    if config_file and root is not None and not (root / config_file).is_file():
        problems.append(f"{code(script)} line {line} runs {code(config_file)}, which is not in the repository: the jobs would fail "
                        "before training; commit it next to program.md")
    arguments = []
    seen: dict[str, Any] = {}
    for stmt in tree.body:
        if stmt.lineno >= line:
            break
        target, value_node = assignment(stmt)
        value = value_of(value_node, seen) if target else UNKNOWN
        if target and not target.startswith("_") and isinstance(value, (int, float, bool, str)):
            seen[target] = value
            kind = {bool: "bool", int: "int", float: "float", str: "str"}[type(value)]
            arguments.append(Argument(name=target, kind=kind, line=stmt.lineno, origin=f"{target} = {value!r}"[:80],
                                      default=value, has_default=True))
    latest = {a.name: a for a in arguments}  # a global assigned twice: the last value before the configurator
    return list(latest.values()), problems
