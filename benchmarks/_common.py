"""What every benchmark script shares: the machine it ran on, summary statistics, tables, result files.

Benchmarks are not tests: they report what was measured in one run, with
medians and ranges over repeats, and never assert on a time. Each script
writes ``benchmarks/results/<name>.json`` (``<name>.quick.json`` for a
``--quick`` smoke run, so a smoke run never replaces the real numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TESTS = REPO / "tests"

for _path in (str(REPO), str(TESTS)):  # mlr_action from this checkout; tests/simulate.py and tests/loopback/hf_server.py
    if _path not in sys.path:
        sys.path.insert(0, _path)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a smoke run: fewer repeats and sizes; results go to <name>.quick.json")
    return p


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _search_hash() -> str:
    """The search proposer's code (it decides what a submitting step costs and how well search does)."""
    import hashlib

    digest = hashlib.sha256()
    for name in ("search.py", "study.py", "gp.py", "pick.py", "space.py"):
        path = REPO / "mlr_action" / "proposers" / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def machine() -> dict[str, Any]:
    """Where and when the numbers were measured."""
    return {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "commit": _commit(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],  # other work on the machine skews wall times
        "search_proposer_sha256": _search_hash(),
        "packages": {p: _version(p) for p in ("mlr-action", "pydantic", "optuna", "numpy", "huggingface_hub", "scikit-learn")},
    }


def summary(values: Iterable[float]) -> dict[str, Any]:
    """Median and range (min, max) of repeated measurements, and the quartiles when there are enough."""
    data = sorted(float(v) for v in values)
    if not data:
        return {"n": 0, "median": None, "min": None, "max": None}
    out: dict[str, Any] = {"n": len(data), "median": statistics.median(data), "min": data[0], "max": data[-1]}
    if len(data) >= 4:
        q = statistics.quantiles(data, n=4)
        out.update(q1=q[0], q3=q[2])
    return out


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table, aligned for the terminal too."""
    text = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in text]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def med_range(stats: dict[str, Any], scale: float = 1.0, fmt: str = "{:.3g}") -> str:
    """``median (min-max)`` of a :func:`summary`, times ``scale``."""
    if not stats.get("n"):
        return "-"
    m, lo, hi = (stats[k] * scale for k in ("median", "min", "max"))
    return f"{fmt.format(m)} ({fmt.format(lo)}-{fmt.format(hi)})"


_SCALAR = r'(?:-?\d[\d.eE+-]*|null|true|false|"[^"\\\n]{0,80}")'
_FLAT_LIST = re.compile(r"\[\s*(" + _SCALAR + r"(?:,\s*" + _SCALAR + r")*)\s*\]")


def _compact(text: str) -> str:
    """Lists of numbers (and short strings) on one line: the results stay readable and a few times smaller."""
    return _FLAT_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in re.split(r",\s*\n\s*", m.group(1))) + "]", text)


def write_results(name: str, payload: dict[str, Any], *, quick: bool) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}{'.quick' if quick else ''}.json"
    data = {"benchmark": name, "quick": quick, "machine": machine(), **payload}
    path.write_text(_compact(json.dumps(data, indent=1, sort_keys=False, default=str)) + "\n", encoding="utf-8")
    print(f"\nresults: {path.relative_to(REPO)}")
    return path
