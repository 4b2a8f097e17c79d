"""The onboarding pull request's account of what the draft inferred from the repository.

Guarantees (pure): the parameter table, the arguments left out, the metric
with its evidence and direction, the hardware, and the dependencies (each
drafted package with the import and line it came from, or the folder's own
declaration that applies), as Markdown. Everything
taken from the repository (names, ranges with its choices, defaults, paths,
the source lines that print the metric, import names) is shown through
:func:`mlr_action.core.markup.code` inside :func:`mlr_action.core.markup.cell`, never
rendered: a script cannot put a link, an image, a mention or a hidden marker
on the pull request. The draft's own notes arrive with their repository
parts already shown as code.
"""

from __future__ import annotations

from mlr_action.onboard.draft_report import ROLE_WORDS, dependencies_said, direction_reason, evidence, left_out, rows
from mlr_action.core.markup import cell, code

MAX_ROWS = 20
MAX_LEFT = 25


def inferred(draft) -> list[str]:
    """Markdown lines: what is searched and why, what is left out, the metric, the hardware."""
    style = draft.style or "none (it reads no command-line arguments)"
    lines = ["### What the draft searches", "",
             f"mlr-action read {code(draft.script)} without running it; arguments read as: {cell(style)}.", ""]
    table = rows(draft)
    if table:
        lines += ["| parameter | range or value | read from | why |", "| --- | --- | --- | --- |"]
        for row in table[:MAX_ROWS]:
            role = "" if row.role == "search" else f" ({ROLE_WORDS[row.role]})"
            lines.append(f"| {cell(code(row.name))}{role} | {cell(code(row.value))} | {cell(code(row.source))} | "
                         f"{cell(row.why)} |")
        if len(table) > MAX_ROWS:
            lines.append(f"| and {len(table) - MAX_ROWS} more | | | see program.md |")
        lines.append("")
    lines += _left(draft)
    lines += _metric(draft)
    lines += ["### Hardware", "", f"{draft.hardware}.", ""]
    lines += _dependencies(draft)
    return lines


def _dependencies(draft) -> list[str]:
    said = dependencies_said(draft)
    lines = ["### Dependencies", "", f"{said[:1].upper()}{said[1:]}.", ""]
    if draft.deps.packages:
        lines += ["| package | imported as | read from |", "| --- | --- | --- |"]
        lines += [f"| {cell(code(d.package))} | {cell(code(d.module))} | {cell(code(f'{d.path} line {d.line}'))} |"
                  for d in draft.deps.packages[:MAX_ROWS]]
        if len(draft.deps.packages) > MAX_ROWS:
            lines.append(f"| and {len(draft.deps.packages) - MAX_ROWS} more | | see program.md |")
        lines.append("")
    return lines


def _left(draft) -> list[str]:
    left = left_out(draft)
    if not left:
        return []
    items = [f"- {code(origin)}: {why}" for origin, why in left[:MAX_LEFT]]
    if len(left) > MAX_LEFT:
        items.append(f"- and {len(left) - MAX_LEFT} more")
    return ["<details>", "", "<summary>Arguments left out and why</summary>", "",
            f"{len(left)} arguments of the script are not in the draft; they keep the script's defaults.", "",
            *items, "", "</details>", ""]


def _metric(draft) -> list[str]:
    lines = ["### Metric", "",
             f"{code(draft.metric)}, **{draft.direction}**: {direction_reason(draft)}."]
    seen = evidence(draft)
    if seen:
        lines += ["", f"{code(draft.script)} prints it here (a job's last such line is its result):", ""]
        lines += [f"- line {line}: {code(text)}" for line, text in seen]
    else:
        lines += ["", f"{code(draft.script)} does not visibly print it (see the notes below)."]
    others = draft.pick.others if draft.pick else []
    if others:
        lines += ["", "It also prints: " + ", ".join(code(o) for o in others[:8]) + " (any of them can be `metric:`)."]
    lines += ["", "No target is drafted: the campaign runs until its budget or `patience` ends it. Add `target:` to "
              "stop as soon as the best result reaches it.", ""]
    return lines
