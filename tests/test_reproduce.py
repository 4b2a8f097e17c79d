"""mlr reproduce ITER: the exact job of an experiment, from the commit it ran; --run runs it again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitrepos import clone, git, isolate_git, make_origin
from mlr_action import authority
from mlr_action.cli import main
from mlr_action.shipped import from_work_tree
from programs import CAMPAIGN, ENVELOPE, program_text, with_

TRAIN = ("import sys\nfrom scoring import score\n"
         "args = dict(a[2:].split('=', 1) for a in sys.argv[1:])\n"
         "print(f\"eval_accuracy={score(float(args['lr']))}\")\n")
SCORING = "def score(lr):\n    return round(1 - lr, 4)\n"
PROGRAM = program_text(with_(ENVELOPE, allowed_flavors=["cpu-basic"], max_timeout="5m"),
                       with_(CAMPAIGN, flavor="cpu-basic", timeout="1m", name="rep",
                             params={"lr": {"type": "float", "low": 0.01, "high": 0.5}}, fixed={}))


def ledger(root: Path, **row) -> None:
    (root / "runs").mkdir(exist_ok=True)
    base = {"iter": 3, "ts": "2026-01-01T00:00:00+00:00", "status": "completed", "config": {"lr": 0.25},
            "job_id": "6745abc", "metric": 0.75, "decision": "keep", "timeout": "1m", "flavor": "cpu-basic"}
    (root / "runs" / "ledger.jsonl").write_text(json.dumps({**base, **row}) + "\n")


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    origin = make_origin(tmp_path, {"program.md": PROGRAM, "train.py": TRAIN, "scoring.py": SCORING})
    return clone(origin, tmp_path / "work")


def test_a_row_with_a_commit_is_rebuilt_from_that_commit_whatever_the_work_tree_holds(checkout, tmp_path, capsys):
    snapshot = authority.read_authorized(checkout, branch="main")
    ledger(checkout, commit=snapshot.commit, folder_hash=snapshot.shipped.digest)
    (checkout / "scoring.py").write_text("def score(lr):\n    return 0.0  # a later edit\n")
    git(checkout, "commit", "-qam", "later code")
    assert main(["reproduce", "3", "--repo", str(checkout)]) == 0
    out = capsys.readouterr().out
    assert f"code      commit {snapshot.commit[:12]} (. as committed there); folder " in out and "verified" in out
    assert "command   uv run --no-project train.py --lr=0.25" in out
    assert "env       MLR_CAMPAIGN=rep MLR_ITER=3 MLR_OUTPUT_REPO=me/sweep-rep-003" in out

    assert main(["reproduce", "3", "--repo", str(checkout), "--run", "--no-uv", "--into", str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert "reproduced: eval_accuracy=0.75 (the ledger recorded 0.75); exit code 0" in out
    assert (tmp_path / "again" / "scoring.py").read_text() == SCORING  # the commit's code, not the later edit


def test_a_local_row_whose_work_tree_changed_since_is_refused(tmp_path, capsys):
    root = tmp_path / "plain"
    root.mkdir()
    for name, text in {"program.md": PROGRAM, "train.py": TRAIN, "scoring.py": SCORING}.items():
        (root / name).write_text(text)
    ledger(root, folder_hash=from_work_tree(root).digest)
    assert main(["reproduce", "3", "--repo", str(root)]) == 0
    assert "the work tree (the row records no commit: a local run)" in capsys.readouterr().out
    (root / "scoring.py").write_text("def score(lr):\n    return 0\n")
    assert main(["reproduce", "3", "--repo", str(root), "--run", "--no-uv"]) == 2
    err = capsys.readouterr().err
    assert "the files changed since" in err


def test_an_unknown_iter_or_a_commit_not_in_the_clone_is_said(checkout, capsys):
    ledger(checkout, commit="f" * 40)
    assert main(["reproduce", "9", "--repo", str(checkout)]) == 2
    assert "there is no iter 9 in runs/ledger.jsonl (it has iters 3–3)" in capsys.readouterr().err
    assert main(["reproduce", "3", "--repo", str(checkout)]) == 2
    assert "commit ffffffffffff, which the experiment ran, is not in this clone" in capsys.readouterr().err
