"""Drafting a program.md from the template for a repository that has none.

Guarantees: :func:`draft_program` never writes anything; it returns the text
and what it guessed, so both ``mlr init`` and the GitHub onboarding PR can use
it. The draft validates as long as the script it names exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

DEFAULT_METRIC = "eval_accuracy"
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", ".mlr", "runs", "__pycache__", "tests", "test"}


@dataclass(frozen=True)
class Draft:
    text: str
    script: str
    metric: str
    notes: list[str]


def template_text() -> str:
    return resources.files("mlr_action").joinpath("templates/program.template.md").read_text(encoding="utf-8")


def find_script(root: Path) -> str | None:
    """The repository's training script: train.py first, then any *train*.py, shallowest first."""
    candidates = [
        p for p in root.rglob("*.py")
        if not (set(p.relative_to(root).parts[:-1]) & _SKIP_DIRS) and "train" in p.name.lower()
    ]
    candidates.sort(key=lambda p: (p.name != "train.py", len(p.relative_to(root).parts), str(p)))
    return candidates[0].relative_to(root).as_posix() if candidates else None


def find_metric(script_text: str) -> str | None:
    """A metric name the script prints as ``name=`` in an f-string or print call, if one is obvious."""
    match = re.search(r"print\(\s*f?[\"']((?:eval|val|test)_[A-Za-z0-9_]+)\s*[=:]", script_text)
    return match.group(1) if match else None


def draft_program(root: Path) -> Draft:
    notes = []
    script = find_script(root)
    if script is None:
        script = "train.py"
        notes.append("no training script found: the draft names train.py; change `script:` to yours")
    metric = None
    if (root / script).is_file():
        metric = find_metric((root / script).read_text(encoding="utf-8", errors="replace"))
    if metric is None:
        metric = DEFAULT_METRIC
        notes.append(f"metric set to {metric}: make it the name your script prints as `{metric}=<value>`")
    text = template_text().replace("{{script}}", script).replace("{{metric}}", metric)
    return Draft(text=text, script=script, metric=metric, notes=notes)
