"""Constant values from a syntax tree, without running anything.

Guarantees: :func:`value_of` evaluates only literals, names of module-level
constants, tuples and lists of them, ``range(a, b)`` and bounded arithmetic
(``3 * 1e-4``, ``2 ** 10``, ``-1``); anything else is :data:`UNKNOWN`. No
code of the script runs, and a hostile expression (``10 ** 10 ** 10``, a huge
repetition) is refused, never computed.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any

UNKNOWN = object()
_MAX_ITEMS = 200  # a list of choices or a range longer than this is not a search space
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}


def value_of(node: ast.AST | None, names: dict[str, Any] | None = None) -> Any:
    """The constant ``node`` stands for, or :data:`UNKNOWN`."""
    names = names or {}
    if node is None:
        return UNKNOWN
    if isinstance(node, ast.Constant) and not isinstance(node.value, bytes):
        return node.value
    if isinstance(node, ast.Name):
        return names.get(node.id, UNKNOWN)
    if isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) <= _MAX_ITEMS:
        items = [value_of(e, names) for e in node.elts]
        return UNKNOWN if any(i is UNKNOWN for i in items) else tuple(items)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = value_of(node.operand, names)
        if _number(inner):
            return -inner if isinstance(node.op, ast.USub) else inner
        return UNKNOWN
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _arith(node, names)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        return _call(node, names)
    return UNKNOWN


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _arith(node: ast.BinOp, names: dict[str, Any]) -> Any:
    left, right = value_of(node.left, names), value_of(node.right, names)
    if not (_number(left) and _number(right)):
        return UNKNOWN
    if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
        return UNKNOWN  # 10 ** 10 ** 10 would never finish
    if any(abs(v) > 1e300 for v in (left, right)):
        return UNKNOWN
    try:
        result = _OPS[type(node.op)](left, right)
    except (ArithmeticError, ValueError):
        return UNKNOWN
    if isinstance(result, complex) or (isinstance(result, float) and not math.isfinite(result)):
        return UNKNOWN
    return result


def _call(node: ast.Call, names: dict[str, Any]) -> Any:
    args = [value_of(a, names) for a in node.args]
    if any(a is UNKNOWN for a in args):
        return UNKNOWN
    name = node.func.id
    if name in ("float", "int") and len(args) == 1 and (_number(args[0]) or isinstance(args[0], str)):
        try:
            return float(args[0]) if name == "float" else int(args[0])
        except (ValueError, OverflowError):
            return UNKNOWN
    if name == "range" and 1 <= len(args) <= 2 and all(isinstance(a, int) for a in args):
        start, stop = (0, args[0]) if len(args) == 1 else args
        return tuple(range(start, stop)) if 0 < stop - start <= _MAX_ITEMS else UNKNOWN
    return UNKNOWN


def module_constants(tree: ast.Module) -> dict[str, Any]:
    """Top-level ``NAME = <constant>`` assignments, in order (a later one sees the earlier ones)."""
    names: dict[str, Any] = {}
    for stmt in tree.body:
        target, value = assignment(stmt)
        if target is not None:
            found = value_of(value, names)
            if found is not UNKNOWN:
                names[target] = found
            else:
                names.pop(target, None)
    return names


def assignment(stmt: ast.stmt) -> tuple[str | None, ast.AST | None]:
    """``(name, value node)`` of ``name = value`` or ``name: T = value``; ``(None, None)`` otherwise."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id, stmt.value
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        return stmt.target.id, stmt.value
    return None, None


def dotted(node: ast.AST) -> str:
    """``a.b.c`` for a name or attribute chain, ``""`` for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)
