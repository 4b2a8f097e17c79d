"""Which metric a draft names, and which way is better, with the script's lines as evidence.

Guarantees (pure): the metric is one the script prints in a form
:func:`mlr_action.core.metric.read_metric` finds (``name=``, ``name:``, a printed
dict's key, the Trainer's evaluation logs) whenever there is one; among
several, a name whose direction is known beats one whose is not, an
evaluation name (``val_``, ``eval_``, ``test_``, or printed inside an
evaluation function) beats a training one, and a later line beats an earlier
one. The direction follows from the name (loss, error, perplexity, wer, cer,
mae, rmse: minimize; accuracy, f1, auc, bleu, rouge, score, reward:
maximize); when the name does not tell, ``maximize`` is a guess and a note
says so. When the script prints no readable metric, a note says which line
to add.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlr_action.core.markup import code
from mlr_action.onboard.scriptinfo.metric_reader import NOT_METRICS, direction_of, is_evalish
from mlr_action.onboard.scriptinfo.model import MetricLine, ScriptInfo

DEFAULT_METRIC = "eval_accuracy"
_METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")


@dataclass(frozen=True)
class MetricPick:
    name: str
    direction: str
    word: str | None  # the part of the name that decided the direction; None: guessed
    evidence: list[MetricLine] = field(default_factory=list)  # where the script prints it, in source order
    readable: bool = True  # a job's output will hold a line mlr reads
    others: list[str] = field(default_factory=list)  # other metrics the script prints
    notes: list[str] = field(default_factory=list)


def _rank(sighting: MetricLine) -> tuple:
    known = direction_of(sighting.name)[0] is not None
    training = sighting.name.lower().startswith(("train", "tr_"))
    return known, (sighting.in_eval or is_evalish(sighting.name)) and not training, not training, sighting.line


def pick_metric(info: ScriptInfo, *, override: str | None = None) -> MetricPick:
    readable = [m for m in info.metrics if m.readable and _METRIC_NAME.fullmatch(m.name)
                and m.name.lower() not in NOT_METRICS]
    notes: list[str] = []
    if override:
        name = override
        if not any(m.name.lower() == name.lower() for m in readable):
            notes.append(f"{code(info.path)} does not visibly print {code(name + '=<value>')}: check that a job's "
                         "output holds that line (no metric line means the job counts as an error)")
    elif readable:
        name = max(enumerate(readable), key=lambda item: (_rank(item[1]), item[0]))[1].name  # ties: the later
    else:
        name, note = _unreadable(info)
        notes.append(note)
    evidence = [m for m in readable if m.name.lower() == name.lower()]
    direction, word = direction_of(name)
    if direction is None:
        direction = "maximize"
        notes.append(f"the name {code(name)} does not say whether higher is better: `direction: maximize` is a guess; "
                     "set it to minimize if lower is better")
    lines = sorted({m.line for m in evidence})
    if len(lines) > 1:
        notes.append(f"{code(name)} is printed at lines {', '.join(map(str, lines))} of {code(info.path)}: the last "
                     "such line a job prints is its result, so make sure that is the evaluation")
    others = list(dict.fromkeys(m.name for m in readable if m.name.lower() != name.lower()))
    return MetricPick(name, direction, word, evidence, bool(evidence), others, notes)


def _unreadable(info: ScriptInfo) -> tuple[str, str]:
    """A name to draft when no printed line is readable, and the note that says what line to add."""
    loose = [m for m in info.metrics if not m.readable]
    if loose:
        best = max(loose, key=_rank)
        name = re.sub(r"\s+", "_", best.name.strip()).lower()
        return name, (f"{code(info.path)} line {best.line} prints {code(best.name)} with no `=` or `:` before its "
                      f"value, which mlr cannot read: also print {code(name + '=<value>')} after the evaluation "
                      f"(for example {code('print(f' + chr(34) + name + '={' + name + '}' + chr(34) + ')')})")
    return DEFAULT_METRIC, (f"{code(info.path)} prints no metric mlr can read: print {code(DEFAULT_METRIC + '=<value>')} "
                            "(or your metric's name) after the evaluation and set `metric:` to that name")
