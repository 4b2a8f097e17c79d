"""Local runs predict HF: the same folder (what git would commit) in a fresh copy, the same dependency recipe."""

from __future__ import annotations

import json
import time
from pathlib import Path

from fake_uv import make_uv
from gitrepos import clone, git, isolate_git, make_origin
from mlr_action.shell import authority
from mlr_action.backends.local import LocalBackend
from mlr_action.forges.files import FileForge
from mlr_action.core.ledger import read_ledger
from mlr_action.proposers.search import SearchProposer
from mlr_action.core.state import fold
from mlr_action.shell.step import Step
from programs import CAMPAIGN, ENVELOPE, program_text, with_
from simulate import FakeClock

TRAIN = ("import sys\nfrom helpers import score\n"
         "print(open('configs/run.txt').read().strip())\nprint('eval_accuracy=' + str(score()))\n")
PROGRAM = program_text(with_(ENVELOPE, allowed_flavors=["cpu-basic"], max_timeout="5m", max_jobs=1),
                       with_(CAMPAIGN, flavor="cpu-basic", timeout="1m", name="snap", target=None, patience=None))
FILES = {"program.md": PROGRAM, "train.py": TRAIN, "helpers.py": "def score():\n    return 0.5\n",
         "configs/run.txt": "config read from the shipped folder\n", "requirements.txt": "PyYAML\n"}


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def step_until_done(step: Step, root: Path) -> list:
    deadline = time.time() + 60
    while time.time() < deadline:
        result = step.run()
        state = fold(read_ledger(root / "runs" / "ledger.jsonl"))
        if state.experiments and not state.in_flight:
            return list(state.experiments.values())
        time.sleep(0.1)
    raise AssertionError(result.events)


def test_a_module_git_ignores_fails_locally_as_it_would_on_hf(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    root = write(tmp_path / "repo", {**FILES, ".gitignore": "helpers.py\n"})
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    backend = LocalBackend(root, uv=None)
    [exp] = step_until_done(Step(root=root, backend=backend, proposer=SearchProposer(), forge=FileForge(root),
                                 clock=FakeClock()), root)
    assert exp.status == "error"
    assert "ModuleNotFoundError: No module named 'helpers'" in backend.logs(job_id=exp.job_id)


def test_local_jobs_run_the_folder_with_uv_and_its_declared_dependencies(tmp_path):
    root = write(tmp_path / "plain", FILES)
    uv = make_uv(tmp_path / "bin") / "uv"
    backend = LocalBackend(root, uv=str(uv))
    step = Step(root=root, backend=backend, proposer=SearchProposer(), forge=FileForge(root), clock=FakeClock())
    first = step.run()
    assert not any(e.startswith("note: local jobs run with") for e in first.events)  # uv runs it: nothing to warn of
    [exp] = step_until_done(step, root)
    logs = backend.logs(job_id=exp.job_id)
    assert exp.status == "completed" and exp.metric == 0.5, logs
    assert "fake uv: --with-requirements requirements.txt" in logs and "config read from the shipped folder" in logs
    spec = json.loads((root / ".mlr" / "jobs" / exp.job_id / "spec.json").read_text())
    assert spec["command"][:5] == [str(uv), "run", "--no-project", "--with-requirements", "requirements.txt"]
    assert exp.runner == "uv" and exp.folder_hash and exp.commit is None


def test_without_uv_the_step_says_so_once_and_the_row_records_it(tmp_path):
    root = write(tmp_path / "plain", FILES)
    program = PROGRAM.replace("max_jobs: 1", "max_jobs: 2")
    (root / "program.md").write_text(program)
    step = Step(root=root, backend=LocalBackend(root, uv=None), proposer=SearchProposer(), forge=FileForge(root),
                clock=FakeClock())
    notes = []
    deadline = time.time() + 60
    while time.time() < deadline:
        result = step.run()
        notes += [e for e in result.events if e.startswith("note: local jobs run with")]
        state = fold(read_ledger(root / "runs" / "ledger.jsonl"))
        if len(state.experiments) == 2 and not state.in_flight:
            break
        time.sleep(0.1)
    assert len(notes) == 1 and "not uv" in notes[0]
    assert all("(no uv)" in (e.runner or "") for e in state.experiments.values())


def test_in_github_mode_the_job_runs_the_commits_folder_and_the_row_records_commit_and_digest(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    origin = make_origin(tmp_path, FILES)
    work = clone(origin, tmp_path / "work")
    snapshot = authority.read_authorized(work, branch="main")
    (work / "helpers.py").write_text("def score():\n    return 0.0  # edited after the check\n")
    backend = LocalBackend(work, uv=None)
    [exp] = step_until_done(Step(root=work, backend=backend, proposer=SearchProposer(), forge=FileForge(work),
                                 clock=FakeClock(), snapshot=snapshot), work)
    assert exp.metric == 0.5  # the committed helpers.py, never the work tree's
    assert exp.commit == snapshot.commit and exp.folder_hash == snapshot.shipped.code_digest()


# --- a local step runs the committed folder, as HF does ---------------------------------------------------------


def test_a_local_step_in_git_runs_the_committed_folder_and_says_what_it_left_out(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    root = write(tmp_path / "repo", FILES)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    secret = "hf_" + "x" * 8 + "fake"  # built at run time, never a real token
    write(root, {".env": f"HF_TOKEN={secret}\n", "notes.py": "# not committed\n",
                 "helpers.py": "def score():\n    return 0.0  # edited, not committed\n"})
    backend = LocalBackend(root, uv=None)
    step = Step(root=root, backend=backend, proposer=SearchProposer(), forge=FileForge(root), clock=FakeClock())
    first = step.run()
    [note] = [e for e in first.events if "left out" in e]
    head = git(root, "rev-parse", "HEAD")
    assert f"as committed at HEAD ({head[:12]})" in note
    assert "2 untracked files (.env, notes.py)" in note and "the uncommitted changes to 1 file (helpers.py)" in note
    [exp] = step_until_done(step, root)
    work = root / ".mlr" / "jobs" / exp.job_id / "work"
    assert exp.metric == 0.5  # the committed helpers.py, as HF would run it
    assert not (work / ".env").exists() and not (work / "notes.py").exists()
    assert secret not in note


def test_a_git_repository_with_no_commit_is_told_to_commit(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    root = write(tmp_path / "repo", FILES)
    git(root, "init", "-q", "-b", "main")
    result = Step(root=root, backend=LocalBackend(root, uv=None), proposer=SearchProposer(), forge=FileForge(root),
                  clock=FakeClock()).run()
    assert any("no commit yet: commit the campaign folder" in e for e in result.events), result.events
    assert not (root / ".mlr" / "jobs").exists() or not any((root / ".mlr" / "jobs").glob("local-*"))



def test_a_campaign_folder_that_is_not_committed_is_told_to_commit_and_nothing_runs(tmp_path, monkeypatch):
    """A copy of a campaign inside another repository, ignored or never added (as `make demo` once made in build/):
    HEAD has no file of it, so jobs would start with nothing; the step says to commit the folder instead."""
    isolate_git(monkeypatch, tmp_path)
    top = write(tmp_path / "repo", {"README.md": "a project\n", ".gitignore": "build/\n"})
    git(top, "init", "-q", "-b", "main")
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "init")
    for folder in (write(top / "build" / "campaign", FILES), write(top / "untracked", FILES)):
        result = Step(root=folder, backend=LocalBackend(folder, uv=None), proposer=SearchProposer(),
                      forge=FileForge(folder), clock=FakeClock()).run()
        assert any("is not in the commit at HEAD" in e and "commit the campaign folder" in e
                   for e in result.events), result.events
        assert not any((folder / ".mlr" / "jobs").glob("local-*"))


def test_outside_git_the_files_on_disk_run_and_the_step_says_so(tmp_path):
    root = write(tmp_path / "plain", {**FILES, "extra.txt": "on disk\n"})
    backend = LocalBackend(root, uv=None)
    step = Step(root=root, backend=backend, proposer=SearchProposer(), forge=FileForge(root), clock=FakeClock())
    first = step.run()
    assert any("not in a git repository, so local jobs run its files as they are on disk" in e for e in first.events)
    [exp] = step_until_done(step, root)
    assert (root / ".mlr" / "jobs" / exp.job_id / "work" / "extra.txt").exists()
