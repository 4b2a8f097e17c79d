"""The shipped folder (mlr_action.job.shipped) and how its Python runs (mlr_action.job.runner)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from gitrepos import git, isolate_git, mktree
from mlr_action.job import runner, shipped
from mlr_action.job.shipped import ShipError, blob_id, clean_path, from_commit, from_work_tree


def keys(**changes):
    return SimpleNamespace(**{"dependencies": [], "python": None, "image": None, **changes})


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def git_repo(root: Path, monkeypatch, tmp_path: Path) -> Path:
    isolate_git(monkeypatch, tmp_path)
    git(root, "init", "-q", "-b", "main")
    return root


def commit_all(root: Path) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "x")
    return git(root, "rev-parse", "HEAD")


def git_of(root: Path):
    return lambda *args, **kw: subprocess.run(["git", *args], cwd=root, capture_output=True, check=True)


# -- what is shipped ---------------------------------------------------------------------------------------


def test_the_work_tree_ships_what_git_tracks_or_would_track_never_runs_or_ignored_files(tmp_path, monkeypatch):
    root = git_repo(write(tmp_path / "repo", {"train.py": "import model\n", "model.py": "X = 1\n",
                                              ".gitignore": "outputs/\n*.ckpt\n", "configs/a.yaml": "lr: 1\n",
                                              "runs/ledger.jsonl": "{}\n", "outputs/m.json": "{}", "w.ckpt": "big"}),
                    monkeypatch, tmp_path)
    commit_all(root)
    (root / "new.py").write_text("untracked, not ignored: git would track it\n")
    (root / ".mlr").mkdir()
    (root / ".mlr" / "x").write_text("state")
    (root / "link.py").symlink_to(root / "model.py")
    folder = from_work_tree(root)
    assert [f.path for f in folder.files] == [".gitignore", "configs/a.yaml", "model.py", "new.py", "train.py"]
    assert folder.skipped == ("link.py (a symlink)",) and folder.source == shipped.WORK_TREE_GIT


def test_without_git_every_file_but_runs_mlr_and_git_is_shipped(tmp_path):
    root = write(tmp_path / "plain", {"train.py": "x\n", "runs/ledger.jsonl": "{}\n", ".mlr/jobs/a": "x",
                                      "sub/.git/config": "x", "data/part.csv": "1,2\n", "outputs/m.json": "{}"})
    folder = from_work_tree(root)
    assert [f.path for f in folder.files] == ["data/part.csv", "outputs/m.json", "train.py"]
    assert folder.source == shipped.WORK_TREE_ALL


def test_a_commit_ships_its_folder_as_committed_and_the_same_content_gives_the_same_digest(tmp_path, monkeypatch):
    root = git_repo(write(tmp_path / "repo", {"camp/train.py": "import utils\n", "camp/utils.py": "u = 1\n",
                                              "camp/runs/ledger.jsonl": "{}\n", "other.py": "not in camp\n"}),
                    monkeypatch, tmp_path)
    commit = commit_all(root)
    (root / "camp" / "utils.py").write_text("edited in the work tree after the commit\n")
    at_commit = from_commit(git_of(root), commit, "camp")
    assert [f.path for f in at_commit.files] == ["train.py", "utils.py"]
    assert at_commit.data(at_commit.get("utils.py")) == b"u = 1\n" and at_commit.commit == commit
    assert from_work_tree(root / "camp").digest != at_commit.digest
    (root / "camp" / "utils.py").write_text("u = 1\n")
    assert from_work_tree(root / "camp").digest == at_commit.digest  # the same files, from either source


def test_a_crafted_tree_never_ships_a_path_outside_the_folder(tmp_path, monkeypatch):
    (tmp_path / "repo").mkdir()
    root = git_repo(tmp_path / "repo", monkeypatch, tmp_path)
    tree = mktree(root, {"train.py": "x\n", "..": {"evil.py": "x"}, ".git": {"hooks": "x"}, "runs": {"a": "x"},
                         "link": ("120000", "/etc/passwd"), "sub": ("160000", "0" * 40)})
    commit = git(root, "commit-tree", tree, "-m", "crafted")
    folder = from_commit(git_of(root), commit, ".")
    assert [f.path for f in folder.files] == ["train.py"]
    assert sorted(folder.skipped) == ["link (a symlink)", "sub (a submodule)"]
    dest = tmp_path / "job"
    folder.materialize(dest)
    assert sorted(os.listdir(dest)) == ["train.py"]


@pytest.mark.parametrize("path, ok", [
    ("train.py", True), ("a/b.py", True), ("../x", False), ("/etc/x", False), ("a//b", False), ("./a", False),
    ("a/.git/x", False), (".GIT/config", False), ("runs/ledger.jsonl", False), (".mlr/x", False),
    ("sub/runs/x", True), ("", False),
])
def test_clean_path(path, ok):
    assert (clean_path(path) is not None) is ok


def test_a_folder_over_the_limits_is_refused_with_the_fix(tmp_path, monkeypatch):
    root = write(tmp_path / "plain", {"train.py": "x\n", "weights.bin": "0"})
    monkeypatch.setattr(shipped, "MAX_BYTES", 1)
    with pytest.raises(ShipError, match=r"over the 0 MB a job may be shipped with \(largest: .*keep data sets"):
        from_work_tree(root)
    monkeypatch.setattr(shipped, "MAX_BYTES", 10**6)
    monkeypatch.setattr(shipped, "MAX_FILES", 1)
    with pytest.raises(ShipError, match="has 2 files, over the 1"):
        from_work_tree(root)


def test_a_file_edited_after_the_listing_is_never_shipped_under_its_old_id(tmp_path):
    root = write(tmp_path / "plain", {"train.py": "print(1)\n"})
    folder = from_work_tree(root)
    (root / "train.py").write_text("print('swapped in')\n")
    with pytest.raises(ShipError, match="changed while it was being shipped"):
        folder.materialize(tmp_path / "job")
    assert blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git hash-object of an empty file


# -- dependencies ---------------------------------------------------------------------------------------------

HEADER = '# /// script\n# requires-python = ">=3.10"\n# dependencies = ["torch>=2.4", "numpy"]\n# ///\nimport torch\n'
PYPROJECT = '[project]\nname = "x"\nversion = "0"\ndependencies = ["transformers>=4.45", "datasets"]\n'


def folder_of(files: dict[str, str]):
    return from_work_tree(write(Path(os.environ["MLR_TEST_TMP"]) / "f", files))


@pytest.fixture(autouse=True)
def _tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("MLR_TEST_TMP", str(tmp_path))


@pytest.mark.parametrize("files, source, uv_args, pip_args", [
    ({"train.py": HEADER, "requirements.txt": "x\n", "pyproject.toml": PYPROJECT}, runner.HEADER,
     ["--no-project"], ["torch>=2.4", "numpy"]),
    ({"train.py": "import x\n", "requirements.txt": "scikit-learn>=1.3  # ml\n\nPyYAML\n", "pyproject.toml": PYPROJECT},
     runner.REQUIREMENTS, ["--no-project", "--with-requirements", "requirements.txt"], ["-r", "requirements.txt"]),
    ({"train.py": "import x\n", "pyproject.toml": PYPROJECT}, runner.PYPROJECT,
     ["--no-project", "--with", "transformers>=4.45", "--with", "datasets"], ["transformers>=4.45", "datasets"]),
    ({"train.py": "import x\n", "pyproject.toml": "[tool.ruff]\nline-length = 120\n"}, runner.NOTHING,
     ["--no-project"], []),
])
def test_the_first_declaration_wins(files, source, uv_args, pip_args):
    plan = runner.recipe(folder_of(files), "train.py", keys())
    assert (plan.source, plan.uv_args(), plan.pip_args()) == (source, uv_args, pip_args)


def test_the_campaign_keys_add_packages_and_a_python_version_and_say_what_is_ignored():
    plan = runner.recipe(folder_of({"train.py": HEADER, "requirements.txt": "x\n"}), "train.py",
                         keys(dependencies=["accelerate>=1.0"], python="3.11"))
    assert plan.uv_args() == ["--no-project", "--with", "accelerate>=1.0", "--python", "3.11"]
    assert plan.describe() == ("the script's PEP 723 header (2 packages), plus `dependencies:` accelerate>=1.0; Python "
                               "3.11 (requirements.txt ignored: the first of header, requirements.txt, pyproject.toml wins)")


def test_a_header_that_does_not_read_is_a_problem():
    plan = runner.recipe(folder_of({"train.py": "# /// script\n# dependencies = [unquoted]\n# ///\n"}), "train.py", keys())
    assert plan.problems and "not valid TOML" in plan.problems[0]


def test_the_launcher_quotes_every_word_and_falls_back_to_pip_and_python_without_uv(tmp_path):
    plan = runner.recipe(folder_of({"my train.py": "print(1)\n", "requirements.txt": "x\n"}), "my train.py",
                         keys(dependencies=["a;b"]))
    text = runner.launcher(plan, "my train.py")
    assert "exec uv run --no-project --with-requirements requirements.txt --with 'a;b' 'my train.py' \"$@\"" in text
    assert "python -m pip install --quiet --disable-pip-version-check -r requirements.txt 'a;b'" in text


def test_an_image_without_uv_runs_the_script_with_its_python_in_a_writable_copy(tmp_path):
    mount = tmp_path / "mount"
    write(mount, {"train.py": "import os, sys\nopen('out.txt', 'w').write('x')\nprint('argv=' + ' '.join(sys.argv[1:]))\n"})
    bin_dir = tmp_path / "bin"  # an image with python and the coreutils, and no uv
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    for tool in ("mktemp", "cp", "chmod"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    plan = runner.recipe(folder_of({"train.py": "x\n"}), "train.py", keys())
    done = subprocess.run(["/bin/bash", "-c", runner.launcher(plan, "train.py", mount=str(mount)), "mlr-job", "--a=1 2"],
                          env={"PATH": str(bin_dir), "TMPDIR": str(tmp_path)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "argv=--a=1 2\nmlr-launcher: exit=0\n" and not (mount / "out.txt").exists()


UV = shutil.which("uv") or str(Path(sys.executable).parent / "uv")


@pytest.mark.skipif(not Path(UV).is_file(), reason="uv is not installed")
@pytest.mark.parametrize("files", [
    {"train.py": '# /// script\n# dependencies = []\n# ///\nimport sys; print("ok", sys.argv[1:])\n'},
    {"train.py": 'import sys; print("ok", sys.argv[1:])\n', "requirements.txt": "# nothing to install\n"},
    {"train.py": 'import sys; print("ok", sys.argv[1:])\n', "pyproject.toml": '[project]\nname = "x"\nversion = "0"\n'
                                                                              'dependencies = []\n'},
])
def test_the_real_uv_takes_the_commands_as_given(files, tmp_path):
    """The options the backends give `uv run` are ones uv knows (offline: nothing is installed)."""
    folder = folder_of(files)
    work = tmp_path / "work"
    folder.materialize(work)
    command = runner.uv_command(runner.recipe(folder, "train.py", keys()), "train.py", ["--lr=0.1"], uv=UV)
    command[2:2] = ["--python", sys.executable]  # this interpreter: nothing to download
    env = {**os.environ, "UV_OFFLINE": "1", "UV_CACHE_DIR": str(tmp_path / "cache"), "UV_NO_CONFIG": "1"}
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok ['--lr=0.1']"


# --- the code digest a row records leaves program.md out (its budget is not code) ---------------------------


def test_a_budget_change_in_program_md_is_not_a_code_change_and_a_script_change_is(tmp_path):
    from mlr_action.job.jobspec import job_spec
    from mlr_action.core.ledger import experiment_row
    from mlr_action.core.program import parse_program
    from mlr_action.render.provenance import code_section
    from mlr_action.core.state import fold
    from programs import ENVELOPE, program_text, with_

    root = write(tmp_path / "c", {"train.py": "print('eval_accuracy=0.5')\n"})

    def row_with(max_jobs: int, iteration: int):
        text = program_text(with_(ENVELOPE, max_jobs=max_jobs))
        (root / "program.md").write_text(text)
        program = parse_program(text)
        intent = experiment_row(iter=iteration, ts="2026-01-01T00:00:00+00:00", status="submitted",
                                config={"lr": 1e-4, "batch_size": 8, "scheduler": "linear"}, timeout_s=60,
                                flavor="t4-small")
        spec = job_spec(program, "c", intent, root, shipped=from_work_tree(root))
        return intent.model_copy(update={"job_id": f"j{iteration}", "folder_hash": spec.folder_hash})

    rows = [row_with(12, 1), row_with(40, 2)]  # the budget raised mid-campaign
    assert "code changed" not in code_section(fold(rows)) and "the same code" in code_section(fold(rows))
    (root / "train.py").write_text("print('eval_accuracy=0.6')\n")
    rows.append(row_with(40, 3))
    assert "- iters 3: the work tree, folder" in code_section(fold(rows))
    assert "**code changed here**" in code_section(fold(rows))
