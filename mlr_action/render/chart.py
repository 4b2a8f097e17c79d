"""The chart in runs/summary.md: the metric and the best so far per iteration.

Guarantees:

- :func:`chart_points` takes each finished experiment with a finite metric,
  by iter, with the best metric seen up to it: monotone by construction
  (it never gets worse in the program's direction).
- :func:`chart_section` is a valid Mermaid ``xychart-beta`` with two
  ``line`` series over the same x-axis (the metric, the best so far); with
  fewer than two points it is replaced by a sentence. Only numbers, the
  iters and the metric's name (which program.md validates against a
  pattern) reach the chart.
- Pure: the text depends only on the program and the folded state.
"""

from __future__ import annotations

import math

from mlr_action.core.ledger import FINISHED
from mlr_action.core.metric import format_metric
from mlr_action.core.program import Program
from mlr_action.core.state import CampaignState


def chart_points(program: Program, state: CampaignState) -> list[tuple[int, float, float]]:
    """``(iter, metric, best so far)`` for each finished experiment with a finite metric, by iter."""
    points = []
    best: float | None = None
    for e in state.experiments.values():
        if e.status not in FINISHED or e.metric is None or not math.isfinite(e.metric):
            continue
        if program.improves(e.metric, best):
            best = e.metric
        points.append((e.iter, e.metric, best))
    return points  # type: ignore[return-value]


def chart_section(program: Program, state: CampaignState) -> str:
    """The "Progress" section of runs/summary.md: the chart, or a sentence while fewer than two points exist."""
    points = chart_points(program, state)
    metric = program.campaign.metric
    if len(points) < 2:
        return f"## Progress\n\nThe chart of `{metric}` per iteration appears once two experiments have a result."
    xs = ", ".join(f'"{i}"' for i, _, _ in points)
    values = ", ".join(format_metric(m) for _, m, _ in points)
    bests = ", ".join(format_metric(b) for _, _, b in points)
    return "\n".join(
        [
            "## Progress",
            "",
            f"Two lines: `{metric}` of each finished experiment, and the best so far (the line that never gets worse).",
            "",
            "```mermaid",
            "xychart-beta",
            f'    title "{metric} per iteration"',
            f'    x-axis "iteration" [{xs}]',
            f'    y-axis "{metric}"',
            f"    line [{values}]",
            f"    line [{bests}]",
            "```",
        ]
    )
