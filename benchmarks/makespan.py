"""Figure 3: how long a campaign takes on the calendar, one job at a time (the seed) against max_parallel 2 and 4.

A whole campaign on a simulated clock (``tests/simulate.py``'s ``FakeClock``,
the ``InMemoryBackend`` and the real ``Step`` with the search proposer and the
file forge): 12 jobs of 30 minutes each, a step every 15 minutes (the cron
tick). A job starts running ``--queue`` minutes after the step that submitted
it and finishes 30 minutes later; a step sees every job that finished at or
before its tick. Reported: the hours until the last job ends and until the
step that records the stop, the fraction of that time in which no job runs,
and the slot use (job time over ``max_parallel`` x the time to the last job's end).

    python benchmarks/makespan.py [--quick] [--jobs 12] [--job-minutes 30] [--cron-minutes 15]
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import _common
from _common import table

from mlr_action.backends.base import JobStage
from mlr_action.backends.memory import InMemoryBackend
from programs import program_text
from simulate import FakeClock, make_step

PARALLEL = (1, 2, 4)


def program(jobs: int, parallel: int) -> str:
    envelope = {"max_jobs": jobs, "max_walltime": "1000h", "allowed_flavors": ["a10g-large"], "max_timeout": "2h",
                "allow_deletes": False, "output_repos": [], "max_parallel": parallel}
    campaign = {"metric": "eval_accuracy", "direction": "maximize", "target": 2.0, "script": "train.py",
                "params": {"lr": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
                           "batch_size": {"type": "int", "low": 4, "high": 64},
                           "scheduler": {"choices": ["linear", "cosine"]}},
                "flavor": "a10g-large", "timeout": "1h", "name": "makespan"}
    return program_text(envelope, campaign)


def simulate(*, jobs: int, parallel: int, job_s: float, cron_s: float, queue_s: float, max_ticks: int = 1000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "program.md").write_text(program(jobs, parallel))
        (root / "train.py").write_text("print('eval_accuracy=0.5')\n")
        clock = FakeClock()
        backend = InMemoryBackend(clock=clock.seconds)
        step = make_step(root, backend, clock)
        t0 = clock.seconds()
        runs: dict[str, tuple[float, float]] = {}  # job id -> (start, end), seconds after the first tick
        started: set[str] = set()
        done: set[str] = set()
        stop_at = None

        def at(seconds: float) -> None:
            clock.now = datetime.fromtimestamp(t0 + seconds, timezone.utc)

        for tick in range(max_ticks):
            now = tick * cron_s
            # what happened since the last tick, in time order: jobs starting, jobs finishing
            events = [(start, 0, j) for j, (start, _) in runs.items() if j not in started and start <= now]
            events += [(end, 1, j) for j, (_, end) in runs.items() if j not in done and end <= now]
            for when, kind, job_id in sorted(events):
                at(when)
                if kind == 0:
                    backend.advance(job_id, JobStage.RUNNING)
                    started.add(job_id)
                else:
                    backend.advance(job_id, JobStage.COMPLETED, duration_s=job_s, logs="eval_accuracy=0.5\n")
                    done.add(job_id)
            at(now)
            result = step.run()
            if result.exit_code != 0:
                raise SystemExit(f"step at {now / 60:.0f} min failed: {result.events}")
            for job_id in backend.jobs:
                if job_id not in runs:
                    runs[job_id] = (now + queue_s, now + queue_s + job_s)
            if result.stopped:
                stop_at = now
                break
        if stop_at is None:
            raise SystemExit(f"the campaign did not stop in {max_ticks} ticks")
    last_end = max(end for _, end in runs.values())
    idle = idle_seconds(list(runs.values()), last_end)
    return {
        "max_parallel": parallel, "jobs": len(runs), "last_job_ends_h": last_end / 3600, "stopped_h": stop_at / 3600,
        "idle_fraction": idle / last_end, "idle_h": idle / 3600, "ticks": stop_at / cron_s + 1,
        "job_hours": sum(e - s for s, e in runs.values()) / 3600,
        # job time over what max_parallel slots could have run until the last job ended
        "slot_use": sum(e - s for s, e in runs.values()) / (parallel * last_end),
        "runs": sorted((s / 60, e / 60) for s, e in runs.values()),
    }


def idle_seconds(intervals: list[tuple[float, float]], horizon: float) -> float:
    """Time in [0, horizon] covered by no interval."""
    covered, cursor = 0.0, 0.0
    for start, end in sorted(intervals):
        start, end = max(start, cursor), min(end, horizon)
        if end > start:
            covered += end - start
            cursor = end
    return horizon - covered


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=12)
    p.add_argument("--job-minutes", type=float, default=30)
    p.add_argument("--cron-minutes", type=float, default=15)
    p.add_argument("--queue-minutes", type=float, nargs="*", default=None,
                   help="minutes between submit and start (default: 0 and 2: HF Jobs scheduling and image pull)")
    args = p.parse_args()
    queues = args.queue_minutes if args.queue_minutes is not None else ([0] if args.quick else [0, 2])
    jobs = 4 if args.quick else args.jobs
    results: dict[str, Any] = {"jobs": jobs, "job_minutes": args.job_minutes, "cron_minutes": args.cron_minutes, "cases": []}
    rows = []
    for queue in queues:
        base = None
        for parallel in PARALLEL:
            r = simulate(jobs=jobs, parallel=parallel, job_s=args.job_minutes * 60, cron_s=args.cron_minutes * 60,
                         queue_s=queue * 60)
            r["queue_minutes"] = queue
            base = base or r["stopped_h"]
            r["speedup_vs_one_at_a_time"] = base / r["stopped_h"]
            results["cases"].append(r)
            rows.append([f"{queue:g} min", parallel if parallel > 1 else "1 (seed)", r["jobs"], f"{r['last_job_ends_h']:.2f}",
                         f"{r['stopped_h']:.2f}", f"{r['idle_fraction']:.0%}", f"{r['slot_use']:.0%}", f"{r['speedup_vs_one_at_a_time']:.1f}x"])
    print(f"{jobs} jobs of {args.job_minutes:g} min, a step every {args.cron_minutes:g} min (simulated clock)")
    print(table(["queue before start", "max_parallel", "jobs", "last job ends (h)", "campaign stopped (h)",
                 "time with no job running", "slot use", "speed-up"], rows))
    _common.write_results("makespan", results, quick=args.quick)


if __name__ == "__main__":
    main()
