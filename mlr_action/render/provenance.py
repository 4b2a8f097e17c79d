"""Which code each experiment ran: the commit and the shipped folder's digest, for the summary and reports (pure).

Guarantees: the text depends only on the rows. Every value shown comes from
a ledger row and is shown as code (a short hex id, or a redacted short
string), never rendered. A campaign whose rows carry neither a commit nor a
folder digest (older ledgers) gets no Code section.
"""

from __future__ import annotations

import re

from mlr_action.core.ledger import ExperimentRow
from mlr_action.core.markup import code
from mlr_action.core.state import CampaignState

_HEX = re.compile(r"^[0-9a-f]{7,64}$")


def _short(value: str | None) -> str | None:
    """A commit or digest as 12 hex digits; None for anything that is not hex (a row is data)."""
    return value[:12] if isinstance(value, str) and _HEX.match(value) else None


def code_of(row: ExperimentRow) -> str | None:
    """``commit `1a2b3c4d5e6f`, folder `9f8e7d6c5b4a``` for a row that records them; None otherwise."""
    commit, folder = _short(row.commit), _short(getattr(row, "folder_hash", None))
    parts = ([f"commit {code(commit)}"] if commit else []) + ([f"folder {code(folder)}"] if folder else [])
    return ", ".join(parts) or None


def versions(state: CampaignState) -> list[tuple[list[int], str | None, str | None]]:
    """Runs of consecutive experiments (by iter) that ran the same code: (iters, commit, folder digest).

    Only experiments that were submitted count; a commit that moved without changing the folder (the bot's own
    commits of runs/) is the same code.
    """
    runs: list[tuple[list[int], str | None, str | None]] = []
    for exp in state.experiments.values():
        folder = _short(getattr(exp, "folder_hash", None))
        if folder is None and _short(exp.commit) is None:
            continue
        if runs and runs[-1][2] == folder:
            runs[-1][0].append(exp.iter)
        else:
            runs.append(([exp.iter], _short(exp.commit), folder))
    return runs


def _iters(iters: list[int]) -> str:
    return str(iters[0]) if len(iters) == 1 else f"{iters[0]}–{iters[-1]}"


def code_section(state: CampaignState) -> str:
    """The summary's Code section: which code each run of experiments ran, and where it changed."""
    runs = versions(state)
    if not runs:
        return ""
    lines = ["## Code", ""]
    if len(runs) == 1:
        lines.append(f"Every experiment ran the same code: {_describe(runs[0])}.")
    else:
        lines.append(f"**The code changed {len(runs) - 1} time{'s' * (len(runs) > 2)} during the campaign**; results "
                     "on either side of a change compare different code:")
        lines.append("")
        lines += [f"- iters {_iters(iters)}: {_describe((iters, commit, folder))}"
                  + (" — **code changed here**" if n else "") for n, (iters, commit, folder) in enumerate(runs)]
    no_uv = [e.iter for e in state.experiments.values() if "no uv" in str(getattr(e, "runner", "") or "")]
    if no_uv:
        lines += ["", f"{len(no_uv)} experiment{'s' * (len(no_uv) != 1)} ran locally without uv (the current Python, "
                      "the folder's dependencies not installed), so their results may not predict HF's."]
    lines += ["", "`mlr reproduce ITER` prints the exact job of an experiment; `mlr reproduce ITER --run` runs it."]
    return "\n".join(lines)


def _describe(run: tuple[list[int], str | None, str | None]) -> str:
    _iters_, commit, folder = run
    parts = ([f"commit {code(commit)}"] if commit else ["the work tree"]) + ([f"folder {code(folder)}"] if folder else [])
    return ", ".join(parts)
