"""Figure 2's statistics: regret of the incumbent, medians with intervals, failures, targets.

Pure functions over the runs ``search_efficiency.py`` collects (a run is one
method on one problem with one seed: the true and observed value of every
evaluation, ``None`` where the job failed).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

BUDGETS = (12, 24)
METHODS = ("search", "tpe", "gp", "random")
METHOD_LABELS = {"search": "search proposer", "tpe": "TPESampler()", "gp": "GPSampler()", "random": "random"}
BASELINES = ("tpe", "gp", "random")
TARGET_VS_TPE = 0.8  # at most this ratio of median regrets, at every budget, on every problem
FAILURE_SHARE = 0.2  # at most this share of the evaluations after the first failure fail again


def incumbent_value(run: dict, k: int, direction: str, failed_value: float | None) -> float:
    """True value of the config with the best observed value among the first ``k`` (failures are not candidates)."""
    pick = max if direction == "maximize" else min
    done = [i for i, v in enumerate(run["observed"][:k]) if v is not None]
    if not done:
        return failed_value if failed_value is not None else math.nan
    return run["true"][pick(done, key=lambda j: run["observed"][j])]


def regret(value: float, optimum: float, direction: str) -> float:
    return max(0.0, optimum - value) if direction == "maximize" else max(0.0, value - optimum)


def median_interval(values: list[float]) -> tuple[float, float, float]:
    """The median and a distribution-free 95% interval for it (order statistics of the binomial)."""
    data, n = sorted(values), len(values)
    if n < 6:
        return data[0], statistics.median(data), data[-1]
    cdf, low = 0.0, 0
    for j in range(n + 1):  # the largest j with P(Binomial(n, 1/2) < j) <= 2.5%
        if cdf + math.comb(n, j) / 2 ** n > 0.025:
            low = j
            break
        cdf += math.comb(n, j) / 2 ** n
    low = max(low, 1)
    return data[low - 1], statistics.median(data), data[n - low]


def failure_share(runs: list[dict], k: int) -> dict[str, Any]:
    """After a run's first failure, how many of its next evaluations (up to ``k``) failed.

    ``share`` counts every failure; ``seen_share`` only failures in a region
    (a kind of failure: diverged, out of memory) where one was already seen,
    which is what the target is about: a first failure in a new region is how
    a search learns the region is there.
    """
    after = failed = seen = seeds = over = 0
    for run in runs:
        kinds = [kind if v is None else None for v, kind in zip(run["true"][:k], run.get("failure_kinds") or [None] * k)]
        if all(kind is None for kind in kinds):
            continue
        first = next(i for i, kind in enumerate(kinds) if kind is not None)
        rest, known = kinds[first + 1:], {kinds[first]}
        in_seen = 0
        for kind in rest:
            in_seen += kind in known
            known |= {kind} - {None}
        seeds += 1
        after += len(rest)
        failed += sum(kind is not None for kind in rest)
        seen += in_seen
        over += bool(rest) and in_seen / len(rest) > FAILURE_SHARE
    return {"runs_with_a_failure": seeds, "evaluations_after": after, "failed_after": failed,
            "share": failed / after if after else None, "seen_share": seen / after if after else None,
            "runs_over_a_fifth": over, "all_failures": sum(v is None for r in runs for v in r["true"][:k])}


def analyse(problem, runs: list[dict], methods: tuple[str, ...]) -> dict[str, Any]:
    optimum = problem.optimum
    if optimum is None:
        every = [v for r in runs for v in r["true"] if v is not None]
        optimum = max(every) if problem.direction == "maximize" else min(every)
    out: dict[str, Any] = {"optimum": optimum, "optimum_known": problem.optimum is not None, "budgets": {}}
    by_method = {m: sorted((r for r in runs if r["method"] == m), key=lambda r: r["seed"]) for m in methods}
    for k in BUDGETS:
        entry: dict[str, Any] = {}
        regrets = {}
        for m, rs in by_method.items():
            if not rs:
                continue
            values = [incumbent_value(r, k, problem.direction, problem.failed_value) for r in rs]
            regrets[m] = {r["seed"]: regret(v, optimum, problem.direction) for r, v in zip(rs, values)}
            low, med, high = median_interval(list(regrets[m].values()))
            entry[m] = {"median_regret": med, "ci95_low": low, "ci95_high": high,
                        "median_value": statistics.median(values), "seeds": len(values)}
            if problem.failed_value is not None:
                entry[m]["failures"] = failure_share(rs, k)
        for base in BASELINES:
            if base in regrets and "search" in regrets:
                entry[f"vs_{base}"] = comparison(regrets["search"], regrets[base])
        out["budgets"][str(k)] = entry
    out["seconds_per_proposal"] = {m: statistics.median(r["seconds_per_proposal"] for r in rs)
                                   for m, rs in by_method.items() if rs}
    return out


def comparison(ours: dict[int, float], theirs: dict[int, float]) -> dict[str, Any]:
    """Ratio of median regrets, and the share of common seeds won (ties count half)."""
    seeds = sorted(set(ours) & set(theirs))
    a, b = [ours[s] for s in seeds], [theirs[s] for s in seeds]
    mb = statistics.median(b) if b else 0.0
    ratio = statistics.median(a) / mb if mb else (1.0 if a and statistics.median(a) == 0 else None)
    wins = sum(x < y for x, y in zip(a, b)) + 0.5 * sum(x == y for x, y in zip(a, b))
    return {"median_regret_ratio": ratio, "win_rate": wins / len(seeds) if seeds else None, "seeds": len(seeds)}


def targets(problems: dict[str, dict]) -> dict[str, Any]:
    """Every target of figure 2, per problem and budget, and whether it was met."""
    vs_tpe = {n: {k: r["budgets"][k].get("vs_tpe", {}).get("median_regret_ratio") for k in r["budgets"]}
              for n, r in problems.items()}
    vs_gp = {n: {k: r["budgets"][k].get("vs_gp", {}).get("median_regret_ratio") for k in r["budgets"]}
             for n, r in problems.items()}
    fail = {n: r["budgets"][str(max(BUDGETS))]["search"].get("failures", {}).get("seen_share")
            for n, r in problems.items() if "failures" in r["budgets"][str(max(BUDGETS))].get("search", {})}
    tpe_met = {n: all(v is not None and v <= TARGET_VS_TPE for v in ks.values()) for n, ks in vs_tpe.items()}
    gp_met = {n: all(v is None or v <= 1.0 for v in ks.values()) for n, ks in vs_gp.items()}
    return {
        "vs_tpe": {"ratios": vs_tpe, "met_per_problem": tpe_met, "met": all(tpe_met.values())},
        "vs_gp": {"ratios": vs_gp, "met_per_problem": gp_met,
                  "met": all(gp_met.values()) if any(v is not None for ks in vs_gp.values() for v in ks.values()) else None},
        "failure_share": {"shares": fail, "met": all(v is None or v <= FAILURE_SHARE for v in fail.values())},
        "geometric_mean_vs_tpe": {k: _geo([ks[k] for ks in vs_tpe.values() if k in ks]) for k in map(str, BUDGETS)},
    }


def _geo(values: list[float | None]) -> float | None:
    valid = [v for v in values if v]
    return math.exp(statistics.mean(math.log(v) for v in valid)) if valid else None


def ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def regret_rows(problems: list, results: dict[str, dict], methods: tuple[str, ...]) -> list[list[str]]:
    rows = []
    for pr in problems:
        for k in BUDGETS:
            e = results[pr.name]["budgets"].get(str(k))
            if not e:
                continue
            cells = [f"{e[m]['median_regret']:.3g} [{e[m]['ci95_low']:.2g}-{e[m]['ci95_high']:.2g}]" if m in e else "-"
                     for m in methods]
            rows.append([pr.name + ("" if pr.held_out else " (design)"), k, *cells,
                         *(ratio_text(e.get(f"vs_{b}", {}).get("median_regret_ratio")) for b in BASELINES if b in methods),
                         f"{e['vs_tpe']['win_rate']:.0%}" if "vs_tpe" in e else "-"])
    return rows
