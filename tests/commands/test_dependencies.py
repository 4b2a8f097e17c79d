"""Every package mlr_action imports is declared in pyproject.toml, by the distribution that provides it."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import distributions
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
NEWER_STDLIB = {"tomllib"}  # the standard library's from 3.11 on; 3.10 imports tomli instead (declared with a marker)


def imported_top_level_modules() -> dict[str, str]:
    """Top-level module -> a file that imports it (absolute imports only), for every module of mlr_action."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "mlr_action").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = [*project["dependencies"], *(d for group in project["optional-dependencies"].values() for d in group)]
    return {_normal(re.match(r"[A-Za-z0-9_.\-]+", spec).group(0)) for spec in specs}


def providers() -> dict[str, set[str]]:
    """Top-level module -> the installed distributions that ship it (from their RECORD, as 3.11+'s
    ``packages_distributions`` reads it; 3.10's reads only ``top_level.txt``, which many wheels lack)."""
    out: dict[str, set[str]] = {}
    for dist in distributions():
        record = dist.read_text("RECORD") or dist.read_text("SOURCES.txt") or ""
        # the first path part of each line, read as text: ``dist.files`` builds an object per file (slow for scipy)
        tops = {line.split(",", 1)[0].lstrip("/").split("/", 1)[0] for line in record.splitlines() if line}
        for top in tops:
            if top.endswith((".dist-info", ".egg-info", ".data")) or top in ("", "..", "__pycache__"):
                continue
            out.setdefault(top.removesuffix(".py"), set()).add(dist.metadata["Name"])
    return out


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_declared() -> None:
    shipped = providers()
    ours = declared()
    missing = []
    for module, where in imported_top_level_modules().items():
        if module == "mlr_action" or module in sys.stdlib_module_names or module in NEWER_STDLIB:
            continue
        # a package not installed here (a marker leaves it out) is known by its own name
        dists = {_normal(d) for d in shipped.get(module, set())} or {_normal(module)}
        if not dists & ours:
            missing.append(f"{module} (imported by {where}; from {', '.join(sorted(dists)) or 'no installed package'})")
    assert not missing, "imported but not declared in pyproject.toml: " + "; ".join(missing)
