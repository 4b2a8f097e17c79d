"""The package's layers hold: no import cycle, and every import points down (README, "How it is built").

A pure AST walk over mlr_action/: every ``import`` counts, at module level or in a function (a function-level
import is a dependency all the same); only the annotations under ``if TYPE_CHECKING:`` are left out of the
layering rule (they never run), not out of the cycle rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mlr_action

PACKAGE = Path(mlr_action.__file__).resolve().parent

# The layers, lowest first: a module imports only modules of its own layer or a lower one.
LAYERS = [
    ("core", ("mlr_action.core",)),
    ("job", ("mlr_action.job",)),
    ("words", ("mlr_action.render", "mlr_action.onboard")),
    ("adapters", ("mlr_action.backends", "mlr_action.proposers", "mlr_action.forges", "mlr_action.github")),
    ("shell", ("mlr_action.shell",)),
    ("commands", ("mlr_action.commands",)),
    ("entry points", ("mlr_action.github.action", "mlr_action.github.action_step",
                      "mlr_action.github.action_validate", "mlr_action.github.inputs", "mlr_action.__main__")),
]


def layer_of(module: str) -> int:
    """The rank of a module: the longest matching prefix wins (the action's entry points sit in github/)."""
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank is not None or module == "mlr_action", f"{module} is in no layer: add its package to LAYERS"
    return len(LAYERS) if rank is None else rank


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _type_only(tree: ast.AST) -> set[int]:
    """The ids of import nodes under ``if TYPE_CHECKING:``."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ids |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return ids


def imports(known: dict[str, Path]) -> dict[str, dict[str, bool]]:
    """module -> {imported module of ours: runs at import or call time (False: only under TYPE_CHECKING)}."""
    edges: dict[str, dict[str, bool]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = _type_only(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        out = edges.setdefault(name, {})
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            for target in targets:
                while target not in known and "." in target:
                    target = target.rpartition(".")[0]
                if target in known and target != name and target != "mlr_action":
                    out[target] = out.get(target, False) or id(node) not in typing_only
    return edges


def cycles(edges: dict[str, dict[str, bool]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, {}))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on.add(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                elif child in on:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def upward(edges: dict[str, dict[str, bool]]) -> list[str]:
    return sorted(f"{src} ({LAYERS[layer_of(src)][0]}) imports {dst} ({LAYERS[layer_of(dst)][0]})"
                  for src, targets in edges.items() for dst, runs in targets.items()
                  if runs and layer_of(dst) > layer_of(src))


def test_no_import_cycle():
    assert cycles(imports(modules())) == []


def test_every_import_points_down():
    assert upward(imports(modules())) == []


def test_the_core_imports_only_the_core_even_for_annotations():
    edges = imports(modules())
    assert sorted(f"{src} imports {dst}" for src, targets in edges.items() if src.startswith("mlr_action.core")
                  for dst in targets if not dst.startswith("mlr_action.core")) == []


def test_the_checks_catch_a_cycle_and_an_upward_import(tmp_path):
    """The walk itself: a planted cycle and a planted core -> shell import are found."""
    package = tmp_path / "mlr_action"
    for sub in ("core", "shell"):
        (package / sub).mkdir(parents=True)
        (package / sub / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "core" / "a.py").write_text("def f():\n    from mlr_action.shell import b\n")
    (package / "shell" / "b.py").write_text("from mlr_action.core.a import f\n")
    edges = imports(modules(package))
    assert cycles(edges) == [["mlr_action.core.a", "mlr_action.shell.b"]]
    assert upward(edges) == ["mlr_action.core.a (core) imports mlr_action.shell.b (shell)"]
