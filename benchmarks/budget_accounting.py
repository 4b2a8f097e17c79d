"""Figure 4: how many experiments fit in an approved max_walltime, charging timeouts (the seed) or actual durations.

Whole campaigns on the simulated clock (``tests/simulate.py``: the real
``Step``, ``InMemoryBackend``, search proposer, file forge) whose jobs all run
for a fixed fraction of their timeout, until the campaign stops on its budget.

- **ours** (DESIGN.md section 3): finished jobs are charged their actual
  duration, jobs in flight their full timeout; 10% of ``max_walltime`` is
  kept in reserve.
- **seed**: every submitted job is charged its full timeout, finished or not.
  Measured with the same engine and the same reserve, with the budget's
  ``charged_seconds`` replaced by "the row's timeout" for the run (a benchmark
  may patch; the tests use fakes).

    python benchmarks/budget_accounting.py [--quick]
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from pathlib import Path
from typing import Any, Iterator

import _common
from _common import table

import mlr_action.core.budget as budget
from mlr_action.core.durations import format_duration, parse_duration
from programs import CAMPAIGN, program_text, with_
from simulate import make_step, run_campaign

FIGURE = 0.4  # the case: jobs use 40% of their timeout
CASES = [  # (max_walltime, timeout, max_parallel, fraction of the timeout each job runs)
    ("8h", "1h", 1, FIGURE),
    ("8h", "1h", 4, FIGURE),
    ("30m", "2m", 1, FIGURE),  # the example campaign's envelope (examples/digits)
    *(("8h", "1h", 1, f) for f in (0.2, 0.6, 0.8, 1.0)),  # how the gap depends on the fraction
]


@contextlib.contextmanager
def seed_accounting() -> Iterator[None]:
    """The seed's rule for the duration of the block: every submitted row costs its whole timeout."""
    original = budget.charged_seconds
    budget.charged_seconds = lambda row: float(row.charged_timeout_s)
    try:
        yield
    finally:
        budget.charged_seconds = original


def campaign(*, walltime: str, timeout: str, parallel: int, fraction: float, seed: bool) -> dict[str, Any]:
    envelope = {"max_jobs": 1000, "max_walltime": walltime, "allowed_flavors": ["t4-small", "a10g-large"],
                "max_timeout": timeout, "allow_deletes": False, "output_repos": ["me/sweep-*"], "max_parallel": parallel}
    program = program_text(envelope, with_(CAMPAIGN, target=2.0, patience=..., timeout=timeout))
    timeout_s = parse_duration(timeout)
    with tempfile.TemporaryDirectory() as tmp, (seed_accounting() if seed else contextlib.nullcontext()):
        root = Path(tmp)
        (root / "program.md").write_text(program)
        (root / "train.py").write_text("print('eval_accuracy=0.5')\n")
        step = make_step(root)
        results = run_campaign(step, max_ticks=5000, duration_s=fraction * timeout_s)
        last = results[-1]
        if not last.stopped:
            raise SystemExit(f"campaign did not stop: {last.events}")
        state = last.state
        durations = [e.duration_s or 0.0 for e in state.finished]
    return {
        "experiments": len(state.finished),
        "stop_reason": state.stopped.reason,
        "job_walltime_h": sum(durations) / 3600,
        "approved_h": parse_duration(walltime) / 3600,
        "share_of_approved_used": sum(durations) / parse_duration(walltime),
    }


def closed_form(walltime_s: int, timeout_s: int, parallel: int, fraction: float, reserve: float) -> dict[str, int]:
    """What the two rules allow, by arithmetic: a check on the simulation."""
    cap = walltime_s * (1 - reserve)
    seed = math.floor(cap / timeout_s + 1e-9)
    # ours: submit while finished * fraction * T + in_flight * T + T <= cap; at the end `parallel` run at once
    ours, in_flight, finished = 0, 0, 0
    while True:
        if finished * fraction * timeout_s + (in_flight + 1) * timeout_s > cap + 1e-9:
            if in_flight == 0:
                break
            finished, in_flight = finished + in_flight, 0  # wait for the jobs in flight
            continue
        ours, in_flight = ours + 1, in_flight + 1
        if in_flight == parallel:
            finished, in_flight = finished + in_flight, 0
    return {"seed": seed, "ours": ours}


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    args = p.parse_args()
    cases = CASES[:1] if args.quick else CASES
    results: dict[str, Any] = {"reserve": budget.RESERVE, "cases": []}
    rows = []
    for walltime, timeout, parallel, fraction in cases:
        seed = campaign(walltime=walltime, timeout=timeout, parallel=parallel, fraction=fraction, seed=True)
        ours = campaign(walltime=walltime, timeout=timeout, parallel=parallel, fraction=fraction, seed=False)
        check = closed_form(parse_duration(walltime), parse_duration(timeout), parallel, fraction, budget.RESERVE)
        results["cases"].append({"max_walltime": walltime, "timeout": timeout, "max_parallel": parallel,
                                 "fraction_of_timeout_used": fraction, "seed": seed, "ours": ours, "closed_form": check})
        rows.append([walltime, timeout, parallel, f"{fraction:.0%}", seed["experiments"], ours["experiments"],
                     f"{ours['experiments'] / seed['experiments']:.2f}x",
                     f"{format_duration(seed['job_walltime_h'] * 3600)} ({seed['share_of_approved_used']:.0%})",
                     f"{format_duration(ours['job_walltime_h'] * 3600)} ({ours['share_of_approved_used']:.0%})",
                     f"{check['seed']}/{check['ours']}"])
    print(f"Experiments that fit before the campaign stops on its budget ({budget.RESERVE:.0%} of max_walltime kept in reserve)")
    print(table(["max_walltime", "timeout", "max_parallel", "job uses", "seed: timeouts", "ours: durations", "ours/seed",
                 "seed: job time (of approved)", "ours: job time (of approved)", "arithmetic seed/ours"], rows))
    _common.write_results("budget_accounting", results, quick=args.quick)


if __name__ == "__main__":
    main()
