"""Authority: program.md and the script as committed at the tip of the default branch, never the work tree.

The attackers: someone who re-runs an old workflow run, a checkout that moved
on (local commits, an edited program.md or script), a repo writer who commits
a script that is a symlink, a submodule, or lives under runs/ or .git/, and a
job's own code that rewrites the script in the work tree between two jobs.
Every tree is a real git repository with a bare origin; hostile trees are
planted with plumbing, as a push of them would.
"""

from __future__ import annotations

import time
import json
from pathlib import Path

import pytest

from gitrepos import clone, git, isolate_git, make_origin, mktree, plant, push_from
from mlr_action.shell import authority
from mlr_action.core.jobs import JobSpec, labels_for
from mlr_action.backends.local import LocalBackend
from mlr_action.backends.memory import InMemoryBackend
from mlr_action.forges.files import FileForge
from mlr_action.github.gitsync import GitError
from mlr_action.core.program import ProgramError, load_program
from mlr_action.core.program_paths import script_path
from mlr_action.proposers.search import SearchProposer
from mlr_action.shell.step import Step
from programs import CAMPAIGN, ENVELOPE, program_text, with_
from simulate import FakeClock

TRAIN = "print('eval_accuracy=0.5')\n"
PROGRAM = program_text(with_(ENVELOPE, allowed_flavors=["cpu-basic"], max_timeout="5m", max_walltime="1h"),
                       with_(CAMPAIGN, flavor="cpu-basic", timeout="1m", target=None, patience=None))
RAISED = PROGRAM.replace("max_jobs: 12", "max_jobs: 1000")


def program_with(script: str) -> str:
    return PROGRAM.replace("script: train.py", f"script: {script}")


@pytest.fixture
def origin(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    return make_origin(tmp_path, {"program.md": PROGRAM, "train.py": TRAIN})


def tip(origin, ref="main") -> str:
    return git(origin, "rev-parse", ref)


# --- where `script:` may point, from the text alone (both modes) ------------------------------------


@pytest.mark.parametrize("script, clean, fragment", [
    ("train.py", "train.py", None),
    ("src/train.py", "src/train.py", None),
    ("./src//train.py", "src/train.py", None),
    ("/bin/sh", "", "is outside the repository (an absolute path)"),
    ("../evil.py", "", "goes through `..`"),
    ("src/../train.py", "", "goes through `..`"),
    ("runs/train.py", "", "under runs/"),
    ("./runs/research/x.py", "", "under runs/"),
    (".git/hooks/post-checkout", "", "under .git/"),
    ("src/.GIT/x.py", "", "under .git/"),
    ("train\n.py", "", "control character"),
    ("./", "", "names no file"),
])
def test_script_path_rules(script, clean, fragment):
    path, problems = script_path(script)
    assert path == clean
    assert (problems == []) if fragment is None else (len(problems) == 1 and fragment in problems[0]), problems


# --- local mode: the work tree is the authority, and the script rules that need no git hold ----------------


def local_repo(tmp_path: Path, script: str) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "program.md").write_text(program_with(script))
    return root


def test_a_symlinked_script_inside_the_repo_is_refused_locally(tmp_path):
    root = local_repo(tmp_path, "link.py")
    (root / "train.py").write_text(TRAIN)
    (root / "link.py").symlink_to(root / "train.py")
    with pytest.raises(ProgramError, match="goes through the symlink link.py"):
        load_program(root / "program.md")


def test_a_script_in_a_symlinked_folder_is_refused_locally(tmp_path):
    root = local_repo(tmp_path, "src/train.py")
    (root / "real").mkdir()
    (root / "real/train.py").write_text(TRAIN)
    (root / "src").symlink_to(root / "real")
    with pytest.raises(ProgramError, match="goes through the symlink src"):
        load_program(root / "program.md")


def test_a_folder_is_not_a_script(tmp_path):
    root = local_repo(tmp_path, "src")
    (root / "src").mkdir()
    with pytest.raises(ProgramError, match="src is not a regular file"):
        load_program(root / "program.md")


def test_a_script_under_runs_is_refused_even_when_it_exists(tmp_path):
    root = local_repo(tmp_path, "runs/train.py")
    (root / "runs").mkdir()
    (root / "runs/train.py").write_text(TRAIN)
    with pytest.raises(ProgramError, match="under runs/"):
        load_program(root / "program.md")


# --- GitHub mode: read from git objects at the tip -------------------------------------------------------


def test_the_snapshot_is_the_tip_of_the_default_branch_never_the_work_tree(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    (work / "program.md").write_text(RAISED)
    (work / "train.py").write_text("import os; os.system('curl evil')\n")
    snapshot = authority.read_authorized(work, branch="main")
    assert snapshot.commit == tip(origin)
    assert snapshot.text == PROGRAM and snapshot.script == TRAIN.encode()
    assert snapshot.load().envelope.max_jobs == 12
    reasons = authority.stale_reasons(snapshot)
    assert len(reasons) == 2
    assert "program.md in the work tree differs from" in reasons[0] and "train.py in the work tree differs" in reasons[1]


def test_a_clean_checkout_of_the_tip_may_spend(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    snapshot = authority.read_authorized(work, branch="main")
    assert authority.stale_reasons(snapshot, sha=tip(origin)) == []


def test_a_checkout_behind_the_tip_reads_the_tip_and_says_it_is_stale(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    other = clone(origin, tmp_path / "other")
    (other / "program.md").write_text(RAISED.replace("max_jobs: 1000", "max_jobs: 3"))
    push_from(other, "lower the budget")
    snapshot = authority.read_authorized(work, branch="main")
    assert snapshot.commit == tip(origin) and snapshot.load().envelope.max_jobs == 3
    reasons = authority.stale_reasons(snapshot)
    assert f"is at {git(work, 'rev-parse', 'HEAD')[:12]}, not at {tip(origin)[:12]}, the tip of main" in reasons[0]
    assert reasons[1:] == [r for r in reasons if "program.md in the work tree differs" in r]


def test_local_commits_make_the_checkout_stale(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    (work / "program.md").write_text(RAISED)
    git(work, "commit", "-q", "-am", "raise it locally")
    snapshot = authority.read_authorized(work, branch="main")
    assert snapshot.load().envelope.max_jobs == 12
    assert any("not at" in r for r in authority.stale_reasons(snapshot))


def test_a_rerun_of_an_old_workflow_run_is_stale_even_on_a_fresh_checkout_of_the_tip(origin, tmp_path):
    old = tip(origin)
    other = clone(origin, tmp_path / "other")
    (other / "train.py").write_text("print('eval_accuracy=0.7')\n")
    push_from(other, "a better script")
    work = clone(origin, tmp_path / "work")  # a workflow that checks out `ref: main` gets the tip
    snapshot = authority.read_authorized(work, branch="main")
    [reason] = authority.stale_reasons(snapshot, sha=old)
    assert f"for commit {old[:12]}" in reason and "re-run" in reason


def planted(origin: Path, tmp_path: Path, entries: dict) -> Path:
    """A clone of ``origin`` whose main is ``entries`` (planted with plumbing)."""
    plant(origin, "main", entries, parent=tip(origin))
    return clone(origin, tmp_path / "work", "--no-checkout")


@pytest.mark.parametrize("entries, fragment", [
    ({"program.md": PROGRAM, "train.py": ("120000", "/etc/passwd")}, "script: train.py is a symlink"),
    ({"program.md": PROGRAM, "train.py": ("160000", "0123456789abcdef0123456789abcdef01234567")}, "is a submodule"),
    ({"program.md": PROGRAM, "train.py": {"x.py": TRAIN}}, "is a folder"),
    ({"program.md": PROGRAM}, "script: train.py is not a file committed at main"),
    ({"program.md": program_with("src/train.py"), "real": {"train.py": TRAIN}, "src": ("120000", "real")},
     "script: src/train.py is not a file committed at main"),
    ({"program.md": program_with("runs/train.py"), "runs": {"train.py": TRAIN}}, "under runs/"),
])
def test_a_script_that_is_not_a_committed_regular_file_is_refused(origin, tmp_path, entries, fragment):
    work = planted(origin, tmp_path, entries)
    (work / "train.py").write_text(TRAIN)  # what the work tree has is never what authorizes
    snapshot = authority.read_authorized(work, branch="main")
    assert snapshot.script is None
    with pytest.raises(ProgramError) as caught:
        snapshot.load()
    assert any(fragment in p for p in caught.value.problems), caught.value.problems


def test_an_executable_script_is_a_regular_file(origin, tmp_path):
    work = planted(origin, tmp_path, {"program.md": PROGRAM, "train.py": ("100755", TRAIN)})
    assert authority.read_authorized(work, branch="main").script == TRAIN.encode()


@pytest.mark.parametrize("entry, fragment", [
    (("120000", "other.md"), r"program.md at main \([0-9a-f]{12}\) is a symlink"),
    ({"x": "y"}, "is a folder"),
])
def test_a_program_md_that_is_not_a_regular_file_is_refused(origin, tmp_path, entry, fragment):
    work = planted(origin, tmp_path, {"program.md": entry, "other.md": RAISED, "train.py": TRAIN})
    with pytest.raises(GitError, match=fragment):
        authority.read_authorized(work, branch="main")


def test_no_program_md_at_the_tip_means_onboarding(origin, tmp_path):
    work = planted(origin, tmp_path, {"train.py": TRAIN})
    (work / "program.md").write_text(RAISED)  # an untracked one in the work tree authorizes nothing
    snapshot = authority.read_authorized(work, branch="main")
    assert snapshot.text is None and snapshot.commit == tip(origin)


def test_a_program_md_that_is_not_utf8_is_an_invalid_program(origin, tmp_path):
    work = planted(origin, tmp_path, {"program.md": b"\xff\xfe" + PROGRAM.encode("utf-16-le"), "train.py": TRAIN})
    with pytest.raises(ProgramError, match="not UTF-8"):
        authority.read_authorized(work, branch="main").load()


def test_a_campaign_in_a_subfolder_reads_its_own_files(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    origin = make_origin(tmp_path, {"camp/program.md": PROGRAM, "camp/train.py": TRAIN, "train.py": "other\n"})
    work = clone(origin, tmp_path / "work")
    snapshot = authority.read_authorized(work / "camp", branch="main")
    assert snapshot.script == TRAIN.encode() and authority.stale_reasons(snapshot) == []


def test_a_missing_default_branch_is_named(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    with pytest.raises(GitError, match="trunk does not exist on origin"):
        authority.read_authorized(work, branch="trunk")


# --- what a job runs is the authorized blob ------------------------------------------------------------


def test_the_step_submits_the_authorized_script_and_program_whatever_the_work_tree_holds(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    snapshot = authority.read_authorized(work, branch="main")
    (work / "program.md").write_text(RAISED)  # after the check: the step still uses the snapshot
    (work / "train.py").write_text("print('not approved')\n")
    backend = InMemoryBackend(clock=FakeClock().seconds)
    step = Step(root=work, backend=backend, proposer=SearchProposer(), forge=FileForge(work), clock=FakeClock(),
                snapshot=snapshot)
    result = step.run()
    assert result.exit_code == 0 and result.program.envelope.max_jobs == 12
    [job] = backend.jobs.values()
    assert job.spec.script_bytes == TRAIN.encode() and job.spec.commit == tip(origin)


def spec(script: Path, data: bytes | None) -> JobSpec:
    return JobSpec(campaign="c", iter=1, script=str(script), args=[], env={}, flavor="cpu-basic", timeout_s=60,
                   labels=labels_for("c", 1), script_bytes=data, commit="0" * 40 if data is not None else None)


def test_the_local_backend_runs_the_authorized_bytes_whatever_the_work_tree_holds(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("print('rewritten by the previous job')\n")
    backend = LocalBackend(tmp_path, uv=None)
    job_id = backend.submit(spec=spec(script, b"print('eval_accuracy=0.9')\n"))
    script.unlink()
    script.symlink_to(tmp_path / "elsewhere.py")  # a link in the work tree is never followed either
    (tmp_path / "elsewhere.py").write_text("print('eval_accuracy=0.1')\n")
    deadline = time.time() + 30
    while not backend.inspect(job_id=job_id).stage.terminal and time.time() < deadline:
        time.sleep(0.05)
    assert backend.logs(job_id=job_id) == "eval_accuracy=0.9\n"


def test_the_hf_backend_ships_the_authorized_bytes_not_the_work_tree_file(tmp_path):
    pytest.importorskip("huggingface_hub")
    from loopback.hf_server import FakeHubServer
    from mlr_action.backends import _hf_http
    from mlr_action.backends.hf import HfBackend

    token = "hf_" + "FakeLoopbackToken0123456789abcdef"
    script = tmp_path / "train.py"
    script.write_text("print('eval_accuracy=0.1')  # edited in the work tree\n")
    with FakeHubServer(token=token) as hub:
        policy = _hf_http.Policy(timeout_s=5.0, backoff_s=0.0, sleep=lambda s: None)
        backend = HfBackend(endpoint=hub.url, token=token, namespace=None, policy=policy)
        job_id = backend.submit(spec=spec(script, b"print('eval_accuracy=0.9')\n"))
        [job] = hub.jobs.values()
        assert not any("B64" in name for name in job.environment)
        hub.run(job_id, running_secs=1.0)
        assert "eval_accuracy=0.9" in backend.logs(job_id=job_id)


def test_a_campaign_in_a_subfolder_runs_the_script_next_to_its_program_md(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    origin = make_origin(tmp_path, {"camp/program.md": PROGRAM, "camp/train.py": TRAIN, "train.py": "other\n"})
    work = clone(origin, tmp_path / "work")
    snapshot = authority.read_authorized(work, branch="main", program="camp/program.md")
    assert snapshot.script == TRAIN.encode() and authority.stale_reasons(snapshot) == []
    step = Step(root=work, backend=LocalBackend(work), proposer=SearchProposer(), forge=FileForge(work),
                clock=FakeClock(), snapshot=snapshot)
    result = step.run()
    assert (result.exit_code, result.submitted) == (0, 1), result.events  # it runs camp/train.py, as validated
    [jobdir] = [p.parent for p in (work / ".mlr" / "jobs").glob("*/spec.json")]
    spec = json.loads((jobdir / "spec.json").read_text())
    assert spec["command"][-len(spec["args"]) - 1] == "train.py" and spec["cwd"] == str(jobdir / "work")
    assert (jobdir / "work" / "train.py").read_text() == TRAIN  # camp/ as committed: its train.py, not the top one
    assert sorted(p.name for p in (jobdir / "work").iterdir()) == ["program.md", "train.py"]


def test_mlr_step_with_the_github_forge_spends_nothing_on_a_stale_checkout(origin, tmp_path, capsys):
    from mlr_action.commands.cli import main

    work = clone(origin, tmp_path / "work")
    (work / "program.md").write_text(RAISED)
    assert main(["step", "--repo", str(work), "--forge", "github", "--backend", "local"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spends nothing: program.md in the work tree differs from the one committed at main")
    assert not (work / ".mlr" / "jobs").exists() and not (work / "runs").exists()
