"""How long redaction takes on megabytes of job log: the step redacts a whole log before it reads the metric.

``mlr_action.core.redaction.redact`` looks for each of the step's tokens verbatim,
base64 (three alignments, two alphabets), hex, escaped and wrapped across
lines, then for token shapes and headers. It should stay linear in the log's
size: the time per megabyte is about the same at every size. Logs:

- **plain**: training-loop lines (losses, progress bars with ``%``, paths
  with backslashes), no token.
- **escapes**: the same with a ``%20``-style escape on every line, so the
  search for escaped tokens runs around each of them.
- **leaky**: every 50th line prints a token in one of its disguises
  (tests/disguises.py), so most of the masking work happens.

Target: at most 100 ms per megabyte on one core.

    python benchmarks/redaction.py [--quick]
"""

from __future__ import annotations

import os
import random
import string
import time
from typing import Any

import _common
from _common import summary, table

from disguises import disguises
from mlr_action.core.redaction import redact, secret_values

TARGET_MS_PER_MB = 100.0
TOKENS = {
    "HF_TOKEN": "hf_" + "".join(random.Random(1).choice(string.ascii_letters + string.digits) for _ in range(34)),
    "GITHUB_TOKEN": "ghs_" + "".join(random.Random(2).choice(string.ascii_letters + string.digits) for _ in range(36)),
    "ANTHROPIC_API_KEY": "sk-ant-api03-" + "".join(random.Random(3).choice(string.ascii_letters) for _ in range(60)),
}


def make_log(kind: str, megabytes: float, seed: int = 0) -> str:
    rnd = random.Random(seed)
    lines, size, n = [], 0, 0
    leaks = [line for value in TOKENS.values() for line in disguises(value)]
    while size < megabytes * 1_000_000:
        n += 1
        line = (f"epoch {n // 500} step {n} loss={rnd.random():.4f} lr=3.0e-04 {n % 100}%|####      | "
                f"{n}/50000 [00:12<00:14, 16.5it/s] C:\\\\runs\\\\out")
        if kind == "escapes":
            line += " file=train%20part%2F0001.parquet"
        if kind == "leaky" and n % 50 == 0:
            line = leaks[n // 50 % len(leaks)]
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


def measure(text: str, repeats: int) -> dict[str, Any]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        redact(text)
        times.append(time.perf_counter() - start)
    return summary(times)


def main() -> None:
    args = _common.parser(__doc__.splitlines()[0]).parse_args()
    sizes = [1, 4] if args.quick else [1, 4, 16]
    repeats = 2 if args.quick else 5
    os.environ.update(TOKENS)
    assert len(secret_values()) == len(TOKENS)
    redact("warm up the searches")
    rows, results = [], []
    for kind in ("plain", "escapes", "leaky"):
        for mb in sizes:
            text = make_log(kind, mb)
            stats = measure(text, repeats)
            per_mb = stats["median"] * 1000 / (len(text) / 1_000_000)
            results.append({"log": kind, "megabytes": round(len(text) / 1_000_000, 2), "seconds": stats, "ms_per_mb": per_mb})
            rows.append([kind, f"{len(text) / 1_000_000:.1f}", f"{stats['median'] * 1000:.0f}", f"{per_mb:.1f}"])
    print(table(["log", "MB", "median ms", "ms per MB"], rows))
    worst = max(r["ms_per_mb"] for r in results)
    print(f"\nworst {worst:.1f} ms per MB (target at most {TARGET_MS_PER_MB:.0f})")
    _common.write_results("redaction", {"target_ms_per_mb": TARGET_MS_PER_MB, "worst_ms_per_mb": worst,
                                        "repeats": repeats, "results": results}, quick=args.quick)


if __name__ == "__main__":
    main()
