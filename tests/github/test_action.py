"""The action's entry point, run as the runner runs it: GITHUB_* variables, an event file, a real git origin."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopback.comment_server import CommentServer
from gitrepos import clone, git, isolate_git, make_origin, plant, show
from mlr_action.github import action
from mlr_action.github.inputs import read_inputs, valid_branch_name
from mlr_action.github.ghenv import RunContext, command, spend_blockers
from mlr_action.github.pr_comment import MARKER
from programs import CAMPAIGN, ENVELOPE, program_text, with_

TRAIN = "print('eval_accuracy=0.5')\n"
PROGRAM = program_text(with_(ENVELOPE, allowed_flavors=["cpu-basic"], max_timeout="5m", max_walltime="1h"),
                       with_(CAMPAIGN, flavor="cpu-basic", timeout="1m", target=0.99, patience=5))


# --- pure parts ---------------------------------------------------------------------------


def test_defaults_are_valid():
    inputs, problems = read_inputs({})
    assert problems == []
    assert (inputs.command, inputs.backend, inputs.proposer, inputs.forge, inputs.dry_run) == ("step", "hf", "auto", "github", False)


@pytest.mark.parametrize("name, value, fragment", [
    ("backend", "nowhere", "not one of hf, local"),
    ("proposer", "gpt", "not one of auto, search, claude"),
    ("forge", "gitlab", "not one of github, none"),
    ("command", "run", "not one of step, validate"),
    ("dry-run", "maybe", "not a boolean"),
    ("ledger-branch", "no..dots", "not a valid branch name"),
    ("program", "../program.md", "not a path inside the repository"),
    ("working-directory", "/etc", "not a path inside the repository"),
    ("model", "claude; rm -rf /", "not a model name"),
])
def test_each_bad_input_is_named_with_its_fix(name, value, fragment):
    _, problems = read_inputs({action.env_name(name): value})
    assert len(problems) == 1 and fragment in problems[0].what and problems[0].fix


def test_every_bad_input_is_reported_at_once():
    _, problems = read_inputs({"INPUT_BACKEND": "x", "INPUT_FORGE": "y", "INPUT_DRY_RUN": "yes please"})
    assert len(problems) == 3


@pytest.mark.parametrize("name, ok", [
    ("mlr-ledger", True), ("runs/ledger", True), ("a..b", False), ("-x", False), ("x.lock", False),
    ("has space", False), ("x/", False), (".hidden", False), ("a/.b", False), ("x@{1}", False), ("@", False),
    ("tilde~1", False), ("", False),
])
def test_branch_names_follow_git(name, ok):
    assert valid_branch_name(name) is ok


def ctx(event_name="push", ref="refs/heads/main", **event):
    event.setdefault("repository", {"full_name": "me/repo", "default_branch": "main", "fork": False})
    return RunContext(event_name=event_name, event=event, ref=ref, repository="me/repo")


@pytest.mark.parametrize("run, checkout, fragment", [
    (ctx(), "main", None),
    (ctx("schedule", event={}), "main", None),
    (ctx("workflow_dispatch"), "main", None),
    (ctx("pull_request", "refs/pull/1/merge"), None, "pull request never spends"),
    (ctx("pull_request_target"), "main", "pull request never spends"),
    (ctx("push", repository={"full_name": "you/repo", "default_branch": "main", "fork": True}), "main", "fork you/repo"),
    (ctx("workflow_run", workflow_run={"event": "pull_request", "head_repository": {"full_name": "evil/repo"}}),
     "main", "workflow run of a pull request"),
    (ctx("push", "refs/heads/feature"), "feature", "not on the default branch main"),
    (ctx("workflow_dispatch"), "feature", "the checkout is on feature"),
    (ctx("workflow_dispatch"), None, "detached HEAD"),
])
def test_spend_blockers(run, checkout, fragment):
    if run.event_name == "schedule":
        run = RunContext(event_name="schedule", event={}, ref="refs/heads/main")
    reasons = spend_blockers(run, default_branch=run.default_branch, checkout_branch=checkout)
    assert (reasons == []) if fragment is None else any(fragment in r for r in reasons), reasons


def test_a_fork_pull_request_is_named():
    run = ctx("pull_request", "refs/pull/1/merge", pull_request={
        "number": 1, "head": {"repo": {"full_name": "evil/repo", "fork": True}}, "base": {"repo": {"full_name": "me/repo"}}})
    assert any("fork evil/repo" in r for r in spend_blockers(run, default_branch="main", checkout_branch=None))


def test_workflow_commands_cannot_be_smuggled_in_a_message():
    assert command("error", "bad\n::add-mask::x 100%", title="a: b, c") == "::error title=a%3A b%2C c::bad%0A::add-mask::x 100%25"


# --- the whole thing, against a real origin -------------------------------------------------


class Runner:
    """Runs ``action.main`` the way action.yml does, and reads back what the runner would show."""

    def __init__(self, tmp_path: Path, monkeypatch, capsys):
        self.tmp, self.mp, self.capsys = tmp_path, monkeypatch, capsys
        self.outputs_file, self.summary_file = tmp_path / "github_output", tmp_path / "step_summary"

    def run(self, work: Path, *, event_name="workflow_dispatch", ref="refs/heads/main", event=None, argv=(), sha=None,
            **inputs) -> int:
        event = {"repository": {"full_name": "me/repo", "default_branch": "main", "fork": False}} if event is None else event
        event_path = self.tmp / "event.json"
        event_path.write_text(json.dumps(event))
        for path in (self.outputs_file, self.summary_file):
            path.write_text("")
        # A fresh workflow run is for the commit its checkout holds; a re-run of an old one passes `sha`.
        head = git(work, "rev-parse", "HEAD", check=False) if (work / ".git").exists() else ""
        env = {"GITHUB_EVENT_NAME": event_name, "GITHUB_EVENT_PATH": str(event_path), "GITHUB_REF": ref,
               "GITHUB_WORKSPACE": str(work), "GITHUB_REPOSITORY": "me/repo", "GITHUB_SHA": sha or head or "0123456789abcdef",
               "GITHUB_OUTPUT": str(self.outputs_file), "GITHUB_STEP_SUMMARY": str(self.summary_file)}
        for name, value in env.items():
            self.mp.setenv(name, value)
        for name in action.DEFAULTS:
            self.mp.delenv(action.env_name(name), raising=False)
        for name, value in inputs.items():
            self.mp.setenv(action.env_name(name.replace("_", "-")), value)
        code = action.main(list(argv))
        self.out = self.capsys.readouterr().out
        return code

    @property
    def outputs(self) -> dict[str, str]:
        text = self.outputs_file.read_text()
        return {m.group(1): m.group(3) for m in re.finditer(r"^([\w-]+)<<(\S+)\n(.*?)\n\2$", text, re.S | re.M)}

    @property
    def summary(self) -> str:
        return self.summary_file.read_text()


@pytest.fixture
def runner(tmp_path, monkeypatch, capsys):
    isolate_git(monkeypatch, tmp_path)
    for name in ("GITHUB_TOKEN", "MLR_LEDGER_BRANCH", "HF_TOKEN", "ANTHROPIC_API_KEY", "GITHUB_API_URL"):
        monkeypatch.setenv(name, "")  # recorded, so what the action sets is undone after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: no test reaches the real Hub
    return Runner(tmp_path, monkeypatch, capsys)


@pytest.fixture
def origin(tmp_path):
    return make_origin(tmp_path, {"program.md": PROGRAM, "train.py": TRAIN})


LOCAL = dict(backend="local", proposer="search", forge="none", linger="0")  # one step per run (tests/shell/test_tick.py lingers)


def test_bad_inputs_fail_first_with_every_fix_in_the_log_and_the_summary(runner, tmp_path):
    code = runner.run(tmp_path, argv=["--check-inputs"], backend="nowhere", dry_run="maybe", ledger_branch="a..b")
    assert code == 2
    errors = [line for line in runner.out.splitlines() if line.startswith("::error")]
    assert len(errors) == 3 and all("Fix: " in e for e in errors)
    assert "nothing was spent" in runner.summary and runner.summary.count("Fix: ") == 3
    assert runner.outputs["state"] == ""


def test_tokens_are_masked_before_anything_is_printed(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    runner.run(tmp_path, argv=["--check-inputs"], github_token="ghs_secret_value", backend="nowhere")
    lines = runner.out.splitlines()
    assert lines[:2] == ["::add-mask::ghs_secret_value", "::add-mask::hf_secret_value"]


def test_not_a_checkout_says_to_add_actions_checkout(runner, tmp_path):
    (tmp_path / "plain").mkdir()
    assert runner.run(tmp_path / "plain", dry_run="true", **LOCAL) == 2
    assert "actions/checkout" in runner.out


def test_dry_run_on_the_default_branch_says_what_it_would_submit_and_writes_nothing(runner, origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    before = git(origin, "rev-parse", "main")
    assert runner.run(work, dry_run="true", **LOCAL) == 0
    assert "would submit iter 1:" in runner.out and "::stop-commands::" in runner.out
    assert runner.outputs == {"state": "running", "iter": "", "best-metric": "", "jobs-used": "0", "dry-run": "true", "valid": ""}
    assert "Dry run:" in runner.summary and "the dry-run input is true" in runner.summary
    assert "| jobs | 0 | 12 |" in runner.summary
    assert git(origin, "rev-parse", "main") == before
    assert git(work, "status", "--porcelain", "--ignored") == ""


def test_a_pull_request_never_spends_and_reads_program_md_from_the_default_branch(runner, origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    git(work, "checkout", "-q", "-b", "feature")
    (work / "program.md").write_text(PROGRAM.replace("max_jobs: 12", "max_jobs: 1000"))
    git(work, "commit", "-q", "-am", "raise the budget")
    event = {"number": 1, "repository": {"full_name": "me/repo", "default_branch": "main"},
             "pull_request": {"number": 1, "base": {"ref": "main", "repo": {"full_name": "me/repo"}},
                              "head": {"repo": {"full_name": "me/repo", "fork": False}}}}
    code = runner.run(work, event_name="pull_request", ref="refs/pull/1/merge", event=event, **LOCAL)
    assert code == 0
    assert "::notice title=mlr-action spends nothing here::dry run: this run was triggered by pull_request" in runner.out
    assert runner.outputs["dry-run"] == "true"
    assert "jobs 0/12" in runner.out and "1000" not in runner.out  # the approved envelope, not the PR's
    assert not (work / ".mlr-default-branch-program.md").exists()
    assert git(origin, "rev-list", "--count", "main") == "1"


def test_missing_secrets_are_asked_for_only_when_the_run_would_spend(runner, origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    assert runner.run(work, backend="hf", proposer="claude", forge="none") == 2
    assert "secrets.HF_TOKEN" in runner.out and "secrets.ANTHROPIC_API_KEY" in runner.out
    assert runner.run(work, backend="hf", proposer="claude", forge="none", dry_run="true") == 0
    assert runner.run(work, backend="local", forge="github", github_token="", dry_run="true") == 2
    assert "github-token is empty" in runner.out


def test_ledger_branch_may_not_be_the_default_branch(runner, origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    assert runner.run(work, ledger_branch="main", dry_run="true", **LOCAL) == 2
    assert "ledger-branch is the default branch main" in runner.out


def run_until(runner, work, predicate, *, timeout=20.0, **inputs) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert runner.run(work, **inputs) == 0, runner.out
        if predicate():
            return
        assert time.monotonic() < deadline, runner.out
        time.sleep(0.2)


def ledger(origin, ref="main") -> list[dict]:
    return [json.loads(line) for line in show(origin, ref, "runs/ledger.jsonl").splitlines()]


def test_a_real_step_commits_runs_as_the_bot_and_reports(runner, origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    assert runner.run(work, **LOCAL) == 0, runner.out
    assert runner.outputs["iter"] == "1" and runner.outputs["jobs-used"] == "1" and runner.outputs["dry-run"] == "false"
    author, subject = git(origin, "log", "-1", "--format=%an|%s", "main").split("|", 1)
    assert author == "github-actions[bot]" and subject.startswith("mlr: iter 1 submitted ")
    # the commit before it recorded the intent before the submit, and says so
    assert git(origin, "log", "-1", "--format=%s", "main~1") == "mlr: record before submitting 1 job(s): campaign work started"
    assert any(r.get("status") == "submitted" and r.get("iter") == 1 for r in ledger(origin))
    assert set(git(origin, "diff-tree", "--no-commit-id", "--name-only", "-r", "main").splitlines()) <= {
        "runs/ledger.jsonl", "runs/summary.md"}
    run_until(runner, work, lambda: any(r.get("status") == "completed" for r in ledger(origin)), **LOCAL)
    assert runner.outputs["best-metric"] == "0.5"
    assert "**Best:** eval_accuracy=0.5 at iter 1" in runner.summary
    assert git(work, "status", "--porcelain") == ""


def test_ledger_branch_keeps_the_default_branch_untouched_across_fresh_checkouts(runner, origin, tmp_path):
    # Each checkout is a folder of the repository's name, as on GitHub's runners: the campaign id (the jobs'
    # labels) comes from program.md or that folder, never from the ledger's started row.
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = clone(origin, tmp_path / "first" / "repo")
    main_before = git(origin, "rev-parse", "main")
    assert runner.run(first, ledger_branch="mlr-ledger", **LOCAL) == 0
    assert git(origin, "rev-parse", "main") == main_before
    assert [r.get("iter") for r in ledger(origin, "mlr-ledger") if r.get("status") == "submitted"] == [1]
    # The next tick runs on a fresh checkout of main, whose runs/ is empty: the ledger comes from mlr-ledger.
    second = clone(origin, tmp_path / "second" / "repo")
    run_until(runner, second, lambda: any(r.get("status") == "completed" for r in ledger(origin, "mlr-ledger")),
              ledger_branch="mlr-ledger", **LOCAL)
    rows = ledger(origin, "mlr-ledger")
    assert [r.get("event") for r in rows].count("started") == 1
    assert git(origin, "rev-parse", "main") == main_before


def test_validate_comments_the_envelope_and_its_changes_on_the_pull_request_in_place(runner, origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    git(work, "checkout", "-q", "-b", "more-budget")
    (work / "program.md").write_text(PROGRAM.replace("max_jobs: 12", "max_jobs: 20"))
    event = {"number": 5, "repository": {"full_name": "me/repo", "default_branch": "main"},
             "pull_request": {"number": 5, "base": {"ref": "main", "repo": {"full_name": "me/repo"}},
                              "head": {"sha": "feedfacecafe", "repo": {"full_name": "me/repo"}}}}
    with CommentServer() as server:
        runner.mp.setenv("GITHUB_API_URL", server.url)
        pr = dict(event_name="pull_request", ref="refs/pull/5/merge", event=event, command="validate", github_token="t0ken")
        assert runner.run(work, **pr) == 0
        assert runner.outputs["valid"] == "true"
        [comment] = server.comments[5]
        assert comment["body"].startswith(MARKER) and "`max_jobs`: `12` → `20`" in comment["body"]
        assert "feedfac" in comment["body"] and comment["body"] in runner.summary
        assert "validation comment created" in runner.out
        (work / "program.md").write_text(PROGRAM.replace("max_jobs: 12", "max_jobs: 0"))
        assert runner.run(work, **pr) == 2
        [comment] = server.comments[5]  # still one comment, edited in place
        assert "❌" in comment["body"] and "max_jobs" in comment["body"]
        assert runner.outputs["valid"] == "false" and "::error title=program.md::" in runner.out
    assert "t0ken" not in runner.out.replace("::add-mask::t0ken", "")


def test_validate_outside_a_pull_request_only_reports(runner, origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    assert runner.run(work, command="validate") == 0
    assert "Nothing that can cost money or change what runs differs from the program approved on `main`." in runner.summary


def _comment_on_branch(runner, work: Path, branch: str, files: dict[str, str], *, expect: int, **inputs) -> str:
    """Commit ``files`` on a new ``branch``, run the pull request check (exit ``expect``), return its comment."""
    git(work, "checkout", "-q", "-b", branch)
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", f"the {branch} change")
    with CommentServer() as server:
        runner.mp.setenv("GITHUB_API_URL", server.url)
        assert runner.run(work, **_pull_request(), **inputs) == expect
        [comment] = server.comments[5]
    return comment["body"]


def _pull_request(base: str = "main", default: str = "main") -> dict:
    event = {"number": 5, "repository": {"full_name": "me/repo", "default_branch": default},
             "pull_request": {"number": 5, "base": {"ref": base, "repo": {"full_name": "me/repo"}},
                              "head": {"sha": "feedfacecafe", "repo": {"full_name": "me/repo"}}}}
    return dict(event_name="pull_request", ref="refs/pull/5/merge", event=event, command="validate", github_token="t0ken")


def test_the_pull_request_check_passes_on_a_drafted_program_merged_unedited(runner, origin, tmp_path):
    """The onboarding draft, preflight included, passes the check the pull request runs (review H1)."""
    from mlr_action.onboard.draft import draft_program

    corpus = Path(__file__).parents[1] / "corpus" / "pytorch_mnist"
    folder = tmp_path / "drafted"
    shutil.copytree(corpus, folder)
    files = {f"mnist/{p.name}": p.read_text() for p in folder.iterdir()}
    files["mnist/program.md"] = draft_program(folder).text
    work = clone(origin, tmp_path / "work")
    body = _comment_on_branch(runner, work, "onboard-mnist", files, expect=0, program="mnist/program.md")
    assert "Every job would fail" not in body and "problem:" not in body
    assert "--with torch --with torchvision main.py" in body


# A pull request that leaves the envelope alone and changes what runs: the comment says what (issue 10, class 7).
QUIET_CHANGES = {
    "a new namespace and a longer default timeout": (
        {"program.md": PROGRAM.replace("timeout: 1m", "timeout: 5m\nnamespace: other-org")},
        ["Campaign: `timeout` (each job's default): `1m` → `5m`",
         "Campaign: `namespace` (the Hugging Face account the jobs run in, and are billed to): not set → `other-org`"]),
    "a different script": (
        {"program.md": PROGRAM.replace("script: train.py", "script: evil.py"), "evil.py": "import os\n"},
        ["Campaign: `script` (what every job runs): `train.py` → `evil.py`",
         "the training script `evil.py` is new in this pull request: every job after the merge runs it"]),
    "only the training script": (
        {"train.py": TRAIN + "import subprocess  # mine some coin\n"},
        ["the training script `train.py` itself changed: every job after the merge runs the new code"]),
    "a module next to it": (
        {"lib/helpers.py": "X = 1\n"},
        ["other files in the campaign folder changed (each job runs with the whole folder): `lib/helpers.py`"]),
}


@pytest.mark.parametrize("case", QUIET_CHANGES, ids=list(QUIET_CHANGES))
def test_validate_shows_a_pull_request_that_changes_what_runs_without_touching_the_envelope(runner, origin, tmp_path, case):
    files, lines = QUIET_CHANGES[case]
    body = _comment_on_branch(runner, clone(origin, tmp_path / "work"), "quiet", files, expect=0)
    assert "**Changes against the program approved on `main`**" in body
    assert all(f"- {line}" in body for line in lines), body
    assert "Budget envelope:" not in body  # the envelope is untouched; the rest still shows


def test_validate_reads_the_script_from_the_folder_that_holds_program_md(runner, tmp_path):
    # program.md in exp/ names train.py: the jobs run exp/train.py, so that is the script the comment watches,
    # and a train.py at the top of the repository is outside the campaign folder.
    origin = make_origin(tmp_path, {"exp/program.md": PROGRAM, "exp/train.py": TRAIN, "train.py": "print('other')\n"})
    work = clone(origin, tmp_path / "work")
    git(work, "checkout", "-q", "-b", "sneaky")
    (work / "exp" / "train.py").write_text(TRAIN + "import os  # fetch and run something\n")
    (work / "exp" / "lib").mkdir()
    (work / "exp" / "lib" / "helpers.py").write_text("X = 1\n")
    (work / "train.py").write_text("print('changed, never run by the campaign')\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "change the campaign's script")
    with CommentServer() as server:
        runner.mp.setenv("GITHUB_API_URL", server.url)
        assert runner.run(work, program="exp/program.md", **_pull_request()) == 0
        [comment] = server.comments[5]
    body = comment["body"]
    assert "- the training script `train.py` itself changed: every job after the merge runs the new code" in body
    assert ("- other files in the campaign folder changed (each job runs with the whole folder): `lib/helpers.py`"
            in body), body


def test_validate_posts_nothing_on_a_pull_request_that_changes_nothing_it_reports(runner, origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    git(work, "checkout", "-q", "-b", "empty")
    git(work, "commit", "-q", "--allow-empty", "-m", "nothing")
    with CommentServer() as server:
        runner.mp.setenv("GITHUB_API_URL", server.url)
        assert runner.run(work, **_pull_request()) == 0
        assert server.comments.get(5, []) == []
    assert "validation comment skipped" in runner.out
    assert "Nothing that can cost money or change what runs differs" in runner.summary


def test_validate_says_when_the_approved_program_cannot_be_read(runner, origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    with CommentServer() as server:
        runner.mp.setenv("GITHUB_API_URL", server.url)
        assert runner.run(work, **_pull_request(base="gone", default="gone")) == 0
        [comment] = server.comments[5]
    assert "**The program approved on `gone` could not be read** (`there is no branch gone on origin`)" in comment["body"]


def test_mlr_step_dry_run_writes_nothing(tmp_path, capsys):
    from mlr_action.commands.cli import main

    (tmp_path / "program.md").write_text(PROGRAM)
    (tmp_path / "train.py").write_text(TRAIN)
    assert main(["step", "--repo", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dry run: nothing was submitted") and "would submit iter 1:" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["program.md", "train.py"]
    (tmp_path / "program.md").write_text(PROGRAM.replace("max_jobs: 12", "max_jobs: 0"))
    assert main(["step", "--repo", str(tmp_path), "--dry-run"]) == 2
    assert "is not valid" in capsys.readouterr().out


# --- authority: only the tip of the default branch spends ---------------------------------------------


def jobs_started(work: Path) -> list[str]:
    registry = work / ".mlr" / "jobs"
    return sorted(p.name for p in registry.iterdir()) if registry.is_dir() else []


def test_a_rerun_of_an_old_workflow_run_spends_nothing_and_says_why(runner, origin, tmp_path):
    old = git(origin, "rev-parse", "main")
    work = clone(origin, tmp_path / "work")  # the old run's checkout: GITHUB_SHA is the old commit
    other = clone(origin, tmp_path / "other")
    (other / "program.md").write_text(PROGRAM.replace("max_jobs: 12", "max_jobs: 2"))
    git(other, "commit", "-q", "-am", "lower the budget")
    git(other, "push", "-q", "origin", "HEAD:main")
    tip = git(origin, "rev-parse", "main")
    assert runner.run(work, sha=old, **LOCAL) == 0
    assert f"::notice title=mlr-action spends nothing here::dry run: this workflow run is for commit {old[:12]}" in runner.out
    assert runner.outputs["dry-run"] == "true" and "re-run of an old workflow run" in runner.summary
    assert "jobs 0/2" in runner.out  # the dry run shows the tip's envelope, not the checkout's
    assert jobs_started(work) == [] and git(origin, "rev-parse", "main") == tip
    # A re-run whose workflow checks out `ref: main` gets the tip, but is still a re-run.
    fresh = clone(origin, tmp_path / "fresh")
    assert runner.run(fresh, sha=old, **LOCAL) == 0
    assert runner.outputs["dry-run"] == "true" and jobs_started(fresh) == []


@pytest.mark.parametrize("edit", ["program.md", "train.py", "local commit"])
def test_a_checkout_that_is_not_the_tip_spends_nothing(runner, origin, tmp_path, edit):
    work = clone(origin, tmp_path / "work")
    if edit == "program.md":
        (work / "program.md").write_text(PROGRAM.replace("max_jobs: 12", "max_jobs: 1000"))
    elif edit == "train.py":
        (work / "train.py").write_text("import os; print(os.environ)\n")
    else:
        (work / "notes.txt").write_text("mine\n")
        git(work, "add", "notes.txt")
        git(work, "commit", "-q", "-m", "a local commit")
    before = git(origin, "rev-parse", "main")
    assert runner.run(work, sha=before, **LOCAL) == 0  # the run is for the tip; its checkout moved on
    assert "::notice title=mlr-action spends nothing here::dry run: " in runner.out
    reason = "not at" if edit == "local commit" else f"{edit} in the work tree differs from the one committed at main"
    assert reason in runner.out and runner.outputs["dry-run"] == "true"
    assert "jobs 0/12" in runner.out and "1000" not in runner.out
    assert jobs_started(work) == [] and git(origin, "rev-parse", "main") == before


def test_the_bots_own_push_does_not_make_its_tick_or_the_next_on_that_checkout_stale(runner, origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    assert runner.run(work, **LOCAL) == 0  # pushes runs/ to main: the tip moves because of the bot
    assert runner.outputs["dry-run"] == "false" and runner.outputs["jobs-used"] == "1"
    assert git(origin, "rev-parse", "main") == git(work, "rev-parse", "HEAD")
    assert runner.run(work, **LOCAL) == 0
    assert runner.outputs["dry-run"] == "false" and "spends nothing here" not in runner.out


def test_a_ledger_branch_writer_cannot_write_outside_runs_or_raise_the_budget(runner, origin, tmp_path):
    raised = PROGRAM.replace("max_jobs: 12", "max_jobs: 1000")
    plant(origin, "mlr-ledger", {"runs": {"ledger.jsonl": "", "..": {"program.md": raised}}})
    work = clone(origin, tmp_path / "work")
    assert runner.run(work, ledger_branch="mlr-ledger", **LOCAL) == 2
    assert "::error title=mlr-action::" in runner.out and "runs/../program.md" in runner.out
    assert "runs/../program.md" in runner.summary and "Traceback" not in runner.out
    assert (work / "program.md").read_text() == PROGRAM and jobs_started(work) == []


@pytest.mark.parametrize("entry, fragment", [
    (("120000", "/etc/passwd"), "script: train.py is a symlink"),
    (None, "script: train.py is not a file committed at main"),
])
def test_a_script_that_is_not_a_committed_file_spends_nothing(runner, origin, tmp_path, entry, fragment):
    plant(origin, "main", {"program.md": PROGRAM, **({"train.py": entry} if entry else {})},
          parent=git(origin, "rev-parse", "main"))
    work = clone(origin, tmp_path / "work")
    (work / "train.py").unlink(missing_ok=True)
    (work / "train.py").write_text(TRAIN)  # an untracked copy in the work tree authorizes nothing
    assert runner.run(work, **LOCAL) == 2
    assert fragment in runner.out and jobs_started(work) == []
    assert "Fix what is named here; nothing was spent." in runner.out


# --- refusals end in a message and an exit code, never a traceback (the real entry point) -------------------


def run_module(tmp_path: Path, work: Path, *, event: str | None = None, **inputs) -> tuple[int, str, str]:
    """``python -m mlr_action.github.action`` in a subprocess, as action.yml runs it."""
    event_path = tmp_path / "event.json"
    event_path.write_text(event if event is not None else json.dumps(
        {"repository": {"full_name": "me/repo", "default_branch": "main", "fork": False}}))
    summary = tmp_path / "summary.md"
    summary.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_", "HF_", "ANTHROPIC_"))}
    env.update({"PYTHONPATH": str(Path(action.__file__).parents[2]), "GITHUB_EVENT_NAME": "workflow_dispatch",
                "GITHUB_EVENT_PATH": str(event_path), "GITHUB_REF": "refs/heads/main", "GITHUB_WORKSPACE": str(work),
                "GITHUB_REPOSITORY": "me/repo", "GITHUB_STEP_SUMMARY": str(summary),
                "GITHUB_OUTPUT": str(tmp_path / "output")})
    env.update({action.env_name(k.replace("_", "-")): v for k, v in {**LOCAL, **inputs}.items()})
    proc = subprocess.run([sys.executable, "-m", "mlr_action.github.action"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr, summary.read_text()


def _not_a_checkout(origin, tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "program.md").write_text(PROGRAM)
    return tmp_path / "plain", {}


def _no_remote(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    git(work, "remote", "remove", "origin")
    return work, {}


def _unreachable_remote(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    git(work, "remote", "set-url", "origin", "http://127.0.0.1:9/me/repo.git")
    return work, {}


def _unreadable_program_object(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    blob = git(work, "rev-parse", "HEAD:program.md")
    (work / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    return work, {}


def _working_directory_is_a_file(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    return work, {"working_directory": "program.md"}


def _working_directory_outside(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    (tmp_path / "elsewhere").mkdir()
    (work / "camp").symlink_to(tmp_path / "elsewhere")
    return work, {"working_directory": "camp"}


def _event_not_json(origin, tmp_path):
    work = clone(origin, tmp_path / "work")
    return work, {"event": "{not json"}


REFUSALS = {
    "not a git checkout": (_not_a_checkout, 2, "actions/checkout"),
    "no remote": (_no_remote, 2, "no remote origin"),
    "a remote that cannot be reached": (_unreachable_remote, 1, "could not fetch origin/main"),
    "an unreadable program.md object": (_unreadable_program_object, 2, "cannot read program.md at main"),
    "a working-directory that is a file": (_working_directory_is_a_file, 2, "is not a folder of the checkout"),
    "a working-directory outside the checkout": (_working_directory_outside, 2, "outside the checkout"),
    "an event file that is not JSON": (_event_not_json, 2, "GITHUB_EVENT_PATH"),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_a_refusal_ends_in_a_message_and_an_exit_code_never_a_traceback(runner, origin, tmp_path, case):
    make, code, fragment = REFUSALS[case]
    work, inputs = make(origin, tmp_path)
    exit_code, out, summary = run_module(tmp_path, work, **inputs)
    assert exit_code == code, out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("::error")]
    assert errors and any(fragment in e and "Fix: " in e for e in errors), out
    assert fragment in summary and "Fix: " in summary
    assert jobs_started(work) == []


def test_a_runs_folder_committed_as_a_symlink_is_never_written_through(runner, origin, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    plant(origin, "main", {"program.md": PROGRAM, "train.py": TRAIN, "runs": ("120000", str(outside))},
          parent=git(origin, "rev-parse", "main"))
    work = clone(origin, tmp_path / "work")
    assert (work / "runs").is_symlink()
    assert runner.run(work, **LOCAL) == 2
    assert "runs is a symlink" in runner.out and "Traceback" not in runner.out
    assert list(outside.iterdir()) == [] and jobs_started(work) == []


# --- the preflight in the pull request check -------------------------------------------------


def test_validate_fails_a_pull_request_whose_jobs_would_fail_and_says_what_each_job_receives(runner, origin, tmp_path):
    body = _comment_on_branch(runner, clone(origin, tmp_path / "work"), "refactor", {
        "train.py": "import yaml\nfrom helpers import score\nprint(f'eval_accuracy={score()}')\n",
        "helpers.py": "def score():\n    return 0.5\n",
        ".gitignore": "helpers.py\n",  # works on the laptop; never committed, so never shipped
    }, expect=2)
    assert "❌ **Every job would fail**: 2 preflight problems" in body
    assert "train.py line 2 imports helpers, which is in the work tree but not in the shipped folder" in body
    assert "the code imports yaml but the folder declares no dependencies" in body
    assert "command       uv run --no-project train.py" in body and "What each job receives" in body
    assert "::error title=preflight::" in runner.out


def test_validate_checks_the_allowed_flavors_against_the_live_catalog_without_a_token(runner, tmp_path):
    from loopback.hf_server import FakeHubServer

    origin = make_origin(tmp_path, {"program.md": program_text(
        with_(ENVELOPE, allowed_flavors=["cpu-basic", "h200"], max_timeout="5m"),
        with_(CAMPAIGN, flavor="cpu-basic", timeout="1m")), "train.py": TRAIN})
    work = clone(origin, tmp_path / "work")
    with FakeHubServer(token="unused-" + "x" * 8) as hub, CommentServer() as server:
        runner.mp.setenv("HF_ENDPOINT", hub.url)
        runner.mp.setenv("GITHUB_API_URL", server.url)
        assert runner.run(work, **_pull_request()) == 2
        [comment] = server.comments[5]
        assert hub.requests == [("GET", "/api/jobs/hardware")]  # the public catalog only: no whoami, no token
    assert "allowed_flavors: h200 is not in HF's hardware catalog today" in comment["body"]


def test_a_tick_parses_program_md_once(runner, origin, tmp_path, monkeypatch):
    """Issue 11: the authority's read, the step and the action's report share one parse of program.md."""
    from mlr_action.core import program as program_module

    parses = []
    real = program_module._sections

    def counted(text):
        parses.append(len(text))
        return real(text)

    monkeypatch.setattr(program_module, "_sections", counted)
    work = clone(origin, tmp_path / "work")
    assert runner.run(work, **LOCAL) == 0, runner.out
    assert runner.outputs["jobs-used"] == "1"
    assert len(parses) == 1, parses
