"""Paths from data: what comes from the ledger, the ledger branch or a job is data, never a path.

The attackers: a ledger-branch writer (a research row's ``note``, a row's
``job_id``, a symlink under runs/), a job's own code (a symlink left in the
work tree), and whoever writes the action's inputs. Each place a path is built
from such data is attacked here; the ledger branch's tree itself is attacked
in test_gitsync.py and through the action in test_action.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlr_action.github import action
from mlr_action.core.jobs import JobStage, PermanentError
from mlr_action.backends.local import LocalBackend
from mlr_action.forges.files import FileForge
from mlr_action.core.ledger import EventRow
from mlr_action.proposers import research
from mlr_action.core.state import fold

CREDENTIALS = "[http]\n\textraheader = AUTHORIZATION: basic eC1hY2Nlc3MtdG9rZW46Z2hzX2Zha2U=\n"


def repo_with_git_config(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text(CREDENTIALS)  # what actions/checkout persists
    (root / "runs" / "research").mkdir(parents=True)
    (root / "runs" / "research" / "001.md").write_text("# Research note 001\n")
    return root


def note_row(note: str):
    return fold([EventRow(event="research", ts="t", reason="note", after=0, note=note)])


@pytest.mark.parametrize("note", [".git/config", "runs/research/../../.git/config", "program.md",
                                  "runs/research/001.md/../../../.git/config", "/etc/passwd", "runs/summary.md"])
def test_a_ledger_row_cannot_point_the_researcher_at_another_file(tmp_path, note):
    root = repo_with_git_config(tmp_path)
    (root / "program.md").write_text("# program\n")
    (root / "runs" / "summary.md").write_text("summary\n")
    assert research.read_latest_note(root, note_row(note)) == (None, "")


def test_a_note_that_is_a_symlink_is_not_read(tmp_path):
    root = repo_with_git_config(tmp_path)
    (root / "runs" / "research" / "002.md").symlink_to(root / ".git" / "config")
    assert research.read_latest_note(root, note_row("runs/research/002.md")) == (None, "")


def test_a_real_note_is_read(tmp_path):
    root = repo_with_git_config(tmp_path)
    assert research.read_latest_note(root, note_row("runs/research/001.md")) == ("# Research note 001\n", "001")


def test_a_job_id_from_the_ledger_never_reaches_the_file_system(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "output.log").write_text("secret\n")
    backend = LocalBackend(tmp_path / "repo")
    for job_id in ("../../outside", "local-000000000000/../../../outside", "/etc"):
        assert backend.inspect(job_id=job_id).stage is JobStage.DELETED
        assert backend.logs(job_id=job_id) == ""
        backend.cancel(job_id=job_id)
    assert (tmp_path / "outside" / "output.log").read_text() == "secret\n"


def test_the_file_forge_never_writes_a_report_through_a_symlinked_folder(tmp_path):
    root = tmp_path / "repo"
    (root / "runs").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "runs" / "escalations").symlink_to(outside)  # e.g. left by a local job's code
    forge = FileForge(root)
    with pytest.raises(PermanentError, match="symlink"):
        forge.publish_escalation(kind="ledger", title="t", body="b")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("name, value, fragment", [
    ("program", "runs/program.md", "under runs/"),
    ("program", ".git/program.md", "under .git/"),
    ("working-directory", ".git", "under .git/"),
    ("working-directory", "camp/.GIT/x", "under .git/"),
])
def test_inputs_never_point_into_runs_or_git(tmp_path, name, value, fragment):
    (tmp_path / value).mkdir(parents=True)
    _, problems = action.read_inputs({action.env_name(name): value, "GITHUB_WORKSPACE": str(tmp_path)})
    assert len(problems) == 1 and fragment in problems[0].what, problems


@pytest.mark.parametrize("link", [".mlr", ".mlr/jobs"])
def test_a_state_folder_that_is_a_symlink_is_never_written_through(tmp_path, link):
    """A `.mlr` (the step's lock, the local job registry) committed as a symlink would send the bot's writes anywhere."""
    from mlr_action.commands.cli import main

    root = tmp_path / "repo"
    root.mkdir()
    (root / "train.py").write_text("print('eval_accuracy=0.5')\n")
    (root / "program.md").write_text((Path(__file__).parents[2] / "examples" / "digits" / "program.md").read_text())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if link == ".mlr/jobs":
        (root / ".mlr").mkdir()
    (root / link).symlink_to(elsewhere, target_is_directory=True)
    assert main(["step", "--repo", str(root)]) == 2
    assert list(elsewhere.iterdir()) == []
    assert not (root / "runs" / "ledger.jsonl").exists() or "submitted" not in (root / "runs" / "ledger.jsonl").read_text()
