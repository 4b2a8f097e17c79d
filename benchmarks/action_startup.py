"""Figure 5: how long the action takes to build its Python environment, with a cold and a warm cache.

A wrapper around ``.ci/bench-action-env`` (the measurement the action's
authors use, not a second one): it runs ``setup/build-env.sh`` with an empty
cache (everything downloaded from PyPI: uv, then the pinned, hashed
requirements), again with the cache ``actions/cache`` would restore (the venv
deleted, nothing downloaded), then the first command the action runs in the
new environment (``python -m mlr_action.github.action --check-inputs``). This script
parses its lines and reports medians and ranges. Target: at most 5 s warm and
30 s cold.

The cold runs need network access to PyPI and their time depends on it.

    python benchmarks/action_startup.py [--quick] [--runs 3] [--python PYTHON]
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import _common
from _common import REPO, med_range, summary, table

LINE = re.compile(r"run (\d+): cold ([\d.]+)s\s+warm ([\d.]+)s\s+first --check-inputs ([\d.]+)s\s+\(cache (\S+)\)")
TARGETS = {"warm_s": 5.0, "cold_s": 30.0}


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=None, help="cold+warm builds (default 3, as .ci/bench-action-env; --quick 1)")
    p.add_argument("--python", default=getattr(sys, "_base_executable", sys.executable),
                   help="the interpreter the action's setup-python step would provide (default: this Python's base)")
    args = p.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    print(f"running .ci/bench-action-env {args.python} {runs} (cold runs download from PyPI) ...", flush=True)
    proc = subprocess.run([str(REPO / ".ci" / "bench-action-env"), args.python, str(runs)], cwd=REPO,
                          capture_output=True, text=True)
    print(proc.stdout, end="")
    if proc.returncode != 0:
        raise SystemExit(f".ci/bench-action-env failed (exit {proc.returncode}):\n{proc.stderr}")
    parsed = [m.groups() for m in map(LINE.search, proc.stdout.splitlines()) if m]
    if len(parsed) != runs:
        raise SystemExit(f"expected {runs} result lines from .ci/bench-action-env, got {len(parsed)}:\n{proc.stdout}")
    samples = {
        "cold_s": [float(g[1]) for g in parsed],
        "warm_s": [float(g[2]) for g in parsed],
        "first_check_inputs_s": [float(g[3]) for g in parsed],
    }
    stats = {k: summary(v) for k, v in samples.items()}
    results: dict[str, Any] = {"runs": runs, "python": args.python, "samples": samples, "stats": stats,
                               "cache_size": [g[4] for g in parsed], "raw": proc.stdout}
    results["targets"] = {k: {"limit_s": limit, "median_s": stats[k]["median"], "max_s": stats[k]["max"],
                              "met": stats[k]["median"] <= limit} for k, limit in TARGETS.items()}
    rows = [
        ["cold cache (downloads)", med_range(stats["cold_s"], 1, "{:.2f}"), f"<= {TARGETS['cold_s']:g}",
         "met" if results["targets"]["cold_s"]["met"] else "MISSED"],
        ["warm cache", med_range(stats["warm_s"], 1, "{:.2f}"), f"<= {TARGETS['warm_s']:g}",
         "met" if results["targets"]["warm_s"]["met"] else "MISSED"],
        ["first --check-inputs in the new env", med_range(stats["first_check_inputs_s"], 1, "{:.2f}"), "", ""],
    ]
    print(f"\nAction environment build, seconds, median (min-max) over {runs} runs")
    print(table(["build", "seconds", "target", ""], rows))
    _common.write_results("action_startup", results, quick=args.quick)


if __name__ == "__main__":
    main()
