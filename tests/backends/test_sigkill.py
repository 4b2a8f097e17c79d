"""SIGKILL of a real `mlr step` process at arbitrary moments, on the local backend.

After every kill the next steps must carry on: no iteration gets two jobs,
every job the backend created is in the ledger, and the ledger stays readable.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

from mlr_action.core.ledger import read_ledger
from mlr_action.core.state import fold
from programs import CAMPAIGN, ENVELOPE, program_text, with_

SCRIPT = """
import sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
print(f"eval_accuracy={0.5 + int(args['batch_size']) / 200:.4f}")
"""


def mlr_step(root, *, kill_after=None):
    cmd = [sys.executable, "-m", "mlr_action", "step", "--repo", str(root)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kill_after is None:
        return proc.wait(timeout=60)
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    return proc.wait(timeout=10)


def registry(root):
    jobs = {}
    base = root / ".mlr" / "jobs"
    for spec in base.glob("*/spec.json") if base.exists() else []:
        data = json.loads(spec.read_text())
        jobs[spec.parent.name] = data
    return jobs


def test_sigkill_at_random_moments_never_duplicates_or_loses_a_job(tmp_path):
    (tmp_path / "train.py").write_text(SCRIPT)
    campaign = with_(CAMPAIGN, target=None, patience=None, timeout="1m",
                     params={"batch_size": {"type": "int", "low": 1, "high": 80}})
    (tmp_path / "program.md").write_text(program_text(with_(ENVELOPE, max_jobs=5, max_timeout="1m"), campaign))
    rng = random.Random(7)
    for _ in range(8):
        mlr_step(tmp_path, kill_after=rng.uniform(0.05, 1.0))
        time.sleep(0.2)  # let jobs finish, as cron would between ticks
    for _ in range(40):
        state = fold(read_ledger(tmp_path / "runs" / "ledger.jsonl"))
        if state.stopped is not None:
            break
        assert mlr_step(tmp_path) in (0, 1)
        time.sleep(0.2)
    state = fold(read_ledger(tmp_path / "runs" / "ledger.jsonl"))
    assert state.stopped is not None and state.stopped.reason == "budget"
    jobs = registry(tmp_path)
    iters = [json.loads(json.dumps(j))["labels"]["mlr-iter"] if "labels" in j else None for j in jobs.values()]
    assert len(iters) == len(set(iters)), f"an iteration got two jobs: {sorted(iters)}"
    assert set(jobs) == set(state.job_rows), "a job the backend created is missing from the ledger (or vice versa)"
    assert len(jobs) <= 5
    assert all(e.status in ("completed", "error") for e in state.experiments.values())
