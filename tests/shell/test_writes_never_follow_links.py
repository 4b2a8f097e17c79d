"""The bot's writes never go through a symlink: not under .mlr/, not under runs/, in no mode.

The attackers: a repo writer who commits a symlink where the bot writes (a
``.mlr/step.lock`` pointing at ``.git/config``, a dangling ``.mlr/.gitignore``,
a ``runs`` that points out of the checkout), a ledger-branch writer (the
work tree's runs/ is theirs), and a job's own code, which on the local
backend runs in the checkout and can leave a link behind for the next step.
Each writer refuses a symlinked file, or a symlinked folder between the
campaign root and the file (:mod:`mlr_action.core.safepath`); the step checks
``.mlr/`` and ``runs/`` before anything else, in every mode, through the CLI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gitrepos import clone, git, isolate_git, make_origin
from loopback.github_server import FakeGitHub
from mlr_action.backends import _supervise as sup
from mlr_action.core.jobs import JobStage, PermanentError
from mlr_action.backends.local import LocalBackend
from mlr_action.commands.cli import main
from mlr_action.forges.files import FileForge
from mlr_action.core.ledger import EventRow, append_rows, repair_ledger
from mlr_action.proposers import research
from programs import CAMPAIGN, program_text, with_

TRAIN = "print('eval_accuracy=0.5')\n"
PROGRAM = program_text(None, with_(CAMPAIGN, target=None, patience=None))
PRECIOUS = "[core]\n\trepositoryformatversion = 0\n"
ROW = EventRow(event="started", ts="2026-01-01T00:00:00+00:00", campaign="c")


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """(the campaign's checkout, a folder outside it holding a precious file)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text(PRECIOUS)
    root = tmp_path / "repo"
    root.mkdir()
    (root / "program.md").write_text(PROGRAM)
    (root / "train.py").write_text(TRAIN)
    return root, outside


def untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["victim"], "the bot wrote outside the checkout"
    assert (outside / "victim").read_text() == PRECIOUS, "the bot wrote through a symlink"


def nothing_submitted(root: Path) -> None:
    jobs = root / ".mlr" / "jobs"
    assert not jobs.is_dir() or not [p for p in jobs.iterdir() if p.name.startswith("local-")]


# --- .mlr/: the step's lock and the local backend's registry ---------------------------------------------


@pytest.mark.parametrize("link, target", [
    (".mlr/step.lock", "victim"),  # open(..., "w") would truncate it
    (".mlr/.gitignore", "new-file"),  # dangling: writing "*" would create it
    (".mlr/jobs/lock", "victim"),  # the local backend's registry lock
])
def test_a_committed_link_under_mlr_is_never_written_through(world, capsys, link, target):
    root, outside = world
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    (root / link).symlink_to(outside / target)
    assert main(["step", "--repo", str(root)]) == 2
    said = capsys.readouterr().out
    assert f"{link} is a symlink" in said and "never through a link" in said, said
    untouched(outside)
    nothing_submitted(root)


def test_the_local_backend_never_reads_or_writes_a_registry_entry_that_is_a_link(tmp_path):
    """A committed .mlr/jobs/local-<id> link would be listed as a job of the campaign and get its status written."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "spec.json").write_text(json.dumps({"job_id": "local-000000000000", "labels": {"mlr-campaign": "c",
                                       "mlr-iter": "1"}, "submitted_at": 0, "args": [], "timeout_s": 60}))
    root = tmp_path / "repo"
    (root / ".mlr" / "jobs").mkdir(parents=True)
    (root / ".mlr" / "jobs" / "local-000000000000").symlink_to(outside, target_is_directory=True)
    backend = LocalBackend(root)
    assert backend.list_jobs(campaign="c") == []
    assert backend.inspect(job_id="local-000000000000").stage is JobStage.DELETED
    backend.cancel(job_id="local-000000000000")
    assert sorted(p.name for p in outside.iterdir()) == ["spec.json"]


def test_a_job_file_is_replaced_whole_never_written_through_a_planted_link(tmp_path):
    """The supervisor's temporary file has a predictable name: a link planted there is replaced, not followed."""
    victim = tmp_path / "victim"
    victim.write_text(PRECIOUS)
    jobdir = tmp_path / "job"
    jobdir.mkdir()
    (jobdir / f".{sup.STATUS_FILE}.{os.getpid()}.tmp").symlink_to(victim)
    sup.write_json(jobdir / sup.STATUS_FILE, {"stage": "RUNNING"})
    assert victim.read_text() == PRECIOUS
    assert sup.read_status(jobdir) == {"stage": "RUNNING"} and not (jobdir / sup.STATUS_FILE).is_symlink()


# --- runs/: in every mode -------------------------------------------------------------------------------------


def test_a_runs_link_is_refused_by_a_local_step(world, capsys):
    root, outside = world
    (root / "runs").symlink_to(outside, target_is_directory=True)
    assert main(["step", "--repo", str(root)]) == 2
    said = capsys.readouterr().out
    assert "runs is a symlink" in said and "nothing was spent" in said, said
    untouched(outside)
    nothing_submitted(root)


def test_a_committed_runs_link_is_refused_by_mlr_step_with_the_github_forge(tmp_path, monkeypatch, capsys):
    isolate_git(monkeypatch, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text(PRECIOUS)
    origin = make_origin(tmp_path, {"program.md": PROGRAM, "train.py": TRAIN})
    work = clone(origin, tmp_path / "work")
    (work / "runs").symlink_to(Path("..") / "outside", target_is_directory=True)  # committed by a writer
    git(work, "add", "runs")
    git(work, "commit", "-q", "-m", "runs points out of the checkout")
    git(work, "push", "-q", "origin", "HEAD:main")
    with FakeGitHub() as gh:
        for name, value in gh.env().items():
            monkeypatch.setenv(name, value)
        code = main(["step", "--repo", str(work), "--forge", "github", "--backend", "local"])
        opened = gh.issues_labelled("mlr-escalation")
    said = capsys.readouterr().out
    assert code == 2 and "runs is a symlink" in said, said
    untouched(outside)
    nothing_submitted(work)
    assert [i for i in opened if "runs is a symlink" in i["body"]], "the escalation names the link and the fix"


def test_a_research_folder_link_is_refused_before_anything_is_spent(world, capsys):
    root, outside = world
    (root / "runs").mkdir()
    (root / "runs" / "research").symlink_to(outside, target_is_directory=True)
    assert main(["step", "--repo", str(root)]) == 2
    said = capsys.readouterr().out
    assert "runs/research is a symlink" in said, said
    untouched(outside)
    nothing_submitted(root)


# --- each writer refuses on its own, whoever calls it ---------------------------------------------------------


def links(tmp_path: Path, where: str) -> tuple[Path, Path]:
    """A checkout whose ``where`` (a folder or file under runs/) is a link out of it; (root, outside)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text(PRECIOUS)
    root = tmp_path / "repo"
    (root / where).parent.mkdir(parents=True, exist_ok=True)
    (root / where).symlink_to(outside if where.count("/") == 0 else outside / "victim")
    return root, outside


WRITERS = {
    "append_rows": lambda root: append_rows(root / "runs" / "ledger.jsonl", [ROW], root=root),
    "summary": lambda root: __import__("mlr_action.forges.files", fromlist=["x"]).write_atomic(
        root / "runs" / "summary.md", "# summary\n", root=root),
    "report": lambda root: FileForge(root).publish_stop_report(title="t", body="b"),
    "note": lambda root: research.write_note(root, Path("runs/research/001.md"), "# note\n"),
}


@pytest.mark.parametrize("writer", WRITERS)
def test_every_writer_refuses_a_runs_folder_that_is_a_link(tmp_path, writer):
    root, outside = links(tmp_path, "runs")
    with pytest.raises(PermanentError, match="runs is a symlink"):
        WRITERS[writer](root)
    untouched(outside)


@pytest.mark.parametrize("writer, where", [
    ("append_rows", "runs/ledger.jsonl"),
    ("summary", "runs/summary.md"),
    ("report", "runs/stop-report.md"),
    ("note", "runs/research/001.md"),
])
def test_every_writer_refuses_a_file_that_is_a_link(tmp_path, writer, where):
    root, outside = links(tmp_path, where)
    with pytest.raises(PermanentError, match="is a symlink"):
        WRITERS[writer](root)
    untouched(outside)


def test_a_note_is_never_written_through_a_link_planted_at_a_temporary_name(tmp_path):
    """The note's temporary file once had a predictable name (001.md.tmp): a link planted there is never opened."""
    root, outside = links(tmp_path, "runs/research/001.md.tmp")
    WRITERS["note"](root)
    untouched(outside)
    assert (root / "runs" / "research" / "001.md").read_text() == "# note\n"


def test_repairing_the_ledger_never_writes_through_a_planted_temporary_file(tmp_path):
    root, outside = links(tmp_path, "runs/ledger.jsonl.tmp")
    (root / "runs" / "ledger.jsonl").write_text(json.dumps(ROW.model_dump()) + "\n{\"iter\": 2, \"ts")  # a crash
    assert repair_ledger(root / "runs" / "ledger.jsonl", root=root) is True
    untouched(outside)
    assert (root / "runs" / "ledger.jsonl").read_text() == json.dumps(ROW.model_dump()) + "\n"


# --- the script a local job runs in GitHub mode ---------------------------------------------------------------


def test_a_script_replaced_by_a_link_after_the_checkout_is_never_what_the_local_backend_runs(tmp_path, monkeypatch):
    """An earlier job's code swaps train.py for a link to a file elsewhere: the next job runs the committed file.

    The local backend copies the campaign folder from git objects at the authorizing commit into a fresh
    folder (regular files only), so no link in the work tree is ever followed or run.
    """
    from mlr_action.shell import authority
    from mlr_action.proposers.search import SearchProposer
    from mlr_action.shell.step import Step
    from simulate import FakeClock

    isolate_git(monkeypatch, tmp_path)
    origin = make_origin(tmp_path, {"program.md": PROGRAM, "train.py": TRAIN})
    work = clone(origin, tmp_path / "work")
    snapshot = authority.read_authorized(work, branch="main")
    (tmp_path / "elsewhere.py").write_text("print('not approved')\n")
    (work / "train.py").unlink()
    (work / "train.py").symlink_to(tmp_path / "elsewhere.py")
    step = Step(root=work, backend=LocalBackend(work, uv=None), proposer=SearchProposer(), forge=FileForge(work),
                clock=FakeClock(), snapshot=snapshot)
    result = step.run()
    assert result.exit_code == 0 and result.submitted == 1, result.events
    [job] = result.submitted_ids
    copy = work / ".mlr" / "jobs" / job / "work" / "train.py"
    assert not copy.is_symlink() and copy.read_text() == TRAIN


@pytest.mark.parametrize("where", ["runs/../../outside/victim", "/etc/passwd-of-someone", "runs/.."])
def test_a_writer_refuses_a_path_that_is_not_plainly_below_the_checkout(tmp_path, where):
    root = tmp_path / "repo"
    root.mkdir()
    with pytest.raises(PermanentError, match="nothing was written there"):
        research.write_note(root, Path(where), "# note\n")
