"""Reading a job's result from its output (DESIGN.md section 7).

Guarantees: the metric is read from lines ``name=value`` or ``name: value``
(the key may be quoted, as in a logged dict); the *last* such line wins; a
name that is only part of a longer word (``my_eval_accuracy``,
``eval_accuracy_top5``) does not count. No line means "no metric", never zero;
NaN and infinities are reported as problems, not as results. Terminal colour
codes (ANSI escapes) are ignored, and a decimal comma (``0,91``) is not read
as ``0``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf(?:inity)?)"


@dataclass(frozen=True)
class MetricReading:
    value: float | None
    problem: str | None = None
    hub_url: str | None = None


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?<![\w.\-/])['\"]?{re.escape(name)}['\"]?\s*[=:]\s*({_NUMBER})(?![\w.]|,\d)",
        re.IGNORECASE,
    )


_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_HUB_URL = re.compile(r"(?<![\w])hub_url\s*[=:]\s*(https?://\S+)")


def read_metric(logs: str, name: str) -> MetricReading:
    """The last ``name=value`` in ``logs``, or a reading whose ``problem`` says why there is none."""
    logs = _ANSI.sub("", logs) if "\x1b" in logs else logs
    matches = _pattern(name).findall(logs)
    urls = _HUB_URL.findall(logs)
    hub_url = urls[-1] if urls else None
    if not matches:
        return MetricReading(None, f"the job printed no `{name}=<number>` line (no metric means error, not zero)", hub_url)
    value = float(matches[-1])
    if math.isnan(value):
        return MetricReading(None, f"the job's last `{name}` was NaN (the run diverged?)", hub_url)
    if math.isinf(value):
        return MetricReading(None, f"the job's last `{name}` was infinite (the run diverged?)", hub_url)
    return MetricReading(value, None, hub_url)


def log_tail(logs: str, *, lines: int = 12, chars: int = 800) -> str:
    """The end of a log, short enough to keep in a ledger row."""
    tail = "\n".join(logs.rstrip().splitlines()[-lines:])
    return tail[-chars:]
