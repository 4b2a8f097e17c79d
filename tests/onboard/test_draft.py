"""The draft: ranges around defaults, what is left out and why, YAML that reads back, mlr init, the onboarding PR."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loopback.github_server import FakeGitHub
from mlr_action.commands import cli
from mlr_action.onboard.draft import draft_program, find_script
from mlr_action.onboard.draft_space import MAX_SEARCHED, plan
from mlr_action.onboard.draft_text import edit_block, yaml_value
from mlr_action.github.forge import GitHubForge
from mlr_action.core.ledger import read_ledger
from mlr_action.core.program import parse_program
from mlr_action.core.program_yaml import load_settings
from mlr_action.onboard.scriptinfo.model import Argument
from mlr_action.core.state import fold
from programs import CAMPAIGN, ENVELOPE, program_text, with_
from simulate import FakeClock, make_step, run_campaign
from test_rendering_attacks import HOSTILE, rendered_from_outside

CORPUS = Path(__file__).parents[1] / "corpus"


def arg(name, default, kind=None, **kw) -> Argument:
    kind = kind or {int: "int", float: "float", str: "str", bool: "bool"}[type(default)]
    return Argument(name=name, kind=kind, line=1, origin=f"--{name}", default=default, has_default=True, **kw)


def roles(*arguments) -> dict:
    return {c.arg.name: (c.role, c.spec) for c in plan(list(arguments))}


@pytest.mark.parametrize(("argument", "spec"), [
    (arg("lr", 3e-4), {"type": "float", "low": 3e-5, "high": 3e-3, "log": True}),
    (arg("learning-rate", 0.5, low=0.0, high=1.0), {"type": "float", "low": 0.05, "high": 1.0, "log": True}),
    (arg("batch_size", 64), {"type": "int", "low": 16, "high": 128, "log": True}),
    (arg("per_device_train_batch_size", 8), {"type": "int", "low": 2, "high": 16, "log": True}),
    (arg("weight_decay", 0.0), {"type": "float", "low": 0.0, "high": 0.1}),
    (arg("weight-decay", 0.01), {"type": "float", "low": 0.001, "high": 0.1, "log": True}),
    (arg("dropout", 0.1), {"type": "float", "low": 0.05, "high": 0.55}),
    (arg("dropout", 0.0), {"type": "float", "low": 0.0, "high": 0.3}),
    (arg("num_layers", 6), {"type": "int", "low": 3, "high": 12}),
    (arg("optimizer", "adam", choices=("adam", "sgd")), {"choices": ["adam", "sgd"]}),
    (arg("bits", 8, choices=(4, 8)), {"choices": [4, 8]}),
])
def test_a_tunable_argument_is_searched_around_its_default(argument, spec):
    assert roles(argument)[argument.name] == ("search", spec)


@pytest.mark.parametrize("argument", [
    arg("seed", 42), arg("output_dir", "out"), arg("log-interval", 10), arg("device", "cuda"),
    arg("eval_batch_size", 64), arg("num_workers", 4), arg("test-batch-size", 1000), arg("fp16", False),
    arg("fast", False, takes_value=False), arg("data", "x", positional=True), arg("layers", 2, kind="list"),
    arg("lr", 0.1, typed=False), arg("name", "run"), arg("temperature", 0.0), arg("momentum", -1.0),
    arg("mode", "a", choices=("a", "<b>")), arg("lr", 0.1, subcommand="fit"), arg("warmup_steps", 500),
])
def test_what_is_not_a_hyperparameter_a_job_can_pass_is_left_out_with_a_reason(argument):
    role, _ = roles(argument)[argument.name]
    assert role == "left"
    assert plan([argument])[0].why


def test_the_training_length_is_fixed_at_its_default_and_the_search_is_capped():
    many = [arg("lr", 1e-3), arg("batch_size", 32), arg("dropout", 0.1), arg("weight_decay", 0.01),
            arg("hidden", 128), arg("momentum", 0.9), arg("epochs", 10), arg("max_steps", 100)]
    found = roles(*many)
    assert found["epochs"] == ("fixed", {"value": 10}) and found["max_steps"][0] == "left"
    searched = [n for n, (role, _) in found.items() if role == "search"]
    assert searched == ["lr", "batch_size", "weight_decay", "dropout"] and len(searched) == MAX_SEARCHED
    assert found["hidden"][0] == found["momentum"][0] == "offer"


def test_heads_and_the_width_they_divide_are_never_searched_apart():
    found = roles(arg("n_layer", 6), arg("n_head", 6), arg("n_embd", 384))
    assert found["n_layer"][0] == "search" and found["n_head"][0] == found["n_embd"][0] == "left"


@pytest.mark.parametrize("value", [1e-5, 3e-4, 1e20, 2.5, 0.0, 7, True, "linear", "true", "1e-3", "a b", "no", "/tmp/x"])
def test_yaml_values_read_back_as_themselves(value):
    assert load_settings(f"k: {yaml_value(value)}\n", first_line=1) == {"k": value}


def test_template_keys_the_draft_does_not_set_survive_and_set_ones_keep_their_comment():
    text = "## Campaign\n\n```yaml\nmetric: x        # the metric\nfinal:\n  jobs: 2\nparams:\n  a: 1\n```\n"
    edited = edit_block(text, "Campaign", {"metric": "val_loss", "params": ["params: {}"]})
    assert "metric: val_loss" in edited and "# the metric" in edited
    assert "final:\n  jobs: 2\n" in edited and "  a: 1" not in edited


def test_with_no_training_script_the_draft_names_train_py_and_says_so(tmp_path):
    draft = draft_program(tmp_path)
    assert draft.script == "train.py" and any("no training script found" in n for n in draft.notes)
    assert parse_program(draft.text).campaign.script == "train.py"  # valid once train.py exists


def test_find_script_prefers_train_py_then_training_names_and_skips_tests(tmp_path):
    for rel in ("tests/train.py", "src/main.py", "tools/convert.py", "scripts/run_glue.py", "x/train_lm.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert find_script(tmp_path) == "x/train_lm.py"
    (tmp_path / "train.py").write_text("")
    assert find_script(tmp_path) == "train.py"


def test_the_user_may_name_the_metric_and_a_target(tmp_path):
    shutil.copytree(CORPUS / "argparse_mlp", tmp_path, dirs_exist_ok=True)
    program = parse_program(draft_program(tmp_path, metric="train_loss", target=0.2).text, root=tmp_path)
    assert (program.campaign.metric, program.campaign.direction, program.campaign.target) == ("train_loss", "minimize", 0.2)


def test_an_empty_search_space_runs_one_baseline_job_and_stops(tmp_path):
    (tmp_path / "train.py").write_text("print('eval_accuracy=0.5')\n")
    (tmp_path / "program.md").write_text(program_text(ENVELOPE, with_(CAMPAIGN, params={}, fixed={}, target=None)))
    run_campaign(make_step(tmp_path))
    state = fold(read_ledger(tmp_path / "runs" / "ledger.jsonl"))
    assert len(state.experiments) == 1 and state.stopped.reason == "exhausted"


# --- mlr init ------------------------------------------------------------------------------------------------


def test_mlr_init_writes_the_draft_and_shows_what_it_inferred(tmp_path, capsys):
    shutil.copytree(CORPUS / "pytorch_mnist", tmp_path, dirs_exist_ok=True)
    assert cli.main(["init", "--repo", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    program = parse_program((tmp_path / "program.md").read_text(), root=tmp_path)
    assert program.campaign.script == "main.py" and program.campaign.direction == "minimize"
    assert "lr: 0.1 to 10.0, log scale  <- --lr, default 1.0 (main.py line 68)" in out
    assert "printed at line 56" in out and "t4-small" in out and "Worst case" in out
    assert cli.main(["init", "--repo", str(tmp_path)]) == 2  # never overwrites
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(("option", "needle"), [(["--script", "nope.py"], "is not a .py file"),
                                                (["--metric", "val loss"], "is not a metric name")])
def test_mlr_init_refuses_a_bad_option_and_writes_nothing(tmp_path, capsys, option, needle):
    (tmp_path / "train.py").write_text("")
    assert cli.main(["init", "--repo", str(tmp_path), *option]) == 2
    assert needle in capsys.readouterr().err and not (tmp_path / "program.md").exists()


# --- the dependencies ----------------------------------------------------------------------------------------


def test_the_draft_declares_what_the_code_imports_by_distribution_name_and_validate_passes(tmp_path, capsys):
    files = {
        "train.py": "import os, json\nimport numpy as np\nfrom sklearn.svm import SVC\nfrom models.net import Net\n"
                    "try:\n    import wandb\nexcept ImportError:\n    wandb = None\nprint(f'val_loss={0.1}')\n",
        "models/__init__.py": "", "models/net.py": "import yaml\nfrom . import layers\n", "models/layers.py": "import torch\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    draft = draft_program(tmp_path)
    camp = parse_program(draft.text, root=tmp_path).campaign
    # stdlib, the folder's own modules and the optional wandb left out; sklearn and yaml by their distributions
    assert camp.dependencies == ["numpy", "pyyaml", "scikit-learn", "torch"] and camp.image is None
    assert [(d.module, d.path, d.line) for d in draft.deps.packages] == [
        ("numpy", "train.py", 2), ("yaml", "models/net.py", 1), ("sklearn", "train.py", 3), ("torch", "models/layers.py", 1)]
    assert camp.flavor is None or camp.flavor == "cpu-basic"  # the script itself imports no framework
    (tmp_path / "program.md").write_text(draft.text)
    assert cli.main(["validate", "--repo", str(tmp_path)]) == 0
    assert "no problem found" in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "applies"), [
    ({"requirements.txt": "scikit-learn\n"}, "requirements.txt"),
    ({"pyproject.toml": "[project]\nname = 'x'\nversion = '0'\ndependencies = ['scikit-learn']\n"}, "pyproject.toml"),
    ({"train.py": "# /// script\n# dependencies = ['scikit-learn']\n# ///\nimport sklearn\nprint(f'acc={1}')\n"},
     "header"),
])
def test_a_folder_that_declares_its_dependencies_gets_none_drafted_and_the_body_says_which_applies(tmp_path, extra,
                                                                                                   applies):
    files = {"train.py": "import sklearn\nprint(f'acc={1}')\n", **extra}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    draft = draft_program(tmp_path)
    assert parse_program(draft.text, root=tmp_path).campaign.dependencies == []
    assert "# dependencies:" in draft.text  # the template's commented-out line, kept
    _, pull, _ = onboard(tmp_path)
    said = "The script's PEP 723 header" if "header" in applies else f"The folder's `{applies}`"
    assert f"{said} declares them and every job installs what it lists, so none is drafted." in pull["body"]
    assert "| package | imported as |" not in pull["body"]


# --- the onboarding pull request ------------------------------------------------------------------------------


def onboard(root: Path) -> tuple[FakeGitHub, dict, str]:
    with FakeGitHub() as gh:
        GitHubForge(root, env=gh.env(), throttle=False, backoff=0, clock=FakeClock(),
                    publish_runs=lambda root, message: None).onboard()
        return gh, gh.pulls[1], gh.files["mlr/onboarding"]["program.md"]


def test_the_pull_request_shows_each_parameter_its_source_the_metric_evidence_and_the_worst_case(tmp_path):
    shutil.copytree(CORPUS / "pytorch_mnist", tmp_path, dirs_exist_ok=True)
    _, pull, drafted = onboard(tmp_path)
    body = pull["body"]
    assert drafted == draft_program(tmp_path).text
    assert "| `lr` | `0.1 to 10.0, log scale` | `--lr, default 1.0 (main.py line 68)` |" in body
    assert "| `epochs` (fixed) | `14` |" in body
    assert "`--seed`: not a hyperparameter" in body and "`--no-cuda`: a flag" in body
    assert "`loss`, **minimize**: the name says loss, where lower is better" in body
    assert "- line 56: `print('\\nTest set: Average loss:" in body
    assert "imports `torch` (line 4)" in body and "t4-small, the cheapest GPU flavor" in body
    assert "Worst case" in body and "No target is drafted" in body
    assert rendered_from_outside(body) == []


def test_a_hostile_script_cannot_render_anything_on_the_pull_request(tmp_path):
    evil = " ".join(HOSTILE)
    (tmp_path / "train.py").write_text(
        "import argparse\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--lr', type=float, default=0.1)\n"
        f"p.add_argument({('--x' + HOSTILE[0])!r}, default={evil!r})\n"
        f"p.add_argument('--mode', choices=['a', {HOSTILE[10]!r}], default='a')\n"
        f"p.add_argument({HOSTILE[3]!r})\n"
        f"print(f'val_loss={{0.5}} {evil}')\n"
        f"print(f'{HOSTILE[5]} acc: {{1}}')\n"
    )
    gh, pull, drafted = onboard(tmp_path)
    assert rendered_from_outside(pull["body"]) == []
    (issue,) = [i for i in gh.issues.values() if "mlr-onboarding" in [label["name"] for label in i["labels"]]]
    assert rendered_from_outside(issue["body"]) == []
    assert "evil.example" not in drafted and "octocat" not in drafted  # nothing of it reaches program.md
    assert parse_program(drafted, root=tmp_path).campaign.params.keys() == {"lr"}


def test_a_subcommand_help_strings_and_metric_names_from_the_script_are_shown_never_rendered(tmp_path):
    """Every text the script controls (a subcommand's name, argument names and help, metric names) is code."""
    evil = " ".join(HOSTILE)
    (tmp_path / "train.py").write_text(
        "import argparse\n"
        "p = argparse.ArgumentParser(description=" + repr(evil) + ")\n"
        "p.add_argument('--lr', type=float, default=1e-3, help=" + repr(evil) + ")\n"
        "sub = p.add_subparsers(dest='cmd', help=" + repr(evil) + ")\n"
        "t = sub.add_parser(" + repr("train " + evil) + ", help=" + repr(evil) + ")\n"
        "t.add_argument('--epochs', type=int, default=3, help=" + repr(evil) + ")\n"
        "a = p.parse_args()\n"
        "print(f'val_loss={a.lr}')\n"
        "print(f" + repr(HOSTILE[1] + " = {a.lr}") + ")\n"
    )
    gh, pull, drafted = onboard(tmp_path)
    assert "belongs to the subcommand" in pull["body"]  # the reason is shown, its name as code
    assert rendered_from_outside(pull["body"]) == []
    (issue,) = [i for i in gh.issues.values() if "mlr-onboarding" in [label["name"] for label in i["labels"]]]
    assert rendered_from_outside(issue["body"]) == []
    assert "evil.example" not in drafted and "octocat" not in drafted


def test_mlr_init_prints_no_control_character_from_the_script(tmp_path, capsys):
    (tmp_path / "train.py").write_text("print(f'val_loss={1} \x1b]0;owned\x07 \x1b[2J')\n")
    assert cli.main(["init", "--repo", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\u001b" in out  # shown, escaped


def test_the_drafted_pull_request_in_the_docs_is_the_one_the_bot_opens(tmp_path):
    docs = (Path(__file__).parents[2] / "docs" / "github-action.md").read_text()
    shown = docs.split("A drafted pull request, for a PyTorch", 1)[1].split("````markdown\n", 1)[1].split("\n````", 1)[0]
    shutil.copytree(CORPUS / "pytorch_mnist", tmp_path / "mnist")
    _, pull, _ = onboard(tmp_path / "mnist")
    assert shown == pull["body"].rstrip("\n")
