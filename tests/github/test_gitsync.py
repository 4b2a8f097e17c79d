"""Commits and pushes of runs/ against a real bare repository as origin, with a concurrent writer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitrepos import append, clone, git, isolate_git, make_origin, plant, push_from, row, show
from mlr_action.github import gitrepo
from mlr_action.core.jobs import PermanentError, TransientError
from mlr_action.github.gitsync import GitError, PushRejected, merge_ledger, outside_runs, prepare_runs, publish_runs

PROGRAM = "# program.md\n\n## Budget envelope\n"
BASE_ROWS = [row(1), row(1, "completed", metric=0.5)]


@pytest.fixture
def origin(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    return make_origin(tmp_path, {
        "program.md": PROGRAM,
        "README.md": "readme\n",
        "runs/ledger.jsonl": "".join(r + "\n" for r in BASE_ROWS),
        "runs/summary.md": "summary 1\n",
    })


def ledger_lines(origin, ref="main"):
    return show(origin, ref, "runs/ledger.jsonl").splitlines()


def head(origin, ref="main", fmt="%H"):
    return git(origin, "log", "-1", f"--format={fmt}", ref)


# --- the merge, pure ----------------------------------------------------------


@pytest.mark.parametrize("remote, ours, expected", [
    ("a\nb\n", "a\nb\nc\n", "a\nb\nc\n"),             # only we appended
    ("a\nb\nx\n", "a\nb\nc\n", "a\nb\nx\nc\n"),        # both appended: theirs first, then ours
    ("a\nb\nc\n", "a\nb\nc\n", "a\nb\nc\n"),           # the same row on both sides is kept once
    ("a\nb\nx\n", "a\nb\nx\ny\n", "a\nb\nx\ny\n"),     # ours already had theirs
    ("", "a\n", "a\n"),                                  # a new ledger
    ("a\nb", "a\nb\nc", "a\nb\nc\n"),                    # missing final newlines are restored
    ("b\na\n", "a\nb\nc\n", "b\na\nc\n"),              # the remote's order is never changed
])
def test_merge_ledger(remote, ours, expected):
    assert merge_ledger(remote, ours) == expected


lines = st.lists(st.text(alphabet="abc{}:1", min_size=1, max_size=4), max_size=8)


@given(remote=lines, ours=lines)
def test_merge_keeps_the_remote_in_order_and_loses_none_of_ours(remote, ours):
    merged = merge_ledger("\n".join(remote), "\n".join(ours)).splitlines()
    assert merged[: len(remote)] == remote
    assert set(ours) <= set(merged)
    assert len(merged) == len(remote) + len(set(ours) - set(remote))


@pytest.mark.parametrize("paths, prefix, refused", [
    (["runs/ledger.jsonl", "runs/research/a.md"], "", []),
    (["runs/ledger.jsonl", "program.md"], "", ["program.md"]),
    (["camp/runs/summary.md", "camp/program.md", "runs/x"], "camp", ["camp/program.md", "runs/x"]),
    (["runs/../program.md"], "", ["runs/../program.md"]),
    (["runsx/ledger.jsonl"], "", ["runsx/ledger.jsonl"]),
])
def test_only_paths_under_runs_may_be_committed(paths, prefix, refused):
    assert outside_runs(paths, prefix) == refused


# --- publishing on the checked-out branch ------------------------------------------


def test_nothing_changed_means_no_commit_and_no_push(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    before = head(origin)
    assert publish_runs(work, message="mlr: nothing") is False
    assert head(origin) == before


def test_commits_runs_as_the_bot_with_the_callers_message(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    append(work / "runs/ledger.jsonl", row(2))
    (work / "runs/summary.md").write_text("summary 2\n")
    (work / "runs/research").mkdir()
    (work / "runs/research/notes.md").write_text("notes\n")
    assert publish_runs(work, message="mlr: iter 2 submitted job-2 (cpu-basic, 1m)") is True
    assert head(origin, fmt="%an <%ae>|%cn|%s") == (
        "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>|github-actions[bot]|"
        "mlr: iter 2 submitted job-2 (cpu-basic, 1m)")
    assert ledger_lines(origin) == [*BASE_ROWS, row(2)]
    assert show(origin, "main", "runs/research/notes.md") == "notes"
    changed = git(origin, "diff-tree", "--no-commit-id", "--name-only", "-r", "main").splitlines()
    assert sorted(changed) == ["runs/ledger.jsonl", "runs/research/notes.md", "runs/summary.md"]
    # The checkout is where the push left it: clean, and a second publish has nothing to do.
    assert git(work, "rev-parse", "HEAD") == head(origin)
    assert git(work, "status", "--porcelain") == ""
    assert publish_runs(work, message="mlr: again") is False


def test_a_rejected_push_rereads_the_remote_and_loses_or_duplicates_no_row(origin, tmp_path):
    bot = clone(origin, tmp_path / "bot")
    other = clone(origin, tmp_path / "other")
    # The other writer pushes first: a ledger row, a research note, and a change outside runs/.
    append(other / "runs/ledger.jsonl", row(2, hypothesis="theirs"))
    (other / "runs/summary.md").write_text("their summary\n")
    (other / "runs/research").mkdir()
    (other / "runs/research/paper.md").write_text("their note\n")
    (other / "README.md").write_text("readme, edited by a person\n")
    push_from(other, "their tick")
    theirs = head(origin)
    # The bot, which has not seen that, appends its own row and rewrites the summary.
    append(bot / "runs/ledger.jsonl", row(3, hypothesis="ours"))
    (bot / "runs/summary.md").write_text("our summary\n")
    assert publish_runs(bot, message="mlr: iter 3", backoff=0) is True

    assert git(origin, "rev-parse", "main~1") == theirs  # a fast-forward on top of theirs
    assert ledger_lines(origin) == [*BASE_ROWS, row(2, hypothesis="theirs"), row(3, hypothesis="ours")]
    assert show(origin, "main", "runs/summary.md") == "our summary"
    assert show(origin, "main", "runs/research/paper.md") == "their note"
    assert show(origin, "main", "README.md") == "readme, edited by a person"
    # The bot's checkout now holds the merged ledger, their note and their README, and is clean.
    assert (bot / "runs/ledger.jsonl").read_text().splitlines() == ledger_lines(origin)
    assert (bot / "runs/research/paper.md").read_text() == "their note\n"
    assert (bot / "README.md").read_text() == "readme, edited by a person\n"
    assert git(bot, "status", "--porcelain") == ""


def test_the_same_row_written_on_both_sides_is_kept_once(origin, tmp_path):
    bot = clone(origin, tmp_path / "bot")
    other = clone(origin, tmp_path / "other")
    append(other / "runs/ledger.jsonl", row(2))
    push_from(other, "their tick")
    append(bot / "runs/ledger.jsonl", row(2), row(2, "running"))
    assert publish_runs(bot, message="mlr: iter 2 running", backoff=0) is True
    assert ledger_lines(origin) == [*BASE_ROWS, row(2), row(2, "running")]


def test_a_remote_that_already_holds_our_rows_needs_no_commit(origin, tmp_path):
    bot = clone(origin, tmp_path / "bot")
    other = clone(origin, tmp_path / "other")
    append(other / "runs/ledger.jsonl", row(2))
    push_from(other, "their tick")
    append(bot / "runs/ledger.jsonl", row(2))
    before = head(origin)
    assert publish_runs(bot, message="mlr: iter 2", backoff=0) is False
    assert head(origin) == before


def test_gives_up_after_the_last_attempt_with_a_transient_error(origin, tmp_path):
    bot = clone(origin, tmp_path / "bot")
    other = clone(origin, tmp_path / "other")
    append(other / "runs/ledger.jsonl", row(2))
    push_from(other, "their tick")
    before = head(origin)
    append(bot / "runs/ledger.jsonl", row(3))
    with pytest.raises(PushRejected) as caught:
        publish_runs(bot, message="mlr: iter 3", attempts=1)
    assert isinstance(caught.value, TransientError)  # the step exits 1 and the next tick retries
    assert head(origin) == before
    assert git(bot, "rev-parse", "HEAD") == git(other, "rev-parse", "HEAD~1")  # no local commit was left behind


def test_never_commits_program_md_even_when_it_is_staged(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    (work / "program.md").write_text(PROGRAM + "max_jobs: 1000\n")
    git(work, "add", "program.md")
    (work / "README.md").write_text("local edit\n")
    append(work / "runs/ledger.jsonl", row(2))
    assert publish_runs(work, message="mlr: iter 2") is True
    assert show(origin, "main", "program.md") == PROGRAM.strip()
    assert git(origin, "diff-tree", "--no-commit-id", "--name-only", "-r", "main") == "runs/ledger.jsonl"
    # The person's own work is left as it was: program.md still staged, README still edited.
    assert git(work, "diff", "--cached", "--name-only") == "program.md"
    assert (work / "README.md").read_text() == "local edit\n"


def test_the_ledger_is_never_deleted_but_other_reports_may_be(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    (work / "runs/ledger.jsonl").unlink()
    (work / "runs/summary.md").unlink()  # e.g. an escalation report removed once resolved
    assert publish_runs(work, message="mlr: resolved") is True
    assert git(origin, "ls-tree", "-r", "--name-only", "main", "runs").splitlines() == ["runs/ledger.jsonl"]
    assert ledger_lines(origin) == BASE_ROWS


def test_a_campaign_in_a_subfolder_commits_only_its_own_runs(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    origin = make_origin(tmp_path, {"camp/program.md": PROGRAM, "runs/ledger.jsonl": row(9) + "\n"})
    work = clone(origin, tmp_path / "work")
    append(work / "camp/runs/ledger.jsonl", row(1))
    append(work / "runs/ledger.jsonl", row(10))  # another campaign's runs/: not this one's to commit
    assert publish_runs(work / "camp", message="mlr: iter 1") is True
    assert git(origin, "diff-tree", "--no-commit-id", "--name-only", "-r", "main") == "camp/runs/ledger.jsonl"


def test_a_protected_branch_asks_for_a_ledger_branch(origin, tmp_path):
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'error: GH006: Protected branch update failed for refs/heads/main.' >&2\nexit 1\n")
    hook.chmod(0o755)
    work = clone(origin, tmp_path / "work")
    append(work / "runs/ledger.jsonl", row(2))
    with pytest.raises(GitError, match="ledger-branch") as caught:
        publish_runs(work, message="mlr: iter 2")
    assert isinstance(caught.value, PermanentError)


def test_a_detached_head_without_a_ledger_branch_is_refused(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    git(work, "checkout", "-q", "--detach")
    append(work / "runs/ledger.jsonl", row(2))
    with pytest.raises(GitError, match="detached HEAD"):
        publish_runs(work, message="mlr: iter 2")


def test_outside_a_git_checkout_says_what_to_do(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    (tmp_path / "plain" / "runs").mkdir(parents=True)
    with pytest.raises(GitError, match="not in a git checkout"):
        publish_runs(tmp_path / "plain", message="mlr: x")


# --- the ledger branch --------------------------------------------------------------


def test_ledger_branch_is_created_as_an_orphan_holding_only_runs(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    main_before = head(origin)
    assert prepare_runs(work, branch="mlr-ledger") is False  # not there yet: the work tree is left alone
    assert (work / "runs/ledger.jsonl").read_text().splitlines() == BASE_ROWS
    append(work / "runs/ledger.jsonl", row(2))
    assert publish_runs(work, message="mlr: iter 2", branch="mlr-ledger") is True
    assert head(origin) == main_before  # the default branch is never written
    assert git(origin, "ls-tree", "-r", "--name-only", "mlr-ledger").splitlines() == ["runs/ledger.jsonl", "runs/summary.md"]
    assert git(origin, "rev-list", "--count", "mlr-ledger") == "1"
    assert ledger_lines(origin, "mlr-ledger") == [*BASE_ROWS, row(2)]
    assert git(work, "rev-parse", "HEAD") == main_before  # the checkout stays on main


def test_ledger_branch_round_trip_with_a_concurrent_writer(origin, tmp_path):
    first = clone(origin, tmp_path / "first")
    append(first / "runs/ledger.jsonl", row(2))
    assert publish_runs(first, message="mlr: iter 2", branch="mlr-ledger") is True

    # A later tick on a fresh checkout of main: the ledger comes from the ledger branch.
    bot = clone(origin, tmp_path / "bot")
    assert prepare_runs(bot, branch="mlr-ledger") is True
    assert (bot / "runs/ledger.jsonl").read_text().splitlines() == [*BASE_ROWS, row(2)]
    # Meanwhile another writer pushes to the ledger branch.
    other = clone(origin, tmp_path / "other", "--branch", "mlr-ledger")
    append(other / "runs/ledger.jsonl", row(3, hypothesis="theirs"))
    push_from(other, "their tick", branch="mlr-ledger")
    append(bot / "runs/ledger.jsonl", row(4, hypothesis="ours"))
    (bot / "runs/summary.md").write_text("our summary\n")
    assert publish_runs(bot, message="mlr: iter 4", branch="mlr-ledger", backoff=0) is True
    assert ledger_lines(origin, "mlr-ledger") == [*BASE_ROWS, row(2), row(3, hypothesis="theirs"), row(4, hypothesis="ours")]
    assert show(origin, "mlr-ledger", "runs/summary.md") == "our summary"
    assert git(origin, "ls-tree", "-r", "--name-only", "main").splitlines() == [
        "README.md", "program.md", "runs/ledger.jsonl", "runs/summary.md"]
    assert ledger_lines(origin, "main") == BASE_ROWS
    # Nothing new: no commit.
    assert publish_runs(bot, message="mlr: nothing", branch="mlr-ledger") is False


def test_prepare_runs_mirrors_the_ledger_branch(origin, tmp_path):
    first = clone(origin, tmp_path / "first")
    (first / "runs/summary.md").unlink()
    append(first / "runs/ledger.jsonl", row(2))
    assert publish_runs(first, message="mlr: iter 2", branch="mlr-ledger") is True
    bot = clone(origin, tmp_path / "bot")  # main still has runs/summary.md
    assert prepare_runs(bot, branch="mlr-ledger") is True
    assert not (bot / "runs/summary.md").exists()
    assert (bot / "runs/ledger.jsonl").read_text().splitlines() == [*BASE_ROWS, row(2)]


def test_ledger_branch_from_the_environment(origin, tmp_path, monkeypatch):
    work = clone(origin, tmp_path / "work")
    append(work / "runs/ledger.jsonl", row(2))
    monkeypatch.setenv("MLR_LEDGER_BRANCH", "mlr-ledger")
    assert publish_runs(work, message="mlr: iter 2") is True
    assert ledger_lines(origin, "mlr-ledger") == [*BASE_ROWS, row(2)]
    assert ledger_lines(origin, "main") == BASE_ROWS


def test_a_bad_ledger_branch_name_is_refused(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    append(work / "runs/ledger.jsonl", row(2))
    with pytest.raises(GitError, match="not a valid branch name"):
        publish_runs(work, message="mlr: x", branch="no..dots")


# --- credentials ----------------------------------------------------------------------


def test_a_token_is_handed_to_git_through_the_environment_only(origin, tmp_path, monkeypatch):
    work = clone(origin, tmp_path / "work")
    git(work, "remote", "set-url", "origin", "https://github.com/me/repo.git")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_secret_token_value")
    repo = gitrepo.GitRepo.open(work, "origin")
    assert repo.env["GIT_CONFIG_KEY_0"] == "http.https://github.com/.extraheader"
    assert repo.env["GIT_CONFIG_VALUE_0"].startswith("AUTHORIZATION: basic ")
    assert "ghs_secret_token_value" not in (work / ".git/config").read_text()
    assert repo.scrub("fatal: ghs_secret_token_value and " + repo.secrets[-1]) == "fatal: *** and ***"
    # actions/checkout already persisted credentials: nothing is added (two headers would be refused).
    git(work, "config", "http.https://github.com/.extraheader", "AUTHORIZATION: basic cGVyc2lzdGVk")
    assert "GIT_CONFIG_COUNT" not in gitrepo.GitRepo.open(work, "origin").auth_env()


def test_local_commits_of_a_person_are_never_pushed_by_the_bot(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    (work / "notes.txt").write_text("mine\n")
    git(work, "add", "notes.txt")
    git(work, "commit", "-q", "-m", "a local commit, not for pushing yet")
    mine = git(work, "rev-parse", "HEAD")
    append(work / "runs/ledger.jsonl", row(2))
    assert publish_runs(work, message="mlr: iter 2") is True
    assert git(origin, "ls-tree", "--name-only", "main").splitlines() == ["README.md", "program.md", "runs"]
    assert ledger_lines(origin) == [*BASE_ROWS, row(2)]
    assert git(work, "rev-parse", "HEAD") == mine  # the person's branch is theirs to pull


# --- a ledger-branch writer: the branch's tree is data, never a path ----------------------------------
# Porcelain refuses these trees, so they are planted with plumbing (mktree, commit-tree, update-ref) on the
# bare origin, as anyone who can push to the ledger branch could.

RAISED = PROGRAM + "max_jobs: 1000\n"
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
LEDGER = "".join(r + "\n" for r in BASE_ROWS)

HOSTILE_TREES = {
    "a .. folder": ({"runs": {"ledger.jsonl": LEDGER, "..": {"program.md": RAISED}}}, "runs/../program.md"),
    "a .. file": ({"runs": {"ledger.jsonl": LEDGER, "..": "x"}}, "runs/.."),
    "a . entry": ({"runs": {"ledger.jsonl": LEDGER, ".": "x"}}, "runs/."),
    "a symlink": ({"runs": {"ledger.jsonl": LEDGER, "summary.md": ("120000", "../program.md")}}, "symlink"),
    "a symlinked folder": ({"runs": {"ledger.jsonl": LEDGER, "research": ("120000", "../..")}}, "symlink"),
    "a submodule": ({"runs": {"ledger.jsonl": LEDGER, "sub": ("160000", FAKE_COMMIT)}}, "submodule"),
    "runs is a symlink": ({"runs": ("120000", "..")}, "runs is a symlink"),
    "runs is a file": ({"runs": "x"}, "runs is a file"),
    "a .git folder": ({"runs": {"ledger.jsonl": LEDGER, ".git": {"config": "[core]\n"}}}, "runs/.git/config"),
    "an empty name": ({"runs": {"ledger.jsonl": LEDGER, "": "x"}}, "mlr-ledger"),
}


def files_outside_runs(top) -> dict[str, bytes]:
    """Every file of the clone's folder and its parent outside runs/ and .git/, with its bytes."""
    out = {}
    for path in sorted(top.parent.rglob("*")):
        rel = path.relative_to(top.parent).as_posix()
        if path.is_file() and not path.is_symlink() and "/.git/" not in f"/{rel}/" and not rel.startswith("origin.git"):
            if not rel.startswith(f"{top.name}/runs/"):
                out[rel] = path.read_bytes()
    return out


@pytest.mark.parametrize("case", HOSTILE_TREES, ids=list(HOSTILE_TREES))
def test_a_hostile_ledger_branch_is_refused_and_nothing_is_written_outside_runs(origin, tmp_path, case):
    entries, named = HOSTILE_TREES[case]
    plant(origin, "mlr-ledger", entries)
    work = clone(origin, tmp_path / "work")
    before, runs_before = files_outside_runs(work), (work / "runs/ledger.jsonl").read_bytes()
    with pytest.raises(GitError) as caught:
        prepare_runs(work, branch="mlr-ledger")
    message = str(caught.value)
    assert named in message and "mlr-ledger" in message and "restore" in message, message
    assert files_outside_runs(work) == before
    assert (work / "runs/ledger.jsonl").read_bytes() == runs_before  # refused before anything was written
    assert not any(p.is_symlink() for p in (work / "runs").rglob("*"))


def test_publishing_onto_a_ledger_branch_made_hostile_meanwhile_is_refused(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    append(work / "runs/ledger.jsonl", row(2))
    assert publish_runs(work, message="mlr: iter 2", branch="mlr-ledger") is True
    base = head(origin, "mlr-ledger")
    # Between this tick's prepare and publish, a writer pushes a tree with a `..` entry on top of the bot's.
    plant(origin, "mlr-ledger", {"runs": {"ledger.jsonl": LEDGER, "..": {"program.md": RAISED}}}, parent=base)
    before = files_outside_runs(work)
    append(work / "runs/ledger.jsonl", row(3))
    with pytest.raises(GitError, match=r"runs/\.\./program\.md"):
        publish_runs(work, message="mlr: iter 3", branch="mlr-ledger", backoff=0)
    assert files_outside_runs(work) == before


def test_a_runs_folder_that_is_a_symlink_in_the_work_tree_is_refused(origin, tmp_path):
    first = clone(origin, tmp_path / "first")
    append(first / "runs/ledger.jsonl", row(2))
    assert publish_runs(first, message="mlr: iter 2", branch="mlr-ledger") is True
    work = clone(origin, tmp_path / "work")
    outside = tmp_path / "outside"
    outside.mkdir()
    git(work, "rm", "-q", "-r", "runs")
    (work / "runs").symlink_to(outside)
    with pytest.raises(GitError, match="runs is a symlink"):
        prepare_runs(work, branch="mlr-ledger")
    assert list(outside.iterdir()) == []
    append(outside / "ledger.jsonl", row(9))
    with pytest.raises(GitError, match="runs is a symlink"):
        publish_runs(work, message="mlr: iter 9", branch="mlr-ledger")
    assert ledger_lines(origin, "mlr-ledger") == [*BASE_ROWS, row(2)]


def test_a_symlink_under_runs_in_the_work_tree_is_never_written_through(origin, tmp_path):
    first = clone(origin, tmp_path / "first")
    (first / "runs/summary.md").write_text("from the ledger branch\n")
    assert publish_runs(first, message="mlr: summary", branch="mlr-ledger") is True
    work = clone(origin, tmp_path / "work")
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    (work / "runs/summary.md").unlink()
    (work / "runs/summary.md").symlink_to(victim)  # e.g. left behind by a local job's code
    with pytest.raises(GitError, match="symlink"):
        prepare_runs(work, branch="mlr-ledger")
    assert victim.read_text() == "mine\n"
