"""What reading a training script found: its arguments, the metric lines it prints, its frameworks.

Records only, no logic: :mod:`mlr_action.onboard.scriptinfo` fills them from the
script's syntax tree, and :mod:`mlr_action.onboard.draft_space` turns them into a
search space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Argument:
    """One command-line argument the script accepts (or declares), as a job would pass it.

    ``name`` is what a job writes after ``--`` (``--name=value``): the option
    as the script spells it, dashes and dots included. ``takes_value`` is
    False for flags (``store_true``, click ``is_flag``, typer ``bool``), which
    a job cannot pass as ``--name=value``. ``low``/``high`` are bounds the
    script itself declares (click ``FloatRange``, typer ``min``/``max``).
    """

    name: str
    kind: str  # float | int | str | bool | list | unknown
    line: int
    origin: str  # how the script writes it: "--lr", "lr = 6e-4", "learning_rate (TrainingArguments)"
    default: Any = None
    has_default: bool = False
    choices: tuple | None = None
    required: bool = False
    takes_value: bool = True
    positional: bool = False
    low: float | None = None
    high: float | None = None
    subcommand: str | None = None  # set when the argument belongs to a subcommand's parser
    typed: bool = True  # False: argparse has no type= and would hand the value over as a string


@dataclass(frozen=True)
class MetricLine:
    """A place where the script prints ``name=<value>`` or ``name: <value>`` (or a dict holding ``name``)."""

    name: str
    line: int
    how: str  # what prints it: "print", "logging", "dict", "trainer.evaluate()"
    text: str  # the source of the call, cut short (shown as code, never rendered)
    in_eval: bool = False  # inside a function whose name says evaluation (test, evaluate, validate)
    readable: bool = True  # False: a metric word with no `=` or `:` before its value (mlr cannot read it)


@dataclass
class ScriptInfo:
    """Everything the draft needs from one script, plus what stops a job from running it as-is."""

    path: str
    style: str | None = None  # argparse | click | typer | hf | globals; None when the script reads no arguments
    arguments: list[Argument] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what a person must fix before jobs can run
    metrics: list[MetricLine] = field(default_factory=list)
    frameworks: dict[str, int] = field(default_factory=dict)  # deep-learning package -> line of its import
    constants: list[tuple[str, Any, int]] = field(default_factory=list)  # module-level numbers (name, value, line)
    reads: set[str] = field(default_factory=set)  # attribute names read anywhere (args.do_train ...)
