"""What a draft inferred and from where, as rows both the onboarding pull request and ``mlr init`` show.

Guarantees (pure): one :class:`Row` per parameter the draft searches, offers
(commented out) or fixes, each with its range or value, where it came from
in the script (option, default, file and line) and why that range; the
arguments left out, each with its reason; the metric's evidence as the
script's own lines; the drafted dependencies, each with the import it came
from, or the folder's own declaration that applies. Text from the repository is returned as it is: the
Markdown writer shows it through :mod:`mlr_action.core.markup`; the terminal
summary escapes every control character (:func:`mlr_action.core.markup.visible`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlr_action.onboard.draft_text import yaml_value
from mlr_action.core.markup import code, visible
from mlr_action.job.runner import HEADER

ROLE_WORDS = {"search": "searched", "offer": "offered (commented out)", "fixed": "fixed"}


@dataclass(frozen=True)
class Row:
    name: str
    role: str  # search | offer | fixed
    value: str  # the range, the choices or the fixed value
    source: str  # "--lr, default 0.001 (train.py line 12)"
    why: str


def range_text(spec: dict) -> str:
    if "value" in spec:
        return yaml_value(spec["value"])
    if "choices" in spec:
        return "one of " + ", ".join(yaml_value(c) for c in spec["choices"])
    scale = ", log scale" if spec.get("log") else ""
    kind = "integers " if spec["type"] == "int" else ""
    return f"{kind}{yaml_value(spec['low'])} to {yaml_value(spec['high'])}{scale}"


def rows(draft) -> list[Row]:
    from mlr_action.onboard.draft import source_text

    order = {"search": 0, "offer": 1, "fixed": 2}
    kept = sorted((c for c in draft.choices if c.role in order), key=lambda c: order[c.role])
    return [Row(c.arg.name, c.role, range_text(c.spec), source_text(c.arg, draft.script), c.why) for c in kept]


def left_out(draft) -> list[tuple[str, str]]:
    """``(how the script writes it, why it is not in the draft)`` for every argument left out."""
    return [(c.arg.origin, c.why) for c in draft.choices if c.role == "left"]


def evidence(draft) -> list[tuple[int, str]]:
    """``(line, the call that prints the metric)``, in source order, at most five."""
    if draft.pick is None:
        return []
    return [(m.line, m.text) for m in draft.pick.evidence][:5]


def dependencies_said(draft) -> str:
    """Where the jobs' dependencies come from, one sentence (Markdown: names from the repository as code)."""
    deps = draft.deps
    if deps.problem:
        return "none drafted: the campaign folder could not be read as a job receives it (see the notes)"
    if deps.applies:
        where = "the script's PEP 723 header" if deps.applies == HEADER else f"the folder's {code(deps.applies)}"
        return f"{where} declares them and every job installs what it lists, so none is drafted"
    if not deps.packages:
        return "the code imports only the standard library and the folder's own modules, so none is drafted"
    return ("`dependencies:` lists what the code imports (read from its import lines; the standard library, the "
            "folder's own modules and imports in try/except ImportError left out), and every job installs them")


def direction_reason(draft) -> str:
    pick = draft.pick
    if pick is None or pick.word is None:
        return "the name does not say; maximize is a guess"
    better = "lower" if pick.direction == "minimize" else "higher"
    return f"the name says {pick.word}, where {better} is better"


def text_summary(draft, envelope: str | None) -> str:
    """The draft for a terminal (``mlr init``)."""
    out = [f"script: {draft.script} (arguments read as {draft.style or 'none: it reads no arguments'})"]
    for row in rows(draft):
        out.append(f"  {ROLE_WORDS[row.role]:<24} {row.name}: {row.value}  <- {row.source}")
    grouped: dict[str, list[str]] = {}
    for origin, why in left_out(draft):
        grouped.setdefault(why, []).append(origin)
    for why, origins in grouped.items():
        shown = ", ".join(origins[:8]) + (f" and {len(origins) - 8} more" if len(origins) > 8 else "")
        out.append(f"  {'left out':<24} {shown}: {why}")
    out.append(f"metric: {draft.direction} {draft.metric} ({direction_reason(draft)})")
    out += [f"  printed at line {line}: {text}" for line, text in evidence(draft)]
    out.append(f"hardware: {draft.hardware.replace('`', '')}")
    out.append(f"dependencies: {dependencies_said(draft).replace('`', '')}")
    out += [f"  {d.package:<24} <- import {d.module} ({d.path} line {d.line})" for d in draft.deps.packages]
    if envelope:
        out += ["", envelope]
    if draft.notes:
        out += ["", "Check before you merge or run it:", *(f"  - {note}" for note in draft.notes)]
    return "\n".join(visible(line) for line in "\n".join(out).split("\n"))  # no control character reaches a terminal
