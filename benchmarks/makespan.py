"""Figure 3: how long a campaign takes on the calendar, and what wakes each step: cron, linger, the job wake-up.

Whole campaigns on a simulated clock: the real ``Step`` (search proposer,
file forge, ``InMemoryBackend``), the real linger loop
(:func:`mlr_action.shell.linger.follow`, with the simulation's clock and sleep),
and ``tests/simulate.py``'s ``JobWorld``, which starts each job a start-up
after its submit and ends it its duration later. What starts a step:

- **seed**: the seed's own loop (an agent session, no runner): a wake-up at
  the job's expected duration after its submit, then every ``--recheck``
  minutes until it has ended;
- **cron**: a workflow run every ``--cron`` minutes;
- **cron + linger W**: the same, and a run that finds a job due within W
  follows it (the action's ``linger`` input);
- **wake-up**: cron, and a workflow run dispatched by each job as it ends
  (the action's ``wake-up``), ``--dispatch-seconds`` before its runner starts.

A workflow run starts ``--pickup-seconds`` after it is triggered, takes
``--setup-seconds`` before its step (checkout, the action's cached
environment), ``--step-seconds`` per step and ``--finish-seconds`` after the
last; a run triggered while another runs waits in the concurrency group (one
waits at most, as on GitHub) and, being behind the tip only in ``runs/``,
spends (``mlr_action.github.catchup``). Runner minutes are each run rounded up to a
whole minute, as GitHub bills them.

Reported: the makespan (first tick to the last job's end) and its ratio to
the sum of the jobs' durations (start-up included), the fraction of slot time
with no job (a slot holds a job from its submit to its end), runner minutes.

    python benchmarks/makespan.py [--quick]
"""

from __future__ import annotations

import math
import random
import tempfile
from pathlib import Path
from typing import Any

import _common
from _common import table

from mlr_action.backends.memory import InMemoryBackend
from mlr_action.shell.linger import Linger, follow
from programs import program_text
from simulate import FakeClock, JobWorld, make_step

MODES = ("seed", "cron", "linger", "wakeup")


def program(jobs: int, parallel: int) -> str:
    envelope = {"max_jobs": jobs, "max_walltime": "1000h", "allowed_flavors": ["a10g-large"], "max_timeout": "2h",
                "allow_deletes": False, "output_repos": [], "max_parallel": parallel}
    campaign = {"metric": "eval_accuracy", "direction": "maximize", "target": 2.0, "script": "train.py",
                "params": {"lr": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
                           "batch_size": {"type": "int", "low": 4, "high": 64},
                           "scheduler": {"choices": ["linear", "cosine"]}},
                "flavor": "a10g-large", "timeout": "1h", "name": "makespan", "patience": 100}
    return program_text(envelope, campaign)


def durations(jobs: int, mean_s: float, spread: float, seed: int = 3) -> list[float]:
    """Job run times spread uniformly over mean ± spread, the same for every mode."""
    rng = random.Random(seed)
    return [round(mean_s * (1 + rng.uniform(-spread, spread))) for _ in range(jobs)]


class Campaign:
    """One campaign under one way of waking its steps."""

    def __init__(self, root: Path, *, jobs: int, parallel: int, run_s: list[float], startup_s: float, opts: dict):
        (root / "program.md").write_text(program(jobs, parallel))
        (root / "train.py").write_text("print('eval_accuracy=0.5')\n")
        self.clock = FakeClock()
        self.t0 = self.clock.seconds()
        self.backend = InMemoryBackend(clock=self.clock.seconds)
        self.world = JobWorld(self.backend, self.clock, duration=lambda n: run_s[n], queue_s=startup_s)
        self.step = make_step(root, self.backend, self.clock)
        self.opts = opts
        self.runner_s: list[float] = []  # each workflow run's length on the runner
        self.steps = 0
        self.stopped_at: float | None = None

    def now(self) -> float:
        return self.clock.seconds() - self.t0

    def at(self, t: float) -> None:
        self.world.run_until(self.t0 + t)

    def one_step(self):
        result = self.step.run()
        self.steps += 1
        if result.exit_code != 0:
            raise SystemExit(f"step at {self.now() / 60:.1f} min failed: {result.events}")
        self.world.sleep(self.opts["step_s"])
        if result.finished and self.stopped_at is None:
            self.stopped_at = self.now()
        return result

    def workflow_run(self, triggered: float, linger_s: float) -> float:
        """A workflow run triggered at ``triggered``; returns when it ends."""
        start = triggered + self.opts["pickup_s"]
        self.at(start + self.opts["setup_s"])
        first = self.one_step()
        if linger_s:
            linger = Linger(until=self.clock.seconds() - self.opts["step_s"] + linger_s, clock=self.clock.seconds,
                            sleep=self.world.sleep)
            follow(first, run_step=self.one_step, inspect=lambda j: self.backend.inspect(job_id=j), linger=linger)
        end = self.now() + self.opts["finish_s"]
        self.runner_s.append(end - start)
        return end

    def ends(self) -> list[float]:
        return [end - self.t0 for _, end in self.world.runs.values()]


def simulate(mode: str, *, jobs: int, parallel: int, run_s: list[float], startup_s: float, cron_s: float,
             linger_s: float, opts: dict, max_runs: int = 2000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        c = Campaign(Path(tmp), jobs=jobs, parallel=parallel, run_s=run_s, startup_s=startup_s, opts=opts)
        if mode == "seed":
            _seed(c, opts)
        else:
            _workflow(c, mode, cron_s=cron_s, linger_s=linger_s if mode == "linger" else 0.0, opts=opts,
                      max_runs=max_runs)
        spans = [(s - c.t0 - startup_s, e - c.t0) for s, e in c.world.runs.values()]  # submit to end
    makespan = max(e for _, e in spans)
    busy = sum(e - s for s, e in spans)
    work = sum(run_s[:jobs]) + jobs * startup_s
    return {
        "mode": mode, "max_parallel": parallel, "jobs": len(spans), "makespan_h": makespan / 3600,
        "stopped_h": (c.stopped_at or makespan) / 3600, "job_hours": work / 3600,
        # at max_parallel 1 the jobs' durations in a row are the least a campaign can take
        "over_job_sum": makespan / (work / parallel) - 1 if parallel == 1 else None,
        "slot_idle_fraction": 1 - busy / (parallel * makespan),
        "runner_minutes": sum(math.ceil(s / 60) for s in c.runner_s) if mode != "seed" else None,
        "workflow_runs": len(c.runner_s), "steps": c.steps,
    }


def _seed(c: Campaign, opts: dict) -> None:
    """The seed: after each submit, wake at the expected duration; if the job is still running, every recheck."""
    wakes: dict[str, float] = {}  # job id -> next wake, seconds
    t = 0.0
    while True:
        c.at(t)
        result = c.one_step()
        if result.finished:
            return
        for row in result.state.in_flight:
            if row.job_id and wakes.get(row.job_id, -1) <= c.now():
                first = row.job_id not in wakes
                wakes[row.job_id] = c.now() + (opts["expected_s"] if first else opts["recheck_s"])
        t = min(w for j, w in wakes.items() if not c.backend.jobs[j].stage.terminal)


def _workflow(c: Campaign, mode: str, *, cron_s: float, linger_s: float, opts: dict, max_runs: int) -> None:
    """Workflow runs from cron (and, for the wake-up, from each job's end), one at a time in the concurrency group."""
    busy_until, used, cron_next = 0.0, set(), 0.0
    for _ in range(max_runs):
        dispatches = sorted(e + opts["dispatch_s"] for e in c.ends() if mode == "wakeup" and e + opts["dispatch_s"] not in used)
        trigger = min([cron_next, *dispatches[:1]])
        if trigger == cron_next:
            cron_next += cron_s
        else:
            used.add(trigger)
        start = max(trigger, busy_until)
        # triggers that came while the group was busy wait as one run (GitHub keeps one pending run per group)
        while cron_next <= start:
            cron_next += cron_s
        used.update(d for d in dispatches if d <= start)
        busy_until = c.workflow_run(start, linger_s)
        if c.stopped_at is not None:
            return
    raise SystemExit(f"{mode}: the campaign did not stop in {max_runs} workflow runs")


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=12)
    p.add_argument("--job-minutes", type=float, default=30, help="the jobs' mean run time")
    p.add_argument("--spread", type=float, default=0.2, help="run times vary uniformly by this fraction around the mean")
    p.add_argument("--startup-minutes", type=float, default=2, help="from submit to the job running (scheduling, image)")
    p.add_argument("--cron-minutes", type=float, default=15)
    p.add_argument("--linger-minutes", type=float, nargs="*", default=[5, 10])
    p.add_argument("--wake-cron-minutes", type=float, default=60, help="the wake-up again, with this cron as the fallback")
    p.add_argument("--recheck-minutes", type=float, default=5, help="the seed: how long it waits again when a job runs on")
    p.add_argument("--pickup-seconds", type=float, default=20, help="from a trigger to its runner starting")
    p.add_argument("--setup-seconds", type=float, default=30, help="checkout and the action's cached environment")
    p.add_argument("--step-seconds", type=float, default=10)
    p.add_argument("--finish-seconds", type=float, default=10, help="after the last step: outputs, summary, clean-up")
    p.add_argument("--dispatch-seconds", type=float, default=10, help="from a job's end to GitHub queueing the run")
    args = p.parse_args()
    jobs = 4 if args.quick else args.jobs
    run_s = durations(jobs, args.job_minutes * 60, args.spread)
    startup_s = args.startup_minutes * 60
    opts = {"pickup_s": args.pickup_seconds, "setup_s": args.setup_seconds, "step_s": args.step_seconds,
            "finish_s": args.finish_seconds, "dispatch_s": args.dispatch_seconds,
            "expected_s": (args.job_minutes + args.startup_minutes) * 60, "recheck_s": args.recheck_minutes * 60}
    cron = args.cron_minutes
    cases = [("seed", 0.0, cron), ("cron", 0.0, cron), *[("linger", m * 60, cron) for m in args.linger_minutes],
             ("wakeup", 0.0, cron), ("wakeup", 0.0, args.wake_cron_minutes)]
    results: dict[str, Any] = {"jobs": jobs, "run_minutes": [s / 60 for s in run_s], "startup_minutes": args.startup_minutes,
                               "cron_minutes": args.cron_minutes, "options": opts, "cases": []}
    rows = []
    for parallel in (1, 4):
        for mode, linger_s, cron_minutes in cases:
            r = simulate(mode, jobs=jobs, parallel=parallel, run_s=run_s, startup_s=startup_s, cron_s=cron_minutes * 60,
                         linger_s=linger_s, opts=opts)
            r.update(linger_minutes=linger_s / 60, cron_minutes=cron_minutes)
            results["cases"].append(r)
            rows.append([_label(mode, linger_s, cron_minutes), parallel, f"{r['makespan_h']:.2f}",
                         "-" if r["over_job_sum"] is None else f"+{r['over_job_sum']:.1%}",
                         f"{r['slot_idle_fraction']:.0%}",
                         "n/a" if r["runner_minutes"] is None else f"{r['runner_minutes']} ({r['workflow_runs']} runs)"])
    print(f"{jobs} jobs of {args.job_minutes:g} min ± {args.spread:.0%} plus {args.startup_minutes:g} min start-up "
          f"({sum(run_s) / 3600 + jobs * startup_s / 3600:.2f} h of jobs), simulated clock")
    print(table(["what starts a step", "max_parallel", "makespan (h)", "over the jobs in a row", "slot time with no job",
                 "runner minutes"], rows))
    _common.write_results("makespan", results, quick=args.quick)


def _label(mode: str, linger_s: float, cron: float) -> str:
    return {"seed": "the seed's wake-up at the expected duration", "cron": f"cron {cron:g} min alone",
            "linger": f"cron {cron:g} min + linger {linger_s / 60:g} min",
            "wakeup": f"cron {cron:g} min + the job wake-up"}[mode]


if __name__ == "__main__":
    main()
