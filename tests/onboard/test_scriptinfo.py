"""Reading a script without running it: arguments of each style, metric lines, directions, and what stops a job."""

from __future__ import annotations

import textwrap
import time

import pytest

from mlr_action.onboard.scriptinfo import read_source
from mlr_action.onboard.scriptinfo.metric_reader import direction_of
from mlr_action.onboard.scriptinfo.values import UNKNOWN, value_of


def read(source: str, root=None):
    return read_source(textwrap.dedent(source), "train.py", root)


def args_of(source: str) -> dict:
    return {a.name: a for a in read(source).arguments}


# --- argparse ------------------------------------------------------------------------------------


def test_argparse_on_groups_and_in_helper_functions_with_constants_and_set_defaults():
    found = args_of("""
        import argparse
        BASE_LR = 3e-4
        def add_optim(parser):
            g = parser.add_argument_group("optim")
            g.add_argument("--lr", "--learning-rate", type=float, default=BASE_LR * 2)
            g.add_argument("--momentum", type=float, default=0.5)
        p = argparse.ArgumentParser()
        add_optim(p)
        p.add_argument("-b", "--batch-size", type=int, default=2 ** 5)
        p.add_argument("--opt", choices=("adam", "sgd"), default="adam")
        p.set_defaults(momentum=0.9)
    """)
    assert (found["lr"].kind, found["lr"].default, found["lr"].origin) == ("float", 6e-4, "--lr")
    assert found["momentum"].default == 0.9  # set_defaults wins
    assert (found["batch-size"].kind, found["batch-size"].default) == ("int", 32)
    assert found["opt"].choices == ("adam", "sgd")


@pytest.mark.parametrize(("line", "name", "expect"), [
    ('p.add_argument("--fast", action="store_true")', "fast", {"takes_value": False}),
    ('p.add_argument("--no-aug", action=argparse.BooleanOptionalAction)', "no-aug", {"takes_value": False}),
    ('p.add_argument("--layers", type=int, nargs="+", default=[1, 2])', "layers", {"kind": "list"}),
    ('p.add_argument("--lr", default=0.1)', "lr", {"typed": False}),  # argparse would hand over a string
    ('p.add_argument("--data", required=True)', "data", {"required": True, "has_default": False}),
    ('p.add_argument("--act", type=str2bool, default=True)', "act", {"kind": "bool"}),
])
def test_argparse_argument_shapes(line, name, expect):
    found = args_of(f"import argparse\np = argparse.ArgumentParser()\n{line}\n")[name]
    for key, value in expect.items():
        assert getattr(found, key) == value, key


@pytest.mark.parametrize(("lines", "problem"), [
    ('p.add_argument("data_dir")', "positional argument `data_dir`"),
    ('p.add_argument("-n", type=int, default=3)', "only a short form"),
    ('for k in ["a"]:\n    p.add_argument(f"--{k}", type=int, default=1)', "built at run time"),
    ('s = p.add_subparsers()\nt = s.add_parser("fit")\nt.add_argument("--lr", type=float, default=0.1)',
     "takes a subcommand (`fit`)"),
])
def test_argparse_shapes_a_job_cannot_pass_are_problems_never_guesses(lines, problem):
    info = read("import argparse\np = argparse.ArgumentParser()\n" + lines + "\n")
    assert any(problem in p for p in info.problems), info.problems


def test_arguments_of_a_subcommand_are_marked_so_they_are_never_drafted():
    info = read('import argparse\np = argparse.ArgumentParser()\ns = p.add_subparsers()\nt = s.add_parser("fit")\n'
                't.add_argument("--lr", type=float, default=0.1)\n')
    assert info.arguments[0].subcommand == "fit"


# --- click, typer, HfArgumentParser, globals ----------------------------------------------------------------


def test_click_options_types_ranges_flags_and_groups():
    found = args_of("""
        import click
        @click.command()
        @click.option("--lr", type=click.FloatRange(0, 1), default=0.1)
        @click.option("--depth", default=3)
        @click.option("--act", type=click.Choice(["relu", "gelu"]), default="relu")
        @click.option("--amp/--no-amp", default=False)
        @click.option("-q", "--quiet", is_flag=True)
        def main(lr, depth, act, amp, quiet): ...
    """)
    assert (found["lr"].low, found["lr"].high, found["depth"].kind) == (0.0, 1.0, "int")
    assert found["act"].choices == ("relu", "gelu")
    assert not found["amp"].takes_value and not found["quiet"].takes_value
    grouped = read("import click\n@click.group()\ndef cli(): ...\n@cli.command()\n@click.option('--lr', default=0.1)\n"
                   "def fit(lr): ...\n")
    assert any("click group" in p for p in grouped.problems)


def test_typer_parameters_in_every_spelling():
    found = args_of("""
        from enum import Enum
        from typing import Annotated, Literal
        import typer
        class Sched(str, Enum):
            cosine = "cosine"
            linear = "linear"
        BS = typer.Option(32, "--bs", help="batch")
        def main(
            data: str,
            learning_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.01,
            batch_size: int = BS,
            epochs: int = typer.Option(5),
            sched: Sched = Sched.linear,
            mode: Literal["a", "b"] = "a",
            amp: bool = False,
        ): ...
        typer.run(main)
    """)
    assert found["learning-rate"].high == 1.0 and found["learning-rate"].default == 0.01
    assert found["bs"].default == 32 and found["epochs"].default == 5
    assert (found["sched"].choices, found["sched"].default) == (("cosine", "linear"), "linear")
    assert found["mode"].choices == ("a", "b")
    assert not found["amp"].takes_value and found["data"].positional


def test_hf_dataclasses_their_choices_and_training_arguments():
    info = read("""
        from dataclasses import dataclass, field
        from typing import Optional
        from transformers import HfArgumentParser, TrainingArguments
        from mylib import DataArgs
        @dataclass
        class ModelArgs:
            name: str = field(metadata={"help": "required"})
            dropout: float = field(default=0.1)
            pool: str = field(default="cls", metadata={"choices": ["cls", "mean"]})
            lora_r: Optional[int] = 8
        parser = HfArgumentParser((ModelArgs, DataArgs, TrainingArguments))
    """)
    found = {a.name: a for a in info.arguments}
    assert found["name"].required and found["dropout"].default == 0.1 and found["lora_r"].kind == "int"
    assert found["pool"].choices == ("cls", "mean")
    assert found["learning_rate"].default == 5e-5 and "TrainingArguments" in found["learning_rate"].origin
    assert any("`DataArgs` (imported) were not read" in p for p in info.problems)


def test_nanogpt_globals_before_the_configurator_and_a_missing_configurator(tmp_path):
    source = "lr = 6e-4\nbatch_size = 12\ncompile = True\n_private = 1\nexec(open('configurator.py').read())\nafter = 3\n"
    info = read(source, tmp_path)
    assert {a.name: a.kind for a in info.arguments} == {"lr": "float", "batch_size": "int", "compile": "bool"}
    assert any("runs `configurator.py`, which is not in the repository" in p for p in info.problems)
    (tmp_path / "configurator.py").write_text("")
    assert read(source, tmp_path).problems == []


# --- metric lines and directions ------------------------------------------------------------------------


def sightings(source: str) -> list[tuple[str, bool]]:
    return [(m.name, m.readable) for m in read(source).metrics]


@pytest.mark.parametrize(("code", "expected"), [
    ('print(f"val_loss={x:.3f}")', [("val_loss", True)]),
    ('print("val_acc:", x)', [("val_acc", True)]),
    ('logger.info("epoch %d eval_f1=%.4f", e, f1)', [("eval_f1", True)]),
    ('print("rmse: {:.3f}".format(r))', [("rmse", True)]),
    ('print("Accuracy: {}/{}".format(c, n))', []),  # a fraction, not a metric value
    ('print({"eval_loss": l, "epoch": e})', [("eval_loss", True), ("epoch", True)]),
    ('print(json.dumps({"bleu": b}))', [("bleu", True)]),
    ('print(f"step {i}: val loss {l:.4f}")', [("val loss", False)]),
    ('print("val_loss=" + str(l))', [("val_loss", True)]),
])
def test_what_a_print_would_put_in_the_log(code, expected):
    assert sightings(code + "\n") == expected


def test_trainer_evaluate_counts_as_printing_eval_loss_and_the_compute_metrics_keys():
    found = sightings("def compute_metrics(p):\n    return {'accuracy': 1.0, 'f1': 0.5}\n"
                      "metrics = trainer.evaluate()\n")
    assert found == [("eval_loss", True), ("eval_accuracy", True), ("eval_f1", True)]


@pytest.mark.parametrize(("name", "direction"), [
    ("eval_loss", "minimize"), ("val/perplexity", "minimize"), ("test_wer", "minimize"), ("cer", "minimize"),
    ("valMAE", "minimize"), ("val_rmse", "minimize"), ("error_rate", "minimize"), ("eval_accuracy", "maximize"),
    ("f1_score", "maximize"), ("roc_auc", "maximize"), ("sacrebleu", "maximize"), ("rouge1", "maximize"),
    ("mean_reward", "maximize"), ("val_acc", "maximize"), ("throughput", None),
])
def test_the_direction_follows_from_the_name(name, direction):
    assert direction_of(name)[0] == direction


# --- never running anything ---------------------------------------------------------------------------


def test_hostile_constant_expressions_are_not_computed():
    import ast

    start = time.perf_counter()
    for text in ("10 ** 10 ** 10", "2 ** 100000", "'x' * 10 ** 9", "(1e308 * 10)", "1 / 0"):
        assert value_of(ast.parse(text, mode="eval").body) is UNKNOWN
    assert time.perf_counter() - start < 1.0  # a refusal, not a long computation (generous bound)
    source = 'import argparse\np = argparse.ArgumentParser()\np.add_argument("--n", type=int, default=10 ** 10 ** 10)\n'
    assert args_of(source)["n"].has_default is False


def test_the_script_is_parsed_never_executed(tmp_path):
    marker = tmp_path / "ran"
    info = read(f"open({str(marker)!r}, 'w').write('x')\nimport argparse\n"
                f"p = argparse.ArgumentParser()\np.add_argument('--lr', type=float, default=0.1)\n")
    assert info.arguments and not marker.exists()


@pytest.mark.parametrize("source", ["print 'python 2'\n", "def (:\n", "x = 1\n" + "(" * 500 + ")" * 500 + "\n"])
def test_an_unreadable_script_is_a_problem_not_a_crash(source):
    info = read(source)
    assert info.arguments == [] and info.problems and "nothing was read" in info.problems[0]
