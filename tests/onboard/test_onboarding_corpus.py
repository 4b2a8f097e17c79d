"""Onboarding on a corpus of training scripts: each draft validates, fits its script, and its jobs run.

The corpus (tests/corpus/) is nine scripts written in the styles found in
public code: plain argparse, a PyTorch-examples-style script, HfArgumentParser
dataclasses, click, typer, nanoGPT-style globals with a configurator, a
Lightning-style layered argparse CLI, a script with no arguments, and
argparse spread over helper functions. For each, the draft validates, gets the
metric and its direction right, and names only arguments the script accepts:

- the runnable ones (numpy or scikit-learn, CPU) run a local campaign of three
  jobs from the drafted program.md, each of which completes with a metric (the
  script with no arguments runs its one baseline job);
- the ones whose framework (torch, Lightning, transformers) is not installed
  here run under tests/corpus/absent.py with the drafted arguments at both ends
  of every range and with every choice: their own parser (stdlib argparse, the
  real HfArgumentParser code) accepts them and the script goes on to call its
  framework, where the run ends.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlr_action.commands import cli
from mlr_action.core.budget import Usage
from mlr_action.core.decide import default_jobs_that_fit
from mlr_action.onboard.draft import draft_program
from mlr_action.job.jobspec import job_spec
from mlr_action.core.ledger import ExperimentRow, read_ledger
from mlr_action.core.program import parse_program
from mlr_action.core.state import fold

CORPUS = Path(__file__).parents[1] / "corpus"
ABSENT = CORPUS / "absent.py"


@dataclass(frozen=True)
class Case:
    folder: str
    script: str
    style: str | None
    metric: str
    direction: str
    runs: str  # "local": a real campaign; "absent": parsed for real, stopped at the framework
    deps: tuple[str, ...]  # the drafted `dependencies:`, from the script's third-party imports
    flavor: str = "cpu-basic"

    def __str__(self) -> str:
        return self.folder


CASES = [
    Case("argparse_mlp", "train.py", "argparse", "val_f1", "maximize", "local", ("scikit-learn",)),
    Case("pytorch_mnist", "main.py", "argparse", "loss", "minimize", "absent", ("torch", "torchvision"), "t4-small"),
    Case("hf_glue", "run_classification.py", "hf", "eval_accuracy", "maximize", "absent",
         ("datasets", "numpy", "transformers"), "t4-small"),
    Case("click_gbm", "train.py", "click", "val_rmse", "minimize", "local", ("click", "numpy", "scikit-learn")),
    Case("typer_logreg", "train.py", "typer", "test_accuracy", "maximize", "local", ("numpy", "typer")),
    Case("nanogpt_bigram", "train.py", "globals", "val_loss", "minimize", "local", ("numpy",)),
    Case("lightning_mnist", "train.py", "argparse", "val_acc", "maximize", "absent",
         ("lightning", "torch", "torchvision"), "t4-small"),
    Case("no_args", "train.py", None, "accuracy", "maximize", "local", ("scikit-learn",)),
    Case("argparse_helpers", "train.py", "argparse", "val_mae", "minimize", "local", ("numpy",)),
]
LOCAL = [c for c in CASES if c.runs == "local"]
ABSENT_CASES = [c for c in CASES if c.runs == "absent"]


def repo_for(case: Case, tmp_path: Path) -> Path:
    root = tmp_path / case.folder
    shutil.copytree(CORPUS / case.folder, root)
    return root


def test_the_corpus_covers_every_style_the_issue_names():
    assert len(CASES) >= 8
    assert {c.style for c in CASES} >= {"argparse", "hf", "click", "typer", "globals", None}
    assert {c.direction for c in CASES} == {"minimize", "maximize"}
    for case in CASES:
        assert (CORPUS / case.folder / case.script).is_file()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_draft_validates_and_fits_its_script(case, tmp_path):
    root = repo_for(case, tmp_path)
    draft = draft_program(root)
    program = parse_program(draft.text, root=root)
    camp, env = program.campaign, program.envelope
    assert (camp.script, draft.style) == (case.script, case.style)
    assert (camp.metric, camp.direction) == (case.metric, case.direction)
    assert camp.target is None  # no target unless the user sets one
    assert env.allowed_flavors == [case.flavor] and program.default_flavor == case.flavor
    assert env.max_jobs <= 8 and env.max_parallel == 1 and env.output_repos == [] and not env.allow_deletes
    assert camp.dependencies == list(case.deps) and camp.image is None
    assert not any("does not validate" in note for note in draft.notes)
    if case.style is None:
        assert camp.params == {} and env.max_jobs == 1
    else:
        assert 1 <= len(camp.params) <= 4


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_drafted_envelope_runs_every_drafted_job_on_hf_starting_reservation_included(case, tmp_path):
    """The step's own arithmetic (decide, budget) admits max_jobs jobs of the drafted timeout, each reserving HF's
    starting allowance (scheduling_timeout) on top, and not one more: the ceilings fit the jobs, no blank cheque."""
    program = parse_program(draft_program(repo_for(case, tmp_path)).text, root=tmp_path / case.folder)
    env, starting = program.envelope, float(program.campaign.scheduling_timeout)
    assert starting > 0
    for used in (Usage(starting_s=starting), Usage()):  # HF bills starting; the local backend does not
        assert default_jobs_that_fit(program, used, None, limit=env.max_jobs) == env.max_jobs
    one_more = program.model_copy(update={"envelope": env.model_copy(update={"max_jobs": env.max_jobs + 1})})
    assert default_jobs_that_fit(one_more, Usage(starting_s=starting), None, limit=env.max_jobs + 1) == env.max_jobs


@pytest.mark.parametrize("case", CASES, ids=str)
def test_mlr_validate_passes_on_every_drafted_program_preflight_included(case, tmp_path, capsys):
    """The drafted program.md, merged unedited, passes the check: `mlr validate` (local backend: no network)."""
    root = repo_for(case, tmp_path)
    assert cli.main(["init", "--repo", str(root)]) == 0
    capsys.readouterr()
    code = cli.main(["validate", "--repo", str(root)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Preflight" in out and "no problem found" in out and "warning:" not in out, out
    assert f"plus `dependencies:` {', '.join(case.deps)}" in out


def drafted_argvs(program, root: Path) -> list[list[str]]:
    """The argv a job would get for the low end, the high end and each choice of every drafted parameter."""
    def spec_for(config):
        row = ExperimentRow(iter=1, ts="2026-01-01T00:00:00Z", status="submitted", config=config, timeout="1h")
        return job_spec(program, "corpus", row, root).args

    params = program.campaign.params
    configs = []
    for pick in ("low", "high"):
        config = {}
        for name, spec in params.items():
            if spec.choices is not None:
                config[name] = spec.choices[0 if pick == "low" else -1]
            else:
                value = getattr(spec, pick)
                config[name] = int(value) if spec.type == "int" else float(value)
        configs.append(config)
    for name, spec in params.items():
        for choice in spec.choices or []:
            configs.append({**configs[0], name: choice})
    return [spec_for(c) for c in configs]


def run_absent(root: Path, script: str, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ABSENT), script, *argv], cwd=root, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("case", ABSENT_CASES, ids=str)
def test_the_scripts_own_parser_accepts_every_drafted_argument(case, tmp_path):
    root = repo_for(case, tmp_path)
    program = parse_program(draft_program(root).text, root=root)
    argvs = drafted_argvs(program, root)
    assert any(arg.startswith("--") for arg in argvs[0])
    for argv in argvs:
        done = run_absent(root, case.script, argv)
        assert done.returncode == 0 and "after parsing its arguments" in done.stdout, (argv, done.stdout, done.stderr)


@pytest.mark.parametrize("case", ABSENT_CASES, ids=str)
def test_the_acceptance_check_fails_on_an_argument_the_script_does_not_take(case, tmp_path):
    """The harness is not a rubber stamp: the same run with one made-up argument is refused by the script."""
    root = repo_for(case, tmp_path)
    program = parse_program(draft_program(root).text, root=root)
    done = run_absent(root, case.script, [*drafted_argvs(program, root)[0], "--no_such_argument=1"])
    assert done.returncode != 0
    assert "no_such_argument" in done.stderr


def job_logs(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted((root / ".mlr").rglob("*.log")))


@pytest.mark.parametrize("case", LOCAL, ids=str)
def test_a_local_campaign_of_three_jobs_runs_on_the_drafted_program(case, tmp_path, capsys):
    root = repo_for(case, tmp_path)
    text = draft_program(root).text
    jobs = 1 if case.style is None else 3  # a script with no arguments has one config: its baseline
    text = re.sub(r"(?m)^max_jobs: \d+ ", "max_jobs: 3 ", text).replace("max_parallel: 1 ", "max_parallel: 3 ")
    (root / "program.md").write_text(text)
    # --no-uv: the drafted `dependencies:` are what this interpreter has; a uv on PATH would download them
    code = cli.main(["run", "--repo", str(root), "--interval", "0.1", "--max-ticks", "300", "--no-uv"])
    out = capsys.readouterr().out
    assert code == 0, out
    state = fold(read_ledger(root / "runs" / "ledger.jsonl"))
    logs = job_logs(root)
    rows = list(state.experiments.values())
    assert len(rows) == jobs, out
    assert all(r.status == "completed" and r.metric is not None for r in rows), (out, logs[-2000:])
    for refusal in ("unrecognized arguments", "invalid choice", "No such option", "AssertionError", "Traceback"):
        assert refusal not in logs
    assert state.stopped.reason == ("exhausted" if case.style is None else "budget")
    if case.style is not None:
        assert len({tuple(sorted(r.config.items())) for r in rows}) == 3  # three different configs ran
