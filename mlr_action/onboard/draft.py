"""Drafting a program.md that fits the repository, for a repository that has none.

Guarantees: :func:`draft_program` never writes anything and never runs the
training script; it reads it (:mod:`mlr_action.onboard.scriptinfo`) and returns the
text with everything it inferred and why, so both ``mlr init`` and the
GitHub onboarding pull request show the same draft. The draft validates
whenever the script it names exists (it names ``train.py`` with a note when
none is found); it searches and fixes only arguments the script accepts, as
the job passes them (``--name=value``), names a metric the script prints
where it prints one, sets no target unless asked to, and approves a small
first envelope on the cheapest flavor that fits (:mod:`mlr_action.onboard.draft_text`), and
declares the packages the code imports under ``dependencies:`` unless the
folder declares its own (:mod:`mlr_action.onboard.draft_deps`), so the preflight of
``mlr validate`` and of the pull request check passes on the draft as it is.
Every note that quotes the repository shows it through :func:`mlr_action.core.markup.code`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from mlr_action.onboard.draft_deps import MAX_PACKAGES, DraftedDependencies, draft_dependencies
from mlr_action.onboard.draft_deps import notes as dependency_notes
from mlr_action.onboard.draft_metric import DEFAULT_METRIC, MetricPick, pick_metric
from mlr_action.onboard.draft_space import Choice, plan
from mlr_action.onboard.draft_text import (
    FirstEnvelope,
    edit_block,
    envelope_settings,
    first_envelope,
    line,
    spec_value,
    yaml_value,
)
from mlr_action.core.durations import format_duration
from mlr_action.core.markup import code
from mlr_action.onboard.scriptinfo import ScriptInfo, read_script

__all__ = ["DEFAULT_METRIC", "Draft", "draft_program", "find_script", "template_text"]

_SKIP_DIRS = {".git", ".venv", "venv", "env", "node_modules", ".mlr", "runs", "__pycache__", "tests", "test",
              "docs", "build", "dist", "site-packages", ".tox", ".eggs"}
_NOT_SCRIPTS = {"setup.py", "conftest.py", "__init__.py", "configurator.py", "noxfile.py"}
SCRIPT_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*\.py")
_MAX_FILES = 2000
HF_OUTPUT_DIR = "/tmp/mlr-output"


@dataclass(frozen=True)
class Draft:
    text: str
    script: str
    metric: str
    notes: list[str]
    direction: str = "maximize"
    style: str | None = None  # how the script reads its arguments (argparse, click, typer, hf, globals)
    choices: tuple[Choice, ...] = ()
    pick: MetricPick | None = None
    envelope: FirstEnvelope | None = None
    hardware: str = ""  # why this flavor
    deps: DraftedDependencies = field(default_factory=DraftedDependencies)  # the drafted `dependencies:`
    info: ScriptInfo | None = field(default=None, repr=False)


def template_text() -> str:
    return resources.files("mlr_action").joinpath("templates/program.template.md").read_text(encoding="utf-8")


def find_script(root: Path) -> str | None:
    """The training script: train.py first, then *train*.py, finetune*.py, run_*.py, main.py; shallowest first."""
    found = []
    for rel in _python_files(root):
        name = rel.rsplit("/", 1)[-1].lower()
        score = (5 if name == "train.py" else 4 if "train" in name else 3 if "finetune" in name or "fine_tune" in name
                 else 2 if name.startswith("run_") or name == "main.py" else 0)
        if score:
            found.append((-score, rel.count("/"), rel))
    return min(found)[2] if found else None


def _python_files(root: Path):
    seen = 0
    for folder, dirs, files in os.walk(root):  # symlinked folders are not followed
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if name.endswith(".py") and name not in _NOT_SCRIPTS and SCRIPT_PATH.fullmatch(rel) and not path.is_symlink():
                seen += 1
                if seen > _MAX_FILES:
                    return
                yield rel


def draft_program(root: Path, *, script: str | None = None, metric: str | None = None,
                  target: float | None = None) -> Draft:
    """The draft for ``root``: ``script``, ``metric`` and ``target`` override what would be inferred."""
    notes: list[str] = []
    chosen = script or find_script(root)
    if chosen is None:
        chosen = "train.py"
        notes.append("no training script found: the draft names `train.py`; set `script:` to yours")
    info = read_script(root, chosen) if (root / chosen).is_file() else ScriptInfo(chosen)
    choices = _with_fixed_for_framework(plan(info.arguments), info)
    pick = pick_metric(info, override=metric)
    searched = [c for c in choices if c.role == "search"]
    envelope = first_envelope(gpu=bool(info.frameworks), searching=bool(searched))
    deps = draft_dependencies(root, chosen)
    text = _render(chosen, pick, target, choices, envelope, deps)
    notes += info.problems + pick.notes + _notes(info, choices, envelope) + dependency_notes(deps, info.frameworks)
    hardware = _hardware(info, envelope)
    return Draft(text=text, script=chosen, metric=pick.name, notes=notes, direction=pick.direction, style=info.style,
                 choices=tuple(choices), pick=pick, envelope=envelope, hardware=hardware, deps=deps, info=info)


def _with_fixed_for_framework(choices: list[Choice], info: ScriptInfo) -> list[Choice]:
    """HfArgumentParser scripts: TrainingArguments' output folder, and --do_train/--do_eval when the script checks them."""
    if info.style != "hf":
        return choices
    out = []
    for choice in choices:
        arg = choice.arg
        if arg.name == "output_dir" and arg.required and "TrainingArguments" in arg.origin:
            choice = Choice(arg, "fixed", {"value": HF_OUTPUT_DIR},
                            "TrainingArguments needs an output folder, and the job's own folder may be read-only")
        elif arg.name in ("do_train", "do_eval") and arg.name in info.reads:
            choice = Choice(arg, "fixed", {"value": True}, f"the script only does this step when --{arg.name} is set")
        out.append(choice)
    return out


def source_text(arg, script: str) -> str:
    """Where a parameter comes from: ``--lr, default 0.001 (train.py line 12)``."""
    default = "" if arg.origin.endswith(f"= {arg.default!r}"[:80]) or not arg.has_default else f", default {arg.default!r}"
    return f"{arg.origin}{default} ({script} line {arg.line})"


def _render(script: str, pick: MetricPick, target: float | None, choices: list[Choice],
            envelope: FirstEnvelope, deps: DraftedDependencies) -> str:
    text = template_text()
    if pick.direction == "minimize":
        text = text.replace("Maximize `{{metric}}`", "Minimize `{{metric}}`")
    text = text.replace("{{script}}", script).replace("{{metric}}", pick.name)
    text = edit_block(text, "Budget envelope", envelope_settings(envelope))
    target_line = (line("target", yaml_value(float(target)), "stop as soon as the best metric reaches this")
                   if target is not None else
                   line("# target", "<value>", "none drafted: add one to stop as soon as the best reaches it"))
    settings: dict[str, list[str] | str] = {
        "metric": yaml_value(pick.name),
        "direction": pick.direction,
        "target": [target_line],
        "script": yaml_value(script),
        "params": _params_lines(choices, script),
        "fixed": _fixed_lines(choices, script),
        "flavor": envelope.flavor,
        "timeout": format_duration(envelope.timeout_s),
    }
    if deps.packages:
        listed = ", ".join(yaml_value(name) for name in deps.names[:MAX_PACKAGES])
        settings["dependencies"] = [line("dependencies", f"[{listed}]", f"what {script} imports (see the pull request); "
                                         "pin versions here, or use requirements.txt")]
    return edit_block(text, "Campaign", settings)


def _params_lines(choices: list[Choice], script: str) -> list[str]:
    searched = [c for c in choices if c.role == "search"]
    head = (line("params", "", f"the search space read from {script}; each entry becomes --name=value")
            if searched else line("params", "{}", f"{script} has no argument to search yet (see the pull request)"))
    body = [line(c.arg.name, spec_value(c.spec), source_text(c.arg, script), indent="  ") for c in searched]
    body += [line(f"# {c.arg.name}", spec_value(c.spec), f"{source_text(c.arg, script)}: also tunable", indent="  ")
             for c in choices if c.role == "offer"]
    return [head, *body]


def _fixed_lines(choices: list[Choice], script: str) -> list[str]:
    fixed = [c for c in choices if c.role == "fixed"]
    required = [c for c in choices if c.role == "left" and c.why.startswith("required")
                and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", c.arg.name) and not c.arg.positional]
    head = line("fixed", "" if fixed else "{}", "constant arguments, also passed as --name=value; never searched")
    body = [line(c.arg.name, yaml_value(c.spec["value"]), f"{source_text(c.arg, script)}: {c.why}", indent="  ")
            for c in fixed]
    body += [line(f"# {c.arg.name}", "<value>", f"{source_text(c.arg, script)}: required, no default: set it",
                  indent="  ") for c in required]
    return [head, *body]


def _notes(info: ScriptInfo, choices: list[Choice], envelope: FirstEnvelope) -> list[str]:
    notes = []
    for c in choices:
        if c.role == "left" and c.why.startswith("required"):
            notes.append(f"{code(c.arg.origin)} ({code(info.path)} line {c.arg.line}) is required and has no default: "
                         "give it a value under `fixed:` (a commented-out line is ready)")
        if c.role == "fixed" and c.spec.get("value") == HF_OUTPUT_DIR:
            notes.append(f"`output_dir` is fixed to {code(HF_OUTPUT_DIR)}: change it if your jobs should write elsewhere")
    if not any(c.role == "search" for c in choices):
        constants = ", ".join(f"{code(n)} (line {ln})" for n, _, ln in info.constants[:8])
        what = "reads no command-line arguments" if not info.arguments else "has no argument that looks like a hyperparameter"
        notes.append(f"{code(info.path)} {what}, so there is nothing to search yet: the draft approves one baseline job "
                     "(`max_jobs: 1`, `params: {}`). To search, add arguments (argparse) for the values to tune"
                     + (f"; numbers it sets that could become arguments: {constants}" if constants else "")
                     + ", list them under `params:` and raise `max_jobs`")
    length = next((c for c in choices if c.role == "fixed" and c.why.startswith("the training length")), None)
    fixed_length = ""
    if length is not None:
        fixed_length = f" ({code(length.arg.name + ': ' + yaml_value(length.spec['value']))}, the script's default)"
    notes.append(f"each job is stopped after its `timeout` of {format_duration(envelope.timeout_s)}: make sure one "
                 f"training run{fixed_length} fits, or raise `timeout` and `max_timeout` with `max_walltime`")
    return notes


def _hardware(info: ScriptInfo, envelope: FirstEnvelope) -> str:
    if info.frameworks:
        name, at = next(iter(info.frameworks.items()))
        return (f"{code(info.path)} imports {code(name)} (line {at}), a deep-learning framework: {envelope.flavor}, "
                "the cheapest GPU flavor")
    return f"{code(info.path)} imports no deep-learning framework: {envelope.flavor}, the cheapest CPU flavor"


def validated(draft: Draft, root: Path) -> Draft:
    """``draft`` with a note when it does not validate (it always should: this is the safety net)."""
    from mlr_action.core.program import ProgramError, parse_program

    try:
        parse_program(draft.text, root=root)
    except ProgramError as exc:
        return replace(draft, notes=[*draft.notes, "the draft does not validate yet: " + "; ".join(exc.problems)])
    return draft
