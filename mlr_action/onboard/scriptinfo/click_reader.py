"""click and typer options, read from the syntax tree.

Guarantees: click options come from ``@click.option(...)`` decorators (or
``option`` imported from click) and typer options from the parameters of the
command function (``typer.run(main)`` or ``@app.command()``), whether the
default is a value, ``typer.Option(default, ...)``, an ``Annotated[...,
typer.Option(...)]`` or a module-level ``X = typer.Option(...)``. An option
is recorded the way a job passes it: its first long declaration without the
dashes, or for typer the parameter name with ``_`` as ``-``. Booleans are
flags (``--x/--no-x``), which take no value. ``click.Choice``, ``Literal``
and ``Enum`` give choices; ``FloatRange``/``IntRange`` and typer's
``min``/``max`` give bounds. A click group or a typer app with more than one
command needs a subcommand, and a required ``argument`` is positional: both
are reported as problems.
"""

from __future__ import annotations

import ast
from typing import Any

from mlr_action.core.markup import code
from mlr_action.onboard.scriptinfo.model import Argument
from mlr_action.onboard.scriptinfo.values import UNKNOWN, dotted, keyword, value_of

_TYPES = {"float": "float", "int": "int", "str": "str", "bool": "bool", "Path": "str", "pathlib.Path": "str"}


def imports(tree: ast.Module, package: str) -> dict[str, str]:
    """Local name -> dotted name for what the module imports from ``package`` (and ``package`` itself)."""
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == package:
                    found[a.asname or a.name] = package
        elif isinstance(node, ast.ImportFrom) and node.module == package:
            for a in node.names:
                found[a.asname or a.name] = f"{package}.{a.name}"
    return found


def _resolve(node: ast.AST, aliases: dict[str, str]) -> str:
    name = dotted(node.func if isinstance(node, ast.Call) else node)
    head, _, rest = name.partition(".")
    return aliases.get(head, head) + (f".{rest}" if rest else "") if head in aliases else name


# --- click ------------------------------------------------------------------------------------


def read_click(tree: ast.Module, names: dict[str, Any], script: str) -> tuple[list[Argument], list[str]]:
    aliases = imports(tree, "click")
    if not aliases:
        return [], []
    arguments, problems, commands = [], [], 0
    for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        kinds = [_resolve(d, aliases) for d in fn.decorator_list]
        if not any(k.endswith((".command", ".group")) or k in ("click.command", "click.group") for k in kinds):
            continue
        commands += sum(k.endswith(".command") for k in kinds)
        for deco in fn.decorator_list:
            if not isinstance(deco, ast.Call):
                continue
            what = _resolve(deco, aliases)
            if what == "click.option":
                found, problem = _click_option(deco, names, aliases, script)
            elif what == "click.argument":
                found, problem = _click_argument(deco, names, script)
            else:
                continue
            arguments += [found] if found else []
            problems += [problem] if problem else []
    if any(_resolve(d, aliases) == "click.group" for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef)
           for d in fn.decorator_list if isinstance(d, ast.Call)):
        problems.append(f"{code(script)} is a click group: a job cannot pass its subcommand (it passes only --name=value); "
                        "name a script that runs one command")
    return arguments, problems


def _click_option(call: ast.Call, names, aliases, script) -> tuple[Argument | None, str | None]:
    decls = [value_of(a, names) for a in call.args]
    if any(not isinstance(d, str) for d in decls):
        return None, f"{code(script)} line {call.lineno}: an option whose name is built at run time (not read)"
    long = [d for d in decls if d.startswith("--")]
    if not long:
        return None, f"{code(script)} line {call.lineno}: {code(decls[0]) if decls else 'an option'} has no long form a job can pass"
    first = long[0]
    slash = "/" in first
    default = value_of(keyword(call, "default"), names)
    flag = slash or value_of(keyword(call, "is_flag"), names) is True or value_of(keyword(call, "count"), names) is True
    kind, choices, low, high = _click_type(keyword(call, "type"), names, aliases, default)
    if value_of(keyword(call, "multiple"), names) is True or value_of(keyword(call, "nargs"), names) not in (UNKNOWN, 1):
        kind = "list"
    return Argument(
        name=first.split("/")[0][2:], kind="bool" if flag or kind == "bool" else kind, line=call.lineno, origin=first,
        default=None if default is UNKNOWN else default, has_default=default is not UNKNOWN and default is not None,
        choices=choices, required=value_of(keyword(call, "required"), names) is True and default is UNKNOWN,
        takes_value=not flag and kind != "bool", low=low, high=high,
    ), None


def _click_type(node, names, aliases, default) -> tuple[str, tuple | None, float | None, float | None]:
    if node is None:  # click infers the type from the default
        if isinstance(default, bool):
            return "bool", None, None, None
        return {int: "int", float: "float"}.get(type(default), "str"), None, None, None
    if isinstance(node, ast.Call):
        what = _resolve(node, aliases)
        if what == "click.Choice" and node.args:
            choices = value_of(node.args[0], names)
            return "str", choices if isinstance(choices, tuple) and choices else None, None, None
        if what in ("click.FloatRange", "click.IntRange"):
            bounds = [value_of(a, names) for a in node.args[:2]]
            bounds += [UNKNOWN] * (2 - len(bounds))
            low = value_of(keyword(node, "min"), names) if keyword(node, "min") is not None else bounds[0]
            high = value_of(keyword(node, "max"), names) if keyword(node, "max") is not None else bounds[1]
            kind = "float" if what == "click.FloatRange" else "int"
            return kind, None, _num(low), _num(high)
        return "unknown", None, None, None
    name = _resolve(node, aliases)
    return _TYPES.get(name, "unknown" if name else "str"), None, None, None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _click_argument(call: ast.Call, names, script) -> tuple[Argument | None, str | None]:
    name = value_of(call.args[0], names) if call.args else UNKNOWN
    if not isinstance(name, str):
        return None, None
    optional = keyword(call, "default") is not None or value_of(keyword(call, "required"), names) is False
    problem = None if optional else (f"{code(script)} line {call.lineno} takes a positional argument {code(name)}, which a job "
                                     "cannot pass (it passes only --name=value): make it an option with a default")
    return Argument(name=name, kind="str", line=call.lineno, origin=name, positional=True, required=not optional), problem


# --- typer ------------------------------------------------------------------------------------


def read_typer(tree: ast.Module, names: dict[str, Any], script: str) -> tuple[list[Argument], list[str]]:
    aliases = imports(tree, "typer")
    if not aliases:
        return [], []
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    commands = [f for f in functions.values() if any(_resolve(d, {}).endswith(".command") for d in f.decorator_list)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _resolve(node, aliases) == "typer.run" and node.args:
            target = functions.get(dotted(node.args[0]))
            commands += [target] if target is not None and target not in commands else []
    problems = []
    if len(commands) > 1:
        problems.append(f"{code(script)} has {len(commands)} typer commands ({', '.join(code(f.name) for f in commands)}): a job "
                        "cannot pass a subcommand (it passes only --name=value); name a script with one command")
    if not commands:
        return [], problems
    options = {t: v for t, v in (_module_option(s) for s in tree.body) if t}
    arguments = []
    for param, default in _parameters(commands[0]):
        found, problem = _typer_param(param, default, options, names, aliases, tree, script)
        arguments += [found] if found else []
        problems += [problem] if problem else []
    return arguments, problems


def _module_option(stmt: ast.stmt) -> tuple[str | None, ast.AST | None]:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id, stmt.value
    return None, None


def _parameters(fn: ast.FunctionDef) -> list[tuple[ast.arg, ast.AST | None]]:
    args = fn.args.args + fn.args.kwonlyargs
    defaults = [None] * (len(fn.args.args) - len(fn.args.defaults)) + list(fn.args.defaults) + list(fn.args.kw_defaults)
    return list(zip(args, defaults))


def _typer_param(param, default, options, names, aliases, tree, script) -> tuple[Argument | None, str | None]:
    annotation, marker = _annotation(param.annotation, aliases)
    if isinstance(default, ast.Name) and default.id in options:
        default = options[default.id]
    if isinstance(default, ast.Call) and _resolve(default, aliases) in ("typer.Option", "typer.Argument"):
        marker = default
        default = default.args[0] if default.args else keyword(default, "default")
    value = value_of(default, names) if default is not None else UNKNOWN
    kind, choices = _typer_kind(annotation, tree, names)
    is_argument = marker is not None and _resolve(marker, aliases) == "typer.Argument"
    required = default is None or value is Ellipsis
    if is_argument or (default is None and marker is None):
        problem = None if not required else (
            f"{code(script)} line {param.lineno} takes a positional argument {code(param.arg)}, which a job cannot pass (it "
            "passes only --name=value): make it an option with a default")
        return Argument(name=param.arg, kind=kind, line=param.lineno, origin=param.arg, positional=True,
                        required=required), problem
    decls = [value_of(a, names) for a in (marker.args[1:] if marker is not None and marker.args and
                                          marker.args[0] is default else marker.args if marker is not None else [])]
    long = [d for d in decls if isinstance(d, str) and d.startswith("--")]
    name = long[0].split("/")[0][2:] if long else param.arg.replace("_", "-")
    low = _num(value_of(keyword(marker, "min"), names)) if marker is not None else None
    high = _num(value_of(keyword(marker, "max"), names)) if marker is not None else None
    if value is UNKNOWN and isinstance(default, ast.Attribute):  # an Enum member: the CLI takes its value
        value = _enum_members(tree, dotted(default.value), names).get(default.attr, UNKNOWN)
    return Argument(name=name, kind=kind, line=param.lineno, origin=f"--{name}",
                    default=None if value in (UNKNOWN, Ellipsis) else value,
                    has_default=value not in (UNKNOWN, Ellipsis, None), choices=choices, required=value is Ellipsis,
                    takes_value=kind != "bool", low=low, high=high), None


def _annotation(node, aliases) -> tuple[ast.AST | None, ast.Call | None]:
    """The type inside ``Annotated[T, typer.Option(...)]`` and the Option call, or the annotation itself."""
    if isinstance(node, ast.Subscript) and dotted(node.value).endswith("Annotated") and isinstance(node.slice, ast.Tuple):
        first, *rest = node.slice.elts
        marker = next((r for r in rest if isinstance(r, ast.Call) and _resolve(r, aliases).startswith("typer.")), None)
        return first, marker
    return node, None


def _typer_kind(node, tree, names) -> tuple[str, tuple | None]:
    if isinstance(node, ast.Subscript):
        head = dotted(node.value).rsplit(".", 1)[-1]
        if head == "Optional":
            return _typer_kind(node.slice, tree, names)
        if head == "Literal":
            values = value_of(node.slice, names)
            values = values if isinstance(values, tuple) else (values,)
            return "str", values if UNKNOWN not in values else None
        return ("list", None) if head in ("List", "list") else ("unknown", None)
    name = dotted(node) if node is not None else ""
    if name in _TYPES:
        return _TYPES[name], None
    enum = tuple(_enum_members(tree, name, names).values())
    return ("str", enum) if enum else ("unknown" if name else "str", None)


def _enum_members(tree, name, names) -> dict[str, Any]:
    """Member name -> value of the Enum class ``name`` defined in the module (empty when not readable)."""
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name):
        if any(dotted(b).endswith("Enum") for b in cls.bases):
            members = {s.targets[0].id: value_of(s.value, names) for s in cls.body
                       if isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Name)}
            return members if members and UNKNOWN not in members.values() else {}
    return {}
