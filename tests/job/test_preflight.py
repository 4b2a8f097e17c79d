"""Preflight: local imports present in the shipped folder (AST), dependencies declared, HF account and flavors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from mlr_action.commands.cli import main
from mlr_action.job.preflight import PROBLEM, WARNING, folder_findings
from mlr_action.job.runner import recipe
from mlr_action.job.shipped import from_work_tree
from programs import CAMPAIGN, ENVELOPE, program_text, with_

TOKEN = "hf_" + "FakeLoopbackToken0123456789abcdef"  # built, so no token-shaped literal is committed


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def findings(root: Path, files: dict[str, str], script: str = "train.py", **keys) -> list[tuple[str, str]]:
    write(root, files)
    folder = from_work_tree(root)
    campaign = SimpleNamespace(**{"dependencies": [], "python": None, "image": None, **keys})
    found = folder_findings(folder, script, recipe(folder, script, campaign), work_tree=root)
    return [(f.level, f.text) for f in found if f.level != "info"]


@pytest.mark.parametrize("files, expected", [
    # local modules, packages, relative imports and namespace packages that are there: nothing to say
    ({"train.py": "import model\nfrom pkg import sub\nfrom pkg.sub import f\nimport ns.mod\nimport os, json\n",
      "model.py": "import json\n", "pkg/__init__.py": "from . import sub\n", "pkg/sub.py": "from .helpers import h\n",
      "pkg/helpers.py": "h = 1\n", "ns/mod.py": "x = 1\n"}, []),
    # an import inside try/except ImportError is optional
    ({"train.py": "try:\n    import wandb\nexcept ImportError:\n    wandb = None\n"}, []),
    # a relative import of a module that is not there
    ({"train.py": "import pkg.a\n", "pkg/__init__.py": "", "pkg/a.py": "from .gone import x\n"},
     [(PROBLEM, "pkg/a.py line 1 imports .gone.x, which is not in the shipped folder")]),
    # third-party imports with nothing declared
    ({"train.py": "import torch\nimport numpy as np\n"},
     [(PROBLEM, "the code imports numpy, torch but the folder declares no dependencies")]),
    # declared by their distribution names (aliases included): nothing to say; one missing: a warning
    ({"train.py": "import sklearn, yaml, PIL\nimport torch\n", "requirements.txt": "scikit-learn\npyyaml>=6\nPillow\n"},
     [(WARNING, "torch imported by the code but not declared in requirements.txt under that name")]),
    ({"train.py": "# /// script\n# dependencies = ['torch']\n# ///\nimport torch\nimport transformers\n"},
     [(WARNING, "transformers imported by the code but not declared in train.py's PEP 723 header")]),
    # the script itself missing from the folder
    ({"other.py": "x = 1\n"}, [(PROBLEM, "the script train.py is not in the shipped folder")]),
])
def test_folder_findings(tmp_path, files, expected):
    got = findings(tmp_path / "f", files)
    assert len(got) == len(expected), got
    for (level, text), (want_level, want) in zip(got, expected):
        assert level == want_level and text.startswith(want), (text, want)


def test_a_module_in_the_work_tree_that_git_ignores_is_a_problem_with_the_fix(tmp_path, monkeypatch):
    from gitrepos import git, isolate_git

    isolate_git(monkeypatch, tmp_path)
    root = write(tmp_path / "repo", {"train.py": "from utils import f\n", "utils.py": "f = 1\n", ".gitignore": "utils.py\n"})
    git(root, "init", "-q", "-b", "main")
    [(level, text)] = findings(root, {})
    assert level == PROBLEM and text == ("train.py line 1 imports utils, which is in the work tree but not in the "
                                         "shipped folder (the work tree (the files git tracks or would track)): commit it "
                                         "(and make sure .gitignore does not exclude it)")


def test_with_an_image_undeclared_imports_are_a_warning_not_a_problem(tmp_path):
    [(level, text)] = findings(tmp_path / "f", {"train.py": "import torch\n"}, image="pytorch/pytorch:2.6.0")
    assert level == WARNING and "fine only if the image pytorch/pytorch:2.6.0 has them" in text


def _parser_gives_up(source: str) -> bool:
    """Whether this interpreter's own parser raises on ``source`` (the limits differ between Python versions)."""
    import ast

    try:
        ast.parse(source)
    except (RecursionError, MemoryError):
        return True
    return False


@pytest.mark.parametrize("source", [
    "x = " + "-" * 20000 + "1\n",  # MemoryError ("too complex to parse") on 3.10 to 3.13
    "x = " + "1+" * 50000 + "1\n",  # RecursionError during AST construction on 3.11+
], ids=["unary", "binary"])
@pytest.mark.parametrize("where", ["train.py", "helpers.py"])
def test_a_script_too_deeply_nested_to_parse_is_a_problem_not_a_traceback(tmp_path, source, where):
    files = {"train.py": "import helpers\n", "helpers.py": "x = 1\n", where: source}
    got = findings(tmp_path / "f", files)
    if not _parser_gives_up(source):  # Python 3.10 builds the binary one fine: then there is nothing to say
        assert got == []
        return
    [(level, text)] = got
    assert level == PROBLEM and text.startswith(f"{where} is too deeply nested or too large for Python's parser"), text
    assert "its imports cannot be checked" in text and "split" in text


# -- mlr validate -------------------------------------------------------------------------------------------


def campaign_repo(root: Path, files: dict[str, str], envelope=None, campaign=None) -> Path:
    write(root, {"program.md": program_text(envelope or with_(ENVELOPE, allowed_flavors=["cpu-basic", "t4-small"]),
                                            campaign or with_(CAMPAIGN, flavor="cpu-basic", name="proj")), **files})
    return root


def test_mlr_validate_says_what_a_job_receives_and_warns_of_an_import_nothing_declares(tmp_path, capsys):
    root = campaign_repo(tmp_path / "p", {"train.py": "from helpers import f\n", "requirements.txt": "numpy\n"})
    assert main(["validate", "--repo", str(root)]) == 0
    out = capsys.readouterr().out
    assert ("command       uv run --no-project --with-requirements requirements.txt train.py --lr=<lr> "
            "--batch_size=<batch_size> --scheduler=<scheduler> --epochs=3") in out
    assert "dependencies  requirements.txt" in out
    assert "private model repo <the token's user>/mlr-code-proj" in out
    assert "problem: the code imports helpers but the folder declares" not in out  # requirements exist: a warning
    assert "warning: helpers imported by the code but not declared" in out and "1 problem" not in out
    (root / "helpers.py").write_text("f = 1\n")
    (root / "train.py").write_text("from helpers import f\nimport numpy\n")
    assert main(["validate", "--repo", str(root)]) == 0
    assert "no problem found" in capsys.readouterr().out


def test_mlr_validate_exits_2_when_a_local_import_is_missing(tmp_path, capsys):
    root = campaign_repo(tmp_path / "p", {"train.py": "from .model import net\n"})
    assert main(["validate", "--repo", str(root)]) == 2
    assert "problem: train.py line 1 imports .model.net, which is not in the shipped folder" in capsys.readouterr().out


def test_mlr_validate_with_the_hf_backend_checks_the_token_namespace_and_flavors(tmp_path, capsys, monkeypatch):
    pytest.importorskip("huggingface_hub")
    from loopback.hf_server import FakeHubServer

    root = campaign_repo(tmp_path / "p", {"train.py": "print('eval_accuracy=1')\n"},
                         envelope=with_(ENVELOPE, allowed_flavors=["cpu-basic", "h200"]),
                         campaign=with_(CAMPAIGN, flavor="cpu-basic", name="proj", namespace="not-mine"))
    with FakeHubServer(token=TOKEN) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        assert main(["validate", "--repo", str(root), "--backend", "hf"]) == 2
    out = capsys.readouterr().out
    assert "problem: namespace: the token's user me is not a member of not-mine (it belongs to my-org)" in out
    assert "problem: allowed_flavors: h200 is not in HF's hardware catalog today" in out
    assert TOKEN not in out


def test_mlr_validate_with_the_hf_backend_names_the_private_repo_the_code_goes_to(tmp_path, capsys, monkeypatch):
    pytest.importorskip("huggingface_hub")
    from loopback.hf_server import FakeHubServer

    root = campaign_repo(tmp_path / "p", {"train.py": "print('eval_accuracy=1')\n"})
    with FakeHubServer(token=TOKEN) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        assert main(["validate", "--repo", str(root), "--backend", "hf"]) == 0
        assert hub.git.repos == {}  # validate uploads nothing
    out = capsys.readouterr().out
    assert "token: user me; jobs run and are billed in me" in out
    assert "the folder is uploaded to the private model repo me/mlr-code-proj and mounted read-only" in out
