"""Figure 2: how good is the best config the search proposer finds in 12 and 24 evaluations?

The proposer (``--proposer search``) against random search, Optuna's default
sampler (``TPESampler()``) and Optuna's Gaussian-process sampler
(``GPSampler()``, which needs torch: without it that column is skipped), on
the problems of ``search_problems.py`` (noisy functions over campaign-like
spaces: log floats, log ints, choices that interact with them, irrelevant
params, regions where the job fails) and on the example's real training task
(``examples/digits/train.py``, in-process).

The proposer is driven the way a campaign drives it: every evaluation is
recorded as ledger rows (an intent, then the completed row with metric,
decision and best so far, or an error row without a metric when the job
failed, each through JSON as the ledger stores it), the rows are folded into
campaign state, and ``SearchProposer().propose(program=, state=, count=1)`` is
asked for the next config (``max_parallel: 1``). Its seed is
``campaign.seed``, set to the run's seed. Optuna's samplers are told a failed
job as a FAIL trial.

For each run the incumbent after k evaluations is the config with the best
*observed* (noisy) value; its regret is the distance of its *true* value from
the optimum. Noise draws are shared between methods (same seed, same
evaluation index, same draw). Runs are cached per problem, method, seed and
code (``benchmarks/results/.cache/``), so an interrupted run resumes.

    nice python benchmarks/search_efficiency.py [--quick] [--seeds 30] [--digits-seeds 10] [--workers 2]
        [--only P,Q] [--methods search,tpe,gp,random] [--gp-seeds N] [--time-seeds 3] [--design] [--set NAME=VALUE]
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import io
import json
import logging
import os
import random
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import _common
from _common import REPO, RESULTS, table
from search_analysis import BASELINES, BUDGETS, METHOD_LABELS, METHODS, analyse, regret_rows, targets
from search_problems import PROBLEMS, SYNTHETIC, Problem

import yaml

CACHE = Path(os.environ.get("SEARCH_BENCH_CACHE") or RESULTS / ".cache" / "search_efficiency")


# --- the real task ------------------------------------------------------------------------

def digits_problem() -> Problem:
    """The example campaign's own search space and fixed values, from examples/digits/program.md."""
    from mlr_action.core.program import parse_program

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


def _evaluate(problem: Problem, config: dict[str, Any]) -> float | None:
    """The true value of ``config``; None when the job fails."""
    if problem.name == "digits":
        return digits_value(config, problem.fixed or {})
    return problem.true_value(config)


def program_for(problem: Problem, seed: int):
    from mlr_action.core.program import parse_program

    envelope = {"max_jobs": 1000, "max_walltime": "1000h", "allowed_flavors": ["cpu-basic"], "max_timeout": "1h",
                "output_repos": []}
    campaign = {"metric": "value", "direction": problem.direction, "script": "train.py", "params": problem.params,
                "fixed": problem.fixed or {}, "timeout": "1h", "name": f"bench-{problem.name.replace('_', '-')}", "seed": seed}
    text = (f"# {problem.name}\n\n## Budget envelope\n\n```yaml\n{yaml.safe_dump(envelope)}```\n\n"
            f"## Campaign\n\n```yaml\n{yaml.safe_dump(campaign, sort_keys=False)}```\n")
    return parse_program(text)


def _through_json(row):
    from mlr_action.core.ledger import dump_row, parse_row

    return parse_row(json.loads(dump_row(row)))


VARIANT: dict[str, Any] = {}  # what-if runs only (--set): never what ships


SEARCH_MODULES = ("mlr_action.proposers.search", "mlr_action.proposers.study", "mlr_action.proposers.gp", "mlr_action.proposers.pick",
                  "mlr_action.proposers.space")


def _search_modules() -> list[Any]:
    import importlib

    return [importlib.import_module(n) for n in SEARCH_MODULES if importlib.util.find_spec(n)]


def apply_variant(variant: dict[str, Any]) -> None:
    """Set the search proposer's constants for a what-if run (in this worker process only)."""
    VARIANT.clear()
    VARIANT.update(variant)
    for name, value in variant.items():
        owners = [m for m in _search_modules() if hasattr(m, name)]
        if not owners:
            raise SystemExit(f"--set {name}: no such constant in the search proposer's modules")
        for module in owners:  # where it is defined and where it was imported by name
            setattr(module, name, value)


def run_search(problem: Problem, seed: int, evals: int) -> tuple[list[dict], list[float]]:
    """The search proposer over ledger rows; the configs in order, and the seconds of each proposal."""
    from mlr_action.core.ledger import EventRow, experiment_row
    from mlr_action.proposers.search import SearchProposer
    from mlr_action.core.state import fold

    program = program_for(problem, seed)
    rows: list = [EventRow(event="started", ts="2026-01-01T00:00:00+00:00", campaign=program.campaign.name)]
    configs, best, times = [], None, []
    for i in range(1, evals + 1):
        state = fold(rows)
        start = time.perf_counter()
        proposals = SearchProposer().propose(program=program, state=state, count=1)
        times.append(time.perf_counter() - start)
        if not proposals:
            break
        config = dict(proposals[0].config)
        true = _evaluate(problem, config)
        ts = f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00+00:00"
        intent = experiment_row(iter=i, ts=ts, status="proposed", config=config, timeout_s=3600, flavor="cpu-basic",
                                hypothesis=proposals[0].hypothesis, proposer="search")
        if true is None:
            done = intent.model_copy(update={"status": "error", "job_id": f"job-{i}", "duration_s": 60.0,
                                             "error": "job exited 1: loss is nan", "best_so_far": best})
        else:
            observed = true + _noise(problem, seed, i)
            keep = program.better(observed, best)
            best = observed if keep else best
            done = intent.model_copy(update={"status": "completed", "job_id": f"job-{i}", "metric": observed,
                                             "decision": "keep" if keep else "discard", "best_so_far": best,
                                             "duration_s": 60.0})
        rows += [_through_json(intent), _through_json(done)]
        configs.append(config)
    return configs, times


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


def _sampler(method: str, seed: int):
    import optuna

    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if method == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def run_optuna(problem: Problem, seed: int, evals: int, method: str) -> tuple[list[dict], list[float]]:
    import optuna

    optuna.logging.set_verbosity(logging.ERROR)
    warnings.simplefilter("ignore")  # GPSampler is experimental and says so on every ask
    study = optuna.create_study(direction=problem.direction, sampler=_sampler(method, seed))
    dists = _distributions(problem)
    configs, times = [], []
    for i in range(1, evals + 1):
        start = time.perf_counter()
        trial = study.ask(dists)
        times.append(time.perf_counter() - start)
        config = dict(trial.params)
        true = _evaluate(problem, config)
        if true is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, true + _noise(problem, seed, i))
        configs.append(config)
    return configs, times


def one_run(task: tuple[Problem, str, int, int, dict]) -> dict[str, Any]:
    problem, method, seed, evals, variant = task
    if variant:
        apply_variant(variant)
    start = time.perf_counter()
    runner = run_search if method == "search" else (lambda p, s, e: run_optuna(p, s, e, method))
    configs, times = runner(problem, seed, evals)
    true = [_evaluate(problem, c) for c in configs]
    observed = [None if t is None else t + _noise(problem, seed, i) for i, t in enumerate(true, start=1)]
    model_times = times[10:] if method in ("tpe", "gp") else times  # Optuna's first 10 asks are random draws
    kinds = [problem.failure_kind(c) if problem.name != "digits" else None for c in configs]
    return {"problem": problem.name, "method": method, "seed": seed, "true": true, "observed": observed,
            "failure_kinds": kinds,
            "configs": configs, "seconds": time.perf_counter() - start,
            "seconds_per_proposal": sum(times) / max(1, len(times)),
            "seconds_per_model_proposal": sum(model_times) / max(1, len(model_times)),
            "max_seconds_per_proposal": max(times, default=0.0)}


def proposal_time(problem: Problem, finished: int = 50, repeats: int = 5) -> dict[str, Any]:
    """Seconds of one ``propose`` call with ``finished`` experiments in the ledger (every 5th failed) and 2 in flight."""
    from mlr_action.core.ledger import EventRow, experiment_row
    from mlr_action.proposers.search import SearchProposer
    from mlr_action.core.state import fold

    program = program_for(problem, 0)
    gen = random.Random(0)
    rows: list = [EventRow(event="started", ts="2026-01-01T00:00:00+00:00", campaign=program.campaign.name)]
    from mlr_action.proposers.space import from_unit

    for i in range(1, finished + 3):
        config = {n: from_unit(s, gen.random()) for n, s in program.campaign.params.items()}
        true = _evaluate(problem, config)
        status = "running" if i > finished else ("error" if true is None or i % 5 == 0 else "completed")
        rows.append(experiment_row(iter=i, ts="2026-01-01T00:00:00+00:00", status=status, config=config,
                                   timeout_s=3600, flavor="cpu-basic",
                                   metric=true + _noise(problem, 0, i) if status == "completed" else None))
    state = fold(rows)
    out: dict[str, Any] = {"finished": finished, "in_flight": 2}
    for count in (1, 4):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            SearchProposer().propose(program=program, state=state, count=count)
            times.append(time.perf_counter() - start)
        out[f"count_{count}"] = _common.summary(times)
    return out


def time_side_by_side(problems: list[Problem], seeds: int, methods: tuple[str, ...]) -> dict[str, Any]:
    """Seconds per model-guided proposal, every method run back to back in this process (same load), uncached.

    Optuna's first 10 asks are random draws, so only its later asks count; the
    search proposer's count from its first model-guided one (after the design).
    """
    out: dict[str, Any] = {}
    for pr in problems:
        times: dict[str, list[float]] = {m: [] for m in methods if m != "random"}
        for seed in range(seeds):
            for m in times:
                if m == "search":
                    configs, t = run_search(pr, seed, max(BUDGETS))
                    times[m] += t[initial_design(pr):]
                else:
                    times[m] += run_optuna(pr, seed, max(BUDGETS), m)[1][10:]
        out[pr.name] = {m: _common.summary(t) for m, t in times.items()}
    return out


def initial_design(problem: Problem) -> int:
    from mlr_action.proposers.search import initial_design_size

    return initial_design_size(program_for(problem, 0).campaign.params)


# --- the cache: one file per problem, method, seed, budget and code ------------------------------


def _code_tag(problem: Problem, method: str) -> str:
    """What a cached run depends on: the problem's definition, and the proposer's code or Optuna's version."""
    import optuna

    digest = hashlib.sha256(repr(problem).encode())
    if problem.name in SYNTHETIC:
        digest.update(inspect.getsource(SYNTHETIC[problem.name]).encode())
    digest.update(search_version()["sha256"].encode() if method == "search" else optuna.__version__.encode())
    digest.update(json.dumps(VARIANT, sort_keys=True).encode() if method == "search" else b"")
    return digest.hexdigest()[:12]


def _cache_path(task) -> Path:
    problem, method, seed, evals, _variant = task
    return CACHE / f"{problem.name}.{method}.{seed}.{evals}.{_code_tag(problem, method)}.json"


def run_all(tasks: list, workers: int) -> list[dict]:
    """Every task's run: from the cache when it has one, else computed (in a pool) and cached."""
    runs, todo = [], []
    for task in tasks:
        path = _cache_path(task)
        if path.exists():
            runs.append(json.loads(path.read_text()))
        else:
            todo.append((task, path))
    print(f"{len(tasks)} runs: {len(runs)} cached, {len(todo)} to do on {workers} workers ...", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(one_run, task): path for task, path in todo}
        for i, future in enumerate(as_completed(futures), start=1):
            run = _rounded(future.result())
            futures[future].write_text(json.dumps(run))
            runs.append(run)
            if i % 25 == 0 or i == len(todo):
                print(f"  {i}/{len(todo)} runs ({time.perf_counter() - start:.0f} s)", flush=True)
    return runs


def _rounded(run: dict[str, Any]) -> dict[str, Any]:
    """A run as stored: values to 6 significant digits."""
    r6 = lambda v: None if v is None else float(f"{v:.6g}")  # noqa: E731
    return {**run, "true": [r6(v) for v in run["true"]], "observed": [r6(v) for v in run["observed"]],
            "seconds": round(run["seconds"], 3),
            **{k: round(run[k], 4) for k in ("seconds_per_proposal", "seconds_per_model_proposal",
                                             "max_seconds_per_proposal")}}


def search_version() -> dict[str, Any]:
    """Which proposer was measured: a hash of its modules and their constants."""
    digest = hashlib.sha256()
    knobs: dict[str, Any] = {}
    for module in _search_modules():
        digest.update(Path(module.__file__).read_bytes())
        knobs.update({f"{module.__name__.rsplit('.', 1)[-1]}.{n}": getattr(module, n) for n in dir(module)
                      if n.isupper() and isinstance(getattr(module, n), (int, float, str))})
    return {"sha256": digest.hexdigest()[:12], "modules": [m.__name__ for m in _search_modules()],
            "module_constants": knobs}


# --- the report ------------------------------------------------------------------------------


def _torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=None, help="seeds per synthetic problem (default 30; --quick 3)")
    p.add_argument("--gp-seeds", type=int, default=None, help="seeds for GPSampler (default: --seeds)")
    p.add_argument("--digits-seeds", type=int, default=None, help="seeds for the real task (default 10; --quick 2; 0 skips it)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    p.add_argument("--only", default=None, help="comma-separated problems to run (default: all)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods (default: all)")
    p.add_argument("--design", action="store_true", help="the design problems only (held_out=False)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="what-if: set a constant of the search proposer's modules for the run (repeatable)")
    p.add_argument("--no-write", action="store_true", help="print the tables only (a design iteration)")
    p.add_argument("--time-seeds", type=int, default=3,
                   help="seeds of the side-by-side timing (training, mixed_b, hartmann6; every method; 0 skips it)")
    args = p.parse_args()
    variant: dict[str, Any] = {}
    for item in args.set:
        name, _, value = item.partition("=")
        variant[name] = json.loads(value)
    seeds = args.seeds or (3 if args.quick else 30)
    gp_seeds = args.gp_seeds if args.gp_seeds is not None else seeds
    digits_seeds = args.digits_seeds if args.digits_seeds is not None else (2 if args.quick else 10)
    evals = max(BUDGETS)
    methods = tuple(m for m in args.methods.split(",") if m in METHODS)
    if "gp" in methods and not _torch_available():
        print("GPSampler needs torch (pip install torch): its column is skipped")
        methods = tuple(m for m in methods if m != "gp")
    problems = list(PROBLEMS) + ([digits_problem()] if digits_seeds else [])
    if args.only:
        problems = [pr for pr in problems if pr.name in args.only.split(",")]
    if args.design:
        problems = [pr for pr in problems if not pr.held_out]
    tasks = []
    for pr in problems:
        n = digits_seeds if pr.name == "digits" else seeds
        for m in methods:
            tasks += [(pr, m, s, evals, variant if m == "search" else {}) for s in range(min(n, gp_seeds) if m == "gp" else n)]
    tasks.sort(key=lambda t: t[0].name != "digits")  # the slow real task first, so the pool is not left waiting on it
    if variant:
        apply_variant(variant)  # so the cache key names the variant
    runs = run_all(tasks, args.workers)
    report(problems, runs, methods, args, seeds=seeds, gp_seeds=gp_seeds, digits_seeds=digits_seeds, evals=evals,
           variant=variant)


def report(problems, runs, methods, args, **settings) -> None:
    results: dict[str, Any] = {**settings, "methods": methods, "search_proposer": search_version(), "problems": {}}
    for pr in problems:
        res = analyse(pr, [r for r in runs if r["problem"] == pr.name], methods)
        res.update(description=pr.description, direction=pr.direction, held_out=pr.held_out)
        results["problems"][pr.name] = res
    base = [b for b in BASELINES if b in methods]
    print("\nMedian regret [95% interval of the median] of the incumbent")
    print(table(["problem", "evals", *[METHOD_LABELS[m] for m in methods], *[f"ratio vs {b}" for b in base],
                 "wins vs TPE"], regret_rows(problems, results["problems"], methods)))
    fail_rows = [[n, m, f"{f['seen_share']:.0%}" if f["seen_share"] is not None else "-",
                  f"{f['share']:.0%}" if f["share"] is not None else "-", f["runs_with_a_failure"],
                  f["runs_over_a_fifth"], f["all_failures"]]
                 for n, r in results["problems"].items() for m in methods
                 if (f := r["budgets"][str(max(BUDGETS))].get(m, {}).get("failures"))]
    if fail_rows:
        print(f"\nFailures in {max(BUDGETS)} evaluations: share of the evaluations after a run's first failure that failed "
              "in a region (kind of failure) already seen, and in any")
        print(table(["problem", "method", "in a seen region", "any", "runs with a failure",
                     "runs over a fifth", "failed evaluations in all"], fail_rows))
    print("\nSeconds per proposal (median over runs of the mean per run): " + "; ".join(
        f"{n}: " + ", ".join(f"{m} {r['seconds_per_proposal'][m] * 1000:.0f} ms" for m in r["seconds_per_proposal"])
        for n, r in results["problems"].items()))
    if args.time_seeds:
        side = [pr for pr in problems if pr.name in ("training", "mixed_b", "hartmann6")]
        results["seconds_per_model_proposal_side_by_side"] = t = time_side_by_side(side, args.time_seeds, methods)
        print(f"\nSeconds per model-guided proposal, methods back to back ({args.time_seeds} seeds): " + "; ".join(
            f"{n}: " + ", ".join(f"{m} {_common.med_range(v, 1000, '{:.0f}')} ms" for m, v in ms.items())
            for n, ms in t.items()))
    timed = [pr for pr in problems if pr.name in ("training", "mixed_b")]
    results["proposal_seconds_at_50_finished"] = {pr.name: proposal_time(pr) for pr in timed}
    for name, t in results["proposal_seconds_at_50_finished"].items():
        print(f"one proposal at 50 finished experiments, {name}: {_common.med_range(t['count_1'], 1000, '{:.0f}')} ms; "
              f"four at once: {_common.med_range(t['count_4'], 1000, '{:.0f}')} ms")
    results["targets"] = targets(results["problems"])
    t = results["targets"]
    print(f"\ntarget <= 0.80x TPE at 12 and 24 on every problem: {'met' if t['vs_tpe']['met'] else 'MISSED'}; "
          f"no worse than GPSampler: {'not measured' if t['vs_gp']['met'] is None else 'met' if t['vs_gp']['met'] else 'MISSED'}; "
          f"failure share <= 1/5: {'met' if t['failure_share']['met'] else 'MISSED'}")
    print(f"search proposer measured: {results['search_proposer']['sha256']}")
    if args.no_write:
        return
    results["runs"] = [{k: v for k, v in r.items() if k != "configs"} for r in runs
                       if r["problem"] in results["problems"]]
    name = "search_efficiency" + ("".join(f".{k}={v}" for k, v in settings["variant"].items()) if settings["variant"] else "")
    _common.write_results(name, results, quick=args.quick)


if __name__ == "__main__":
    main()
