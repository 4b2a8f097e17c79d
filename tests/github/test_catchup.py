"""A run behind the tip only by commits to runs/ is at the tip; anything else keeps issue 10's promise (attacks).

Each case runs the action (tests/github/test_action.py's Runner) on the checkout a queued or re-run workflow run has:
its commit, ``GITHUB_SHA`` that commit, while the default branch moved on by the commits the case makes.
"""

from __future__ import annotations

import pytest

from gitrepos import append, clone, git, make_origin, plant, show
from mlr_action.shell import authority
from mlr_action.github import catchup
from test_action import LOCAL, PROGRAM, TRAIN, jobs_started, origin, runner  # noqa: F401 (fixtures)


def bot_commit(work, text="a row"):
    """What the bot pushes: runs/ only."""
    append(work / "runs" / "summary.md", text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "mlr: update runs/")


def change(work, path, text):
    (work / path).parent.mkdir(parents=True, exist_ok=True)
    (work / path).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", f"change {path}")


def jobs(work) -> list[str]:
    return [name for name in jobs_started(work) if name.startswith("local-")]


RAISED = PROGRAM.replace("max_jobs: 12", "max_jobs: 1000")


def _runs_only(w):
    bot_commit(w, "one")
    bot_commit(w, "two")


def _program_and_runs_in_one_commit(w):
    append(w / "runs" / "summary.md", "looks like the bot")
    (w / "program.md").write_text(RAISED)
    git(w, "commit", "-q", "-am", "mlr: update runs/")


def _changed_and_changed_back(w):
    change(w, "program.md", RAISED)
    change(w, "program.md", PROGRAM)


def _merge_of_runs_only(w):
    base = git(w, "rev-parse", "HEAD")
    git(w, "checkout", "-q", "-b", "side")
    change(w, "runs/side.md", "side")
    git(w, "checkout", "-q", "main")
    bot_commit(w, "main")
    git(w, "merge", "-q", "--no-edit", "side")
    assert git(w, "rev-list", "--count", f"{base}..HEAD") == "3"


CASES = {
    "only runs/ (the bot's pushes)": (_runs_only, None),
    "a different program.md": (lambda w: change(w, "program.md", RAISED), "changes program.md"),
    "a different script": (lambda w: change(w, "train.py", "import os; print(os.environ)\n"), "changes train.py"),
    "a module next to it": (lambda w: change(w, "lib/helpers.py", "X = 1\n"), "changes lib/helpers.py"),
    "a different workflow file": (lambda w: change(w, ".github/workflows/mlr.yml", "on: push\n"),
                                  "changes .github/workflows/mlr.yml"),
    "a different action": (lambda w: change(w, ".github/actions/mlr/action.yml", "name: x\n"),
                           "changes .github/actions/mlr/action.yml"),
    "program.md in a commit that also touches runs/": (_program_and_runs_in_one_commit, "changes program.md"),
    "program.md changed and changed back": (_changed_and_changed_back, "changes program.md"),
    "a merge, even of runs/ alone": (_merge_of_runs_only, "is a merge"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_queued_or_rerun_run_spends_only_when_the_tip_differs_from_its_commit_in_runs_alone(runner, origin, tmp_path,
                                                                                          case):
    make, reason = CASES[case]
    old = git(origin, "rev-parse", "main")
    work = clone(origin, tmp_path / "work")  # the run's checkout, at its commit
    writer = clone(origin, tmp_path / "writer")
    make(writer)
    git(writer, "push", "-q", "origin", "HEAD:main")
    tip = git(origin, "rev-parse", "main")
    assert runner.run(work, sha=old, **LOCAL) == 0, runner.out
    if reason is None:
        assert runner.outputs["dry-run"] == "false" and len(jobs(work)) == 1
        assert git(origin, "rev-parse", "main~2") == tip  # its intent and its job id, on top of the tip
        assert (work / "runs" / "summary.md").read_text() == show(origin, "main", "runs/summary.md") + "\n"
    else:
        assert runner.outputs["dry-run"] == "true" and jobs_started(work) == []
        assert "re-run of an old workflow run" in runner.out
        assert git(origin, "rev-parse", "main") == tip
        snapshot = authority.read_authorized(work, branch="main")
        reasons = catchup.runs_only_between(catchup.GitRepo.open(work, "origin"), old, tip, branch="main")
        assert any(reason in r for r in reasons), reasons
        assert snapshot.commit == tip


def test_a_rewritten_history_or_a_run_too_far_behind_stays_stale(runner, origin, tmp_path, monkeypatch):
    old = git(origin, "rev-parse", "main")
    work = clone(origin, tmp_path / "work")
    plant(origin, "main", {"program.md": PROGRAM, "train.py": TRAIN, "runs": {"summary.md": "x"}})  # no parent
    assert runner.run(work, sha=old, **LOCAL) == 0
    assert runner.outputs["dry-run"] == "true" and jobs_started(work) == []
    repo = catchup.GitRepo.open(work, "origin")
    assert catchup.runs_only_between(repo, old, git(origin, "rev-parse", "main"), branch="main") == [
        f"{old[:12]} is not in the history of main ({git(origin, 'rev-parse', 'main')[:12]})"]
    writer = clone(origin, tmp_path / "writer")
    base = git(writer, "rev-parse", "HEAD")
    for n in range(4):
        bot_commit(writer, str(n))
    monkeypatch.setattr(catchup, "MAX_COMMITS", 3)
    assert catchup.runs_only_between(catchup.GitRepo.open(writer, "origin"), base, git(writer, "rev-parse", "HEAD"),
                                     branch="main") == [f"main is more than 3 commits ahead of {base[:12]}"]


def test_another_campaigns_runs_folder_is_not_this_campaigns(runner, tmp_path):
    origin = make_origin(tmp_path, {"exp/program.md": PROGRAM, "exp/train.py": TRAIN, "runs/summary.md": "top\n"})
    old = git(origin, "rev-parse", "main")
    work = clone(origin, tmp_path / "work")
    writer = clone(origin, tmp_path / "writer")
    bot_commit(writer)  # runs/ at the top: not the runs/ of the campaign in exp/
    git(writer, "push", "-q", "origin", "HEAD:main")
    assert runner.run(work, sha=old, working_directory="exp", **LOCAL) == 0, runner.out
    assert runner.outputs["dry-run"] == "true" and jobs_started(work / "exp") == []
    writer_exp = writer / "exp"
    append(writer_exp / "runs" / "summary.md", "the campaign's own")
    git(writer, "add", "-A")
    git(writer, "commit", "-q", "-m", "mlr: update exp/runs/")
    git(writer, "push", "-q", "origin", "HEAD:main")
    fresh = clone(origin, tmp_path / "fresh")
    git(fresh, "reset", "-q", "--hard", "HEAD~1")  # at the commit before the campaign's own runs/ commit
    assert runner.run(fresh, sha=git(fresh, "rev-parse", "HEAD"), working_directory="exp", **LOCAL) == 0, runner.out
    assert runner.outputs["dry-run"] == "false" and len(jobs(fresh / "exp")) == 1


def test_a_symlink_pushed_into_runs_is_refused_before_anything_is_written(runner, origin, tmp_path):
    old = git(origin, "rev-parse", "main")
    work = clone(origin, tmp_path / "work")
    plant(origin, "main", {"program.md": PROGRAM, "train.py": TRAIN, "runs": {"evil": ("120000", "../program.md")}},
          parent=old)
    assert runner.run(work, sha=old, **LOCAL) == 2
    assert "runs/evil is a symlink" in runner.out and "Traceback" not in runner.out
    assert (work / "program.md").read_text() == PROGRAM and jobs_started(work) == []
    assert not (work / "runs" / "evil").is_symlink()


def test_a_shallow_checkout_is_deepened_to_see_the_commits_between(runner, origin, tmp_path):
    old = git(origin, "rev-parse", "main")
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", "--depth=1", f"file://{origin}", str(work))  # actions/checkout's default depth
    writer = clone(origin, tmp_path / "writer")
    bot_commit(writer)
    bot_commit(writer, "again")
    git(writer, "push", "-q", "origin", "HEAD:main")
    assert runner.run(work, sha=old, **LOCAL) == 0, runner.out
    assert runner.outputs["dry-run"] == "false" and len(jobs(work)) == 1
