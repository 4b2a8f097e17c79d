"""argparse arguments, read from the syntax tree.

Guarantees: every ``<anything>.add_argument(...)`` call in the module counts,
wherever it is (on the parser, an argument group, a subcommand's parser, a
parser handed to a helper function or a ``add_model_specific_args`` static
method), as long as the module uses argparse. An argument is recorded the
way a job can pass it: its first long option without the dashes (``--lr`` is
``lr``, ``--batch-size`` is ``batch-size``). ``store_true`` and other
value-less actions are flags (``takes_value`` False); ``nargs`` lists are
``list``; an argument with no ``type=`` keeps its default's kind but is marked
untyped (argparse would hand a number over as a string). Arguments on a
subcommand's parser carry the subcommand's name. ``set_defaults`` overrides
a default. Names built at run time, a positional argument and an option with
only a short form are reported as problems, never guessed.
"""

from __future__ import annotations

import ast
from typing import Any

from mlr_action.core.markup import code
from mlr_action.onboard.scriptinfo.model import Argument
from mlr_action.onboard.scriptinfo.values import UNKNOWN, dotted, keyword, value_of

FLAG_ACTIONS = {"store_true", "store_false", "store_const", "count", "help", "version", "append_const"}
_TYPES = {"float": "float", "int": "int", "str": "str", "bool": "bool", "Path": "str", "pathlib.Path": "str"}


def uses_argparse(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "argparse":
            return True
    return False


def read_argparse(tree: ast.Module, names: dict[str, Any], script: str) -> tuple[list[Argument], list[str]]:
    """The arguments of every argparse parser in the module, and what a job could not pass."""
    if not uses_argparse(tree):
        return [], []
    subparsers = _subcommand_parsers(tree, names)
    arguments: list[Argument] = []
    problems: list[str] = []
    calls = sorted((n for n in ast.walk(tree) if _is_call_to(n, "add_argument")), key=lambda n: n.lineno)
    for call in calls:
        receiver = dotted(call.func.value)  # type: ignore[attr-defined]
        found, problem = _argument(call, names, script, subparsers.get(receiver))
        if found is not None:
            arguments.append(found)
        if problem:
            problems.append(problem)
    arguments = _apply_set_defaults(tree, names, arguments)
    if subparsers:
        commands = sorted({c for c in subparsers.values()})
        problems.append(
            f"{code(script)} takes a subcommand ({', '.join(map(code, commands))}), which a job cannot pass (it passes only "
            "--name=value): make one command the default, or add a small script that runs it, and name that "
            "script in program.md"
        )
    return arguments, problems


def _is_call_to(node: ast.AST, attr: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attr


def _subcommand_parsers(tree: ast.Module, names: dict[str, Any]) -> dict[str, str]:
    """Variable name -> subcommand, for ``p = subparsers.add_parser("train")`` and groups made from ``p``."""
    holders: set[str] = set()
    parsers: dict[str, str] = {}
    assigns = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Assign) and len(n.targets) == 1), key=lambda n: n.lineno)
    for node in assigns:
        target = dotted(node.targets[0])
        if not target or not isinstance(node.value, ast.Call) or not isinstance(node.value.func, ast.Attribute):
            continue
        method, receiver = node.value.func.attr, dotted(node.value.func.value)
        if method == "add_subparsers":
            holders.add(target)
        elif method == "add_parser" and receiver in holders and node.value.args:
            command = value_of(node.value.args[0], names)
            parsers[target] = command if isinstance(command, str) else "?"
        elif method in ("add_argument_group", "add_mutually_exclusive_group") and receiver in parsers:
            parsers[target] = parsers[receiver]
    return parsers


def _argument(call: ast.Call, names: dict[str, Any], script: str, subcommand: str | None) -> tuple[Argument | None, str | None]:
    flags = [value_of(a, names) for a in call.args]
    if not flags or any(not isinstance(f, str) for f in flags):
        return None, f"{code(script)} line {call.lineno}: an argument whose name is built at run time (not read; add it by hand)"
    long = [f for f in flags if f.startswith("--") and len(f) > 2]
    action = value_of(keyword(call, "action"), names)
    action_name = dotted(keyword(call, "action")) if action is UNKNOWN else action
    nargs = value_of(keyword(call, "nargs"), names)
    default = value_of(keyword(call, "default"), names)
    required = value_of(keyword(call, "required"), names) is True
    choices = value_of(keyword(call, "choices"), names)
    kind, typed = _kind(call, default)
    common = dict(line=call.lineno, default=None if default is UNKNOWN else default,
                  has_default=keyword(call, "default") is not None and default is not UNKNOWN,
                  choices=choices if isinstance(choices, tuple) and choices else None, subcommand=subcommand, typed=typed)
    if not flags[0].startswith("-"):  # positional
        optional = nargs in ("?", "*") or keyword(call, "default") is not None
        problem = None if optional else (
            f"{code(script)} line {call.lineno} takes a positional argument {code(flags[0])}, which a job cannot pass "
            "(it passes only --name=value): give it a default (nargs='?') or make it an option")
        return Argument(name=flags[0], kind=kind, origin=flags[0], positional=True, required=not optional,
                        **common), problem
    if not long:
        return None, f"{code(script)} line {call.lineno}: {code(flags[0])} has only a short form, which a job cannot pass as --name=value"
    flag = str(action_name).rsplit(".", 1)[-1] in FLAG_ACTIONS | {"BooleanOptionalAction"}
    if nargs not in (UNKNOWN, None, "?") or action_name in ("append", "extend"):
        kind = "list"
    return Argument(name=long[0][2:], kind="bool" if flag else kind, origin=long[0], required=required,
                    takes_value=not flag, **common), None


def _kind(call: ast.Call, default: Any) -> tuple[str, bool]:
    """The value's kind, and whether argparse converts it (``type=`` given or a string)."""
    type_node = keyword(call, "type")
    if type_node is not None:
        name = dotted(type_node)
        if name in _TYPES:
            return _TYPES[name], True
        if "bool" in name.lower():  # str2bool, string_to_bool
            return "bool", True
        return "unknown", True
    if isinstance(default, bool):
        return "bool", False
    if isinstance(default, int):
        return "int", False
    if isinstance(default, float):
        return "float", False
    return "str", True


def _apply_set_defaults(tree: ast.Module, names: dict[str, Any], arguments: list[Argument]) -> list[Argument]:
    overrides: dict[str, Any] = {}
    for node in ast.walk(tree):
        if _is_call_to(node, "set_defaults"):
            for kw in node.keywords:
                value = value_of(kw.value, names)
                if kw.arg and value is not UNKNOWN:
                    overrides[kw.arg] = value
    if not overrides:
        return arguments
    out = []
    for arg in arguments:
        dest = arg.name.replace("-", "_")
        if dest in overrides:
            arg = Argument(**{**arg.__dict__, "default": overrides[dest], "has_default": True})
        out.append(arg)
    return out
