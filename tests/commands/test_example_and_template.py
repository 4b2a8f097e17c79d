"""The program.md template and the digits example: both validate, and the example's job keeps the job contract."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlr_action.core.program import PROSE_SECTIONS, Campaign, Envelope, parse_program

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "mlr_action" / "templates" / "program.template.md"
EXAMPLE = REPO / "examples" / "digits"
METRIC_LINE = re.compile(r"^eval_accuracy=(\S+)$")


def filled_template(script: str = "train.py", metric: str = "eval_accuracy") -> str:
    return TEMPLATE.read_text(encoding="utf-8").replace("{{script}}", script).replace("{{metric}}", metric)


def yaml_block(text: str, heading: str) -> str:
    """The first ```yaml fence after ``## heading`` (a plain scan, independent of the parser under test)."""
    after = text.split(f"## {heading}\n", 1)[1]
    return after.split("```yaml\n", 1)[1].split("```", 1)[0]


# --- template ----------------------------------------------------------------


def test_template_with_placeholders_filled_validates():
    program = parse_program(filled_template(), root=None)
    assert program.campaign.script == "train.py"
    assert program.campaign.metric == "eval_accuracy"
    assert program.default_flavor in program.envelope.allowed_flavors
    assert program.default_timeout_s <= program.envelope.max_timeout
    assert set(program.sections) == set(PROSE_SECTIONS)


def test_template_validates_with_a_script_in_a_subfolder(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print('eval_loss=1.0')\n")
    program = parse_program(filled_template("src/train.py", "eval_loss"), root=tmp_path)
    assert program.campaign.script == "src/train.py"


def test_template_uses_only_the_two_placeholders():
    text = TEMPLATE.read_text(encoding="utf-8")
    assert "{{script}}" in text and "{{metric}}" in text
    assert set(re.findall(r"\{\{[^}]*\}\}", text)) == {"{{script}}", "{{metric}}"}
    assert "{{" not in filled_template() and "}}" not in filled_template()


def test_template_says_merging_is_approval_and_the_budget_is_never_raised_by_the_bot():
    head = TEMPLATE.read_text(encoding="utf-8").split("## Goal", 1)[0].lower()
    assert "merging this file is your approval to spend" in head
    assert "never raises its own budget" in head


@pytest.mark.parametrize(("heading", "model"), [("Budget envelope", Envelope), ("Campaign", Campaign)])
def test_template_documents_every_key_with_a_comment(heading, model):
    block = yaml_block(TEMPLATE.read_text(encoding="utf-8"), heading)
    keys = {}
    for line in block.splitlines():
        match = re.match(r"^#?\s?([a-z_]+):", line)  # top-level key, possibly commented out
        if match and not line.startswith("  "):
            keys[match.group(1)] = line
    assert set(keys) == set(model.model_fields), f"{heading}: keys differ from the validator's"
    for key, line in keys.items():
        assert "#" in line.lstrip("#").split(":", 1)[1], f"{heading}: {key} has no comment"


# --- example program.md ------------------------------------------------------


def test_example_program_validates_with_its_root():
    text = (EXAMPLE / "program.md").read_text(encoding="utf-8")
    program = parse_program(text, root=EXAMPLE)
    assert program.campaign.metric == "eval_accuracy"
    assert program.campaign.direction == "maximize"
    assert program.campaign.script == "train.py"
    assert program.campaign.target is not None and 0 < program.campaign.target < 1
    assert program.envelope.allowed_flavors == ["cpu-basic"]
    assert set(program.sections) == set(PROSE_SECTIONS)
    assert all(program.sections[s].strip() for s in PROSE_SECTIONS)


def test_example_script_accepts_every_param_and_fixed_name():
    program = parse_program((EXAMPLE / "program.md").read_text(encoding="utf-8"), root=EXAMPLE)
    out = subprocess.run(
        [sys.executable, str(EXAMPLE / "train.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    for name in [*program.campaign.params, *program.campaign.fixed]:
        assert f"--{name}" in out.stdout, f"train.py has no --{name}"
    activation = program.campaign.params["activation"]
    for choice in activation.choices:
        assert str(choice) in out.stdout


# --- example train.py ---------------------------------------------------------


def job_args(program) -> list[str]:
    """A mid-space config plus the fixed values, as the job contract passes them: --name=value."""
    values = {}
    for name, spec in program.campaign.params.items():
        if spec.kind == "categorical":
            values[name] = spec.choices[0]
        elif spec.log:
            mid = math.sqrt(spec.low * spec.high)
            values[name] = round(mid) if spec.kind == "int" else mid
        else:
            mid = (spec.low + spec.high) / 2
            values[name] = round(mid) if spec.kind == "int" else mid
    values.update(program.campaign.fixed)
    return [f"--{k}={v}" for k, v in values.items()]


def test_train_py_prints_exactly_one_final_metric_line(tmp_path):
    pytest.importorskip("sklearn")
    program = parse_program((EXAMPLE / "program.md").read_text(encoding="utf-8"), root=EXAMPLE)
    env = {**os.environ, "MLR_CAMPAIGN": "digits", "MLR_ITER": "7", "MLR_OUTPUT_REPO": "me/digits-007"}
    out = subprocess.run(
        [sys.executable, str(EXAMPLE / "train.py"), *job_args(program)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )
    assert out.returncode == 0, out.stderr
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    mentions = [line for line in lines if "eval_accuracy" in line]
    assert len(mentions) == 1, mentions
    match = METRIC_LINE.match(lines[-1])
    assert match, f"last line is not the metric: {lines[-1]!r}"
    assert 0.0 <= float(match.group(1)) <= 1.0
    assert "me/digits-007" in out.stdout and "digits" in out.stdout  # the env is echoed for the log
    assert list(tmp_path.iterdir()) == []  # the job writes nothing


def test_train_py_defaults_run(tmp_path):
    pytest.importorskip("sklearn")
    out = subprocess.run(
        [sys.executable, str(EXAMPLE / "train.py"), "--max_iter=5"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert METRIC_LINE.match(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "bad",
    [
        ["--activation=sigmoid"],
        ["--hidden=abc"],
        ["--hidden=0"],
        ["--learning_rate_init=-1"],
        ["--no_such_arg=1"],
    ],
)
def test_train_py_rejects_bad_arguments(bad, tmp_path):
    out = subprocess.run(
        [sys.executable, str(EXAMPLE / "train.py"), *bad],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert out.returncode != 0
    assert "eval_accuracy" not in out.stdout


def test_example_program_yaml_blocks_are_plain_yaml():
    text = (EXAMPLE / "program.md").read_text(encoding="utf-8")
    assert isinstance(yaml.safe_load(yaml_block(text, "Budget envelope")), dict)
    assert isinstance(yaml.safe_load(yaml_block(text, "Campaign")), dict)
