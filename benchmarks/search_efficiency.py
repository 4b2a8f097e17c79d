"""Figure 2: how good is the best config the search proposer finds in 12 and 24 evaluations?

The proposer (``--proposer search``) against random search and Optuna's
default sampler (``TPESampler()``), on noisy synthetic functions in mixed
spaces like a campaign's params (log floats, ints, choices) and on the
example's real training task (``examples/digits/train.py``, in-process).

The proposer is driven the way a campaign drives it: every evaluation is
recorded as ledger rows (an intent, then the completed row with metric,
decision and best so far, each through JSON as the ledger stores it), the
rows are folded into campaign state, and ``SearchProposer().propose(program=,
state=, count=1)`` is asked for the next config (``max_parallel: 1``). The
proposer's seed is ``campaign.seed``, set to the run's seed.

For each run the incumbent after k evaluations is the config with the best
*observed* (noisy) value; its regret is the distance of its *true* value from
the optimum. Noise draws are shared between methods (same seed, same
evaluation index, same draw). Reported: median regret and median true value of
the incumbent over seeds, with quartiles, and how often the proposer beat each
baseline on the same seed. Target: clearly better than random, and at least
20% lower median regret than ``TPESampler()`` at 12 evaluations.

    python benchmarks/search_efficiency.py [--quick] [--seeds 30] [--digits-seeds 20] [--workers 2]
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import math
import os
import random
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import _common
from _common import REPO, table

import yaml

BUDGETS = (12, 24)
METHODS = ("search", "tpe", "random")
METHOD_LABELS = {"search": "search proposer", "tpe": "TPESampler()", "random": "random"}


# --- the functions ------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    name: str
    params: dict[str, dict]  # as in program.md's Campaign block
    direction: str  # maximize | minimize
    optimum: float | None  # None: estimated as the best true value any run saw
    noise_sd: float
    description: str
    held_out: bool  # not one of the functions the proposer's sampler was tuned on
    fixed: dict[str, Any] | None = None

    def true_value(self, config: dict[str, Any]) -> float:
        return SYNTHETIC[self.name](config)


def branin(c: dict) -> float:
    x1, x2 = c["x1"], c["x2"]
    b, cc, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + cc * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H6_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
_H6_P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886], [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
         [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650], [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]
_H6_ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(c: dict) -> float:
    x = [c[f"x{i}"] for i in range(1, 7)]
    return -sum(a * math.exp(-sum(A * (xi - P) ** 2 for A, xi, P in zip(As, x, Ps)))
                for a, As, Ps in zip(_H6_ALPHA, _H6_A, _H6_P))


def finetune(c: dict) -> float:
    """Fine-tuning accuracy: the best step size grows with the batch; too large a step diverges."""
    u = math.log10(c["lr"]) - (math.log10(2e-4) + 0.15 * math.log2(c["batch_size"] / 16))
    acc = 0.93 - 0.06 * u * u - 0.25 * max(0.0, u - 0.4) ** 2
    acc -= 0.01 * math.log2(c["batch_size"] / 24) ** 2
    acc -= 0.5 * (c["warmup_ratio"] - 0.06) ** 2
    return acc + (0.01 if c["scheduler"] == "cosine" else 0.0)


_MLP_LR = {"relu": 3e-3, "tanh": 1e-3, "logistic": 1e-2}
_MLP_BASE = {"relu": 0.0, "tanh": -0.006, "logistic": -0.02}


def mlp(c: dict) -> float:
    """A digits-like surface: each activation has its own best step size; too small a net or too much L2 hurts."""
    act = c["activation"]
    acc = 0.975 + _MLP_BASE[act] - 0.04 * (math.log10(c["learning_rate_init"]) - math.log10(_MLP_LR[act])) ** 2
    acc -= 0.012 * max(0.0, math.log2(64 / c["hidden"])) ** 2 + 0.003 * max(0.0, math.log2(c["hidden"] / 128)) ** 2
    acc -= 0.01 * max(0.0, math.log10(c["alpha"]) + 3) ** 2
    return acc


SYNTHETIC: dict[str, Callable[[dict], float]] = {"branin": branin, "hartmann6": hartmann6, "finetune": finetune, "mlp": mlp}

FLOAT = {"type": "float"}
PROBLEMS = [
    Problem("branin", {"x1": {**FLOAT, "low": -5, "high": 10}, "x2": {**FLOAT, "low": 0, "high": 15}},
            "minimize", 0.397887, 0.5, "2 floats, noise sd 0.5", held_out=False),
    Problem("hartmann6", {f"x{i}": {**FLOAT, "low": 0, "high": 1} for i in range(1, 7)},
            "minimize", -3.32237, 0.05, "6 floats, noise sd 0.05", held_out=True),
    Problem("finetune", {"lr": {**FLOAT, "low": 1e-5, "high": 1e-3, "log": True},
                         "batch_size": {"type": "int", "low": 4, "high": 64},
                         "scheduler": {"choices": ["linear", "cosine"]},
                         "warmup_ratio": {**FLOAT, "low": 0.0, "high": 0.2}},
            "maximize", 0.94, 0.005, "log float, int, 2-way choice, float; noise sd 0.005", held_out=True),
    Problem("mlp", {"learning_rate_init": {**FLOAT, "low": 1e-4, "high": 1e-1, "log": True},
                    "hidden": {"type": "int", "low": 8, "high": 256, "log": True},
                    "alpha": {**FLOAT, "low": 1e-6, "high": 1e-1, "log": True},
                    "activation": {"choices": ["relu", "tanh", "logistic"]}},
            "maximize", 0.975, 0.003, "2 log floats, log int, 3-way choice; noise sd 0.003", held_out=True),
]


def digits_problem() -> Problem:
    """The example campaign's own search space and fixed values, from examples/digits/program.md."""
    from mlr_action.program import parse_program

    program = parse_program((REPO / "examples" / "digits" / "program.md").read_text())
    params = {n: s.model_dump(exclude_defaults=True) for n, s in program.campaign.params.items()}
    return Problem("digits", params, program.campaign.direction, None, 0.0,
                   "examples/digits/train.py, real training (deterministic); optimum: best seen by any run",
                   held_out=True, fixed=dict(program.campaign.fixed))


# --- the real task ------------------------------------------------------------------

_TRAIN = None
_CACHE: dict[str, float] = {}


def digits_value(config: dict[str, Any], fixed: dict[str, Any]) -> float:
    """Run examples/digits/train.py's main() in this process; its eval_accuracy (memoized: it is deterministic)."""
    global _TRAIN
    key = json.dumps(config, sort_keys=True)
    if key not in _CACHE:
        if _TRAIN is None:
            spec = importlib.util.spec_from_file_location("digits_train", REPO / "examples" / "digits" / "train.py")
            _TRAIN = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(_TRAIN)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            _TRAIN.main([f"--{k}={v}" for k, v in {**config, **fixed}.items()])
        lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("eval_accuracy=")]
        _CACHE[key] = float(lines[-1].split("=", 1)[1])
    return _CACHE[key]


# --- one run of one method ------------------------------------------------------------


def _noise(problem: Problem, seed: int, index: int) -> float:
    if not problem.noise_sd:
        return 0.0
    digest = hashlib.sha256(f"{problem.name}:{seed}:{index}".encode()).digest()
    return random.Random(digest).gauss(0.0, problem.noise_sd)


def _evaluate(problem: Problem, config: dict[str, Any]) -> float:
    if problem.name == "digits":
        return digits_value(config, problem.fixed or {})
    return problem.true_value(config)


def program_for(problem: Problem, seed: int):
    from mlr_action.program import parse_program

    envelope = {"max_jobs": 1000, "max_walltime": "1000h", "allowed_flavors": ["cpu-basic"], "max_timeout": "1h",
                "output_repos": []}
    campaign = {"metric": "value", "direction": problem.direction, "script": "train.py", "params": problem.params,
                "fixed": problem.fixed or {}, "timeout": "1h", "name": f"bench-{problem.name}", "seed": seed}
    text = (f"# {problem.name}\n\n## Budget envelope\n\n```yaml\n{yaml.safe_dump(envelope)}```\n\n"
            f"## Campaign\n\n```yaml\n{yaml.safe_dump(campaign, sort_keys=False)}```\n")
    return parse_program(text)


def _through_json(row):
    from mlr_action.ledger import dump_row, parse_row

    return parse_row(json.loads(dump_row(row)))


VARIANT: dict[str, Any] = {}  # what-if runs only (--n-initial, --set): never what ships


SEARCH_MODULES = ("mlr_action.proposers.search", "mlr_action.proposers.gp", "mlr_action.proposers.space")


def _search_modules() -> list[Any]:
    import importlib

    out = []
    for name in SEARCH_MODULES:
        try:
            out.append(importlib.import_module(name))
        except ModuleNotFoundError:  # an older layout kept everything in search.py
            pass
    return out


def apply_variant(variant: dict[str, Any]) -> None:
    """Set the search proposer's constants for a what-if run (in this worker process only)."""
    VARIANT.clear()
    VARIANT.update(variant)
    for name, value in variant.items():
        if name == "n_initial":
            continue
        owners = [m for m in _search_modules() if hasattr(m, name)]
        if not owners:
            raise SystemExit(f"--set {name}: no such constant in {', '.join(SEARCH_MODULES)}")
        for module in owners:  # where it is defined and where it was imported by name
            setattr(module, name, value)


def run_search(problem: Problem, seed: int, evals: int) -> tuple[list[dict], float]:
    """The search proposer over ledger rows; the configs in order, and the mean seconds per proposal."""
    from mlr_action.ledger import EventRow, experiment_row
    from mlr_action.proposers.search import SearchProposer
    from mlr_action.state import fold

    program = program_for(problem, seed)
    rows: list = [EventRow(event="started", ts="2026-01-01T00:00:00+00:00", campaign=f"bench-{problem.name}")]
    configs, best, spent = [], None, 0.0
    for i in range(1, evals + 1):
        state = fold(rows)
        start = time.perf_counter()
        proposer = SearchProposer(n_initial=VARIANT["n_initial"]) if "n_initial" in VARIANT else SearchProposer()
        proposals = proposer.propose(program=program, state=state, count=1)
        spent += time.perf_counter() - start
        if not proposals:
            break
        config = dict(proposals[0].config)
        observed = _evaluate(problem, config) + _noise(problem, seed, i)
        keep = program.better(observed, best)
        best = observed if keep else best
        ts = f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00+00:00"
        intent = experiment_row(iter=i, ts=ts, status="proposed", config=config, timeout_s=3600, flavor="cpu-basic",
                                hypothesis=proposals[0].hypothesis, proposer="search")
        done = intent.model_copy(update={"status": "completed", "job_id": f"job-{i}", "metric": observed,
                                         "decision": "keep" if keep else "discard", "best_so_far": best,
                                         "duration_s": 60.0})
        rows += [_through_json(intent), _through_json(done)]
        configs.append(config)
    return configs, spent / max(1, len(configs))


def _distributions(problem: Problem) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for name, spec in problem.params.items():
        if "choices" in spec:
            out[name] = CategoricalDistribution(spec["choices"])
        elif spec["type"] == "int":
            out[name] = IntDistribution(int(spec["low"]), int(spec["high"]), log=spec.get("log", False))
        else:
            out[name] = FloatDistribution(float(spec["low"]), float(spec["high"]), log=spec.get("log", False))
    return out


def run_optuna(problem: Problem, seed: int, evals: int, method: str) -> tuple[list[dict], float]:
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed) if method == "tpe" else optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(direction=problem.direction, sampler=sampler)
    dists = _distributions(problem)
    configs, spent = [], 0.0
    for i in range(1, evals + 1):
        start = time.perf_counter()
        trial = study.ask(dists)
        spent += time.perf_counter() - start
        config = dict(trial.params)
        study.tell(trial, _evaluate(problem, config) + _noise(problem, seed, i))
        configs.append(config)
    return configs, spent / evals


def one_run(task: tuple[Problem, str, int, int, dict]) -> dict[str, Any]:
    problem, method, seed, evals, variant = task
    if variant:
        apply_variant(variant)
    start = time.perf_counter()
    if method == "search":
        configs, per_proposal = run_search(problem, seed, evals)
    else:
        configs, per_proposal = run_optuna(problem, seed, evals, method)
    true = [_evaluate(problem, c) for c in configs]
    observed = [t + _noise(problem, seed, i) for i, t in enumerate(true, start=1)]
    best = (max if problem.direction == "maximize" else min)(range(len(observed)), key=observed.__getitem__)
    return {"problem": problem.name, "method": method, "seed": seed, "true": true, "observed": observed,
            "best_config": configs[best], "seconds": time.perf_counter() - start, "seconds_per_proposal": per_proposal}


# --- analysis ------------------------------------------------------------------------


def incumbent_value(run: dict, k: int, direction: str) -> float:
    """True value of the config with the best observed value among the first ``k``."""
    observed, true = run["observed"][:k], run["true"][:k]
    pick = max if direction == "maximize" else min
    i = pick(range(len(observed)), key=lambda j: observed[j])
    return true[i]


def regret(value: float, optimum: float, direction: str) -> float:
    return max(0.0, optimum - value) if direction == "maximize" else max(0.0, value - optimum)


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 4:
        m = statistics.median(values)
        return min(values), m, max(values)
    q = statistics.quantiles(values, n=4)
    return q[0], statistics.median(values), q[2]


def analyse(problem: Problem, runs: list[dict]) -> dict[str, Any]:
    optimum = problem.optimum
    if optimum is None:
        every = [v for r in runs for v in r["true"]]
        optimum = max(every) if problem.direction == "maximize" else min(every)
    out: dict[str, Any] = {"optimum": optimum, "optimum_known": problem.optimum is not None, "budgets": {}}
    by_method = {m: sorted((r for r in runs if r["method"] == m), key=lambda r: r["seed"]) for m in METHODS}
    for k in BUDGETS:
        entry: dict[str, Any] = {}
        regrets = {}
        for m, rs in by_method.items():
            values = [incumbent_value(r, k, problem.direction) for r in rs]
            regrets[m] = [regret(v, optimum, problem.direction) for v in values]
            q1, med, q3 = quartiles(regrets[m])
            entry[m] = {"median_regret": med, "q1_regret": q1, "q3_regret": q3,
                        "median_value": statistics.median(values), "seeds": len(values)}
        for base in ("tpe", "random"):
            ours, theirs = regrets["search"], regrets[base]
            ratio = entry["search"]["median_regret"] / entry[base]["median_regret"] if entry[base]["median_regret"] else None
            wins = sum(a < b for a, b in zip(ours, theirs)) + 0.5 * sum(a == b for a, b in zip(ours, theirs))
            entry[f"vs_{base}"] = {"median_regret_ratio": ratio, "win_rate": wins / len(ours)}
        out["budgets"][str(k)] = entry
    out["seconds_per_proposal"] = {m: statistics.median(r["seconds_per_proposal"] for r in rs) for m, rs in by_method.items()}
    return out


def _rounded(run: dict[str, Any]) -> dict[str, Any]:
    """A run as stored: values to 6 significant digits (the analysis used the full ones)."""
    r6 = lambda v: float(f"{v:.6g}")  # noqa: E731
    return {**run, "true": [r6(v) for v in run["true"]], "observed": [r6(v) for v in run["observed"]],
            "seconds": round(run["seconds"], 3), "seconds_per_proposal": round(run["seconds_per_proposal"], 4)}


def search_version() -> dict[str, Any]:
    """Which proposer was measured: it is still being tuned, so a hash of its modules goes with the numbers."""
    digest = hashlib.sha256()
    knobs: dict[str, Any] = {}
    for module in _search_modules():
        digest.update(Path(module.__file__).read_bytes())
        knobs.update({f"{module.__name__.rsplit('.', 1)[-1]}.{n}": getattr(module, n) for n in dir(module)
                      if n.isupper() and isinstance(getattr(module, n), (int, float, str))})
    return {"sha256": digest.hexdigest()[:12], "modules": [m.__name__ for m in _search_modules()], "module_constants": knobs}


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=None, help="seeds per synthetic function (default 30; --quick 3)")
    p.add_argument("--digits-seeds", type=int, default=None, help="seeds for the real task (default 20; --quick 2; 0 skips it)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    p.add_argument("--only", default=None, help="comma-separated problems to run (default: all)")
    p.add_argument("--n-initial", type=int, default=None, help="what-if: SearchProposer(n_initial=N)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="what-if: set a constant of mlr_action/proposers/search.py for the run (repeatable)")
    args = p.parse_args()
    variant: dict[str, Any] = {"n_initial": args.n_initial} if args.n_initial else {}
    for item in args.set:
        name, _, value = item.partition("=")
        variant[name] = json.loads(value)
    seeds = args.seeds or (3 if args.quick else 30)
    digits_seeds = args.digits_seeds if args.digits_seeds is not None else (2 if args.quick else 20)
    evals = 12 if args.quick else max(BUDGETS)
    problems = list(PROBLEMS) + ([digits_problem()] if digits_seeds else [])
    if args.only:
        problems = [pr for pr in problems if pr.name in args.only.split(",")]
    tasks = [(pr, m, s, evals, variant) for pr in problems for s in range(digits_seeds if pr.name == "digits" else seeds)
             for m in METHODS]
    # the slow real-task runs first, so the pool is not left waiting on them at the end
    tasks.sort(key=lambda t: t[0].name != "digits")
    print(f"{len(tasks)} runs of {evals} evaluations on {args.workers} workers ...", flush=True)
    start = time.perf_counter()
    runs: list[dict] = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for i, run in enumerate(pool.map(one_run, tasks, chunksize=1), start=1):
            runs.append(run)
            if i % 50 == 0 or i == len(tasks):
                print(f"  {i}/{len(tasks)} runs ({time.perf_counter() - start:.0f} s)", flush=True)
    budgets = [k for k in BUDGETS if k <= evals]
    results: dict[str, Any] = {"seeds": seeds, "digits_seeds": digits_seeds, "evaluations": evals,
                               "search_proposer": search_version(), "variant": variant, "problems": {},
                               "runs": [_rounded(r) for r in runs]}
    rows = []
    for pr in problems:
        res = analyse(pr, [r for r in runs if r["problem"] == pr.name])
        res.update(description=pr.description, direction=pr.direction, held_out=pr.held_out)
        results["problems"][pr.name] = res
        for k in budgets:
            e = res["budgets"][str(k)]
            rows.append([pr.name + ("" if pr.held_out else " (tuned on)"), k]
                        + [f"{e[m]['median_regret']:.3g} [{e[m]['q1_regret']:.2g}-{e[m]['q3_regret']:.2g}]" for m in METHODS]
                        + [f"{e['vs_tpe']['median_regret_ratio']:.2f}" if e["vs_tpe"]["median_regret_ratio"] is not None else "-",
                           f"{e['vs_tpe']['win_rate']:.0%}",
                           f"{e['vs_random']['median_regret_ratio']:.2f}" if e["vs_random"]["median_regret_ratio"] is not None else "-",
                           f"{e['vs_random']['win_rate']:.0%}"])
    print(f"\nMedian regret [quartiles] of the incumbent over seeds ({seeds} per synthetic function, {digits_seeds} for digits)")
    print(table(["problem", "evals", *[METHOD_LABELS[m] for m in METHODS], "ratio vs TPE", "wins vs TPE",
                 "ratio vs random", "wins vs random"], rows))
    value_rows = [[pr.name, k] + [f"{results['problems'][pr.name]['budgets'][str(k)][m]['median_value']:.4g}" for m in METHODS]
                  for pr in problems for k in budgets]
    print("\nMedian true value of the incumbent (optimum: "
          + ", ".join(f"{n} {r['optimum']:.4g}{'' if r['optimum_known'] else ' (best seen)'}" for n, r in results["problems"].items()) + ")")
    print(table(["problem", "evals", *[METHOD_LABELS[m] for m in METHODS]], value_rows))

    at12 = {n: r["budgets"]["12"] for n, r in results["problems"].items() if "12" in r["budgets"]}
    ratios = {n: e["vs_tpe"]["median_regret_ratio"] for n, e in at12.items()}
    valid = [v for v in ratios.values() if v]
    geo = math.exp(statistics.mean(math.log(v) for v in valid)) if valid else None
    results["targets"] = {
        "vs_tpe_at_12": {"ratios": ratios, "geometric_mean": geo,
                         "met_per_problem": {n: (v is not None and v <= 0.8) for n, v in ratios.items()},
                         "met": bool(valid) and all(v is not None and v <= 0.8 for v in ratios.values())},
        "vs_random_at_12": {n: e["vs_random"] for n, e in at12.items()},
        # better than random: lower median regret and more than half the seeds won, on every problem and budget
        "better_than_random": all(
            e["vs_random"]["win_rate"] > 0.5 and (e["vs_random"]["median_regret_ratio"] or 0) < 1
            for r in results["problems"].values() for e in r["budgets"].values()),
    }
    met_count = sum(results["targets"]["vs_tpe_at_12"]["met_per_problem"].values())
    print("\ntarget <= 0.80x TPE median regret at 12: " + ", ".join(
        f"{n} {v:.2f}" if v is not None else f"{n} -" for n, v in ratios.items())
        + (f"; geometric mean {geo:.2f}" if geo else "") + f"; met on {met_count} of {len(ratios)} problems"
        + f" -> {'met' if results['targets']['vs_tpe_at_12']['met'] else 'MISSED'}")
    print(f"better than random (every problem, 12 and {evals}): {results['targets']['better_than_random']}")
    print("seconds per proposal (median): " + ", ".join(
        f"{n} {r['seconds_per_proposal']['search'] * 1000:.0f} ms" for n, r in results["problems"].items()))
    print(f"search.py measured: {results['search_proposer']['sha256']}")
    name = "search_efficiency" + ("".join(f".{k}={v}" for k, v in variant.items()) if variant else "")
    _common.write_results(name, results, quick=args.quick)


if __name__ == "__main__":
    main()
