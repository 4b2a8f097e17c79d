"""The action's entry point, run as the runner runs it: GITHUB_* variables, an event file, a real git origin."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from comment_server import CommentServer
from gitrepos import clone, git, isolate_git, make_origin, show
from mlr_action import action
from mlr_action.action import read_inputs, valid_branch_name
from mlr_action.action_step import commit_message
from mlr_action.ghenv import RunContext, command, spend_blockers
from mlr_action.pr_comment import MARKER
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


@pytest.mark.parametrize("events, subject", [
    ([], "mlr: step"),
    (["iter 3 submitted 6745abc (a10g-large, 1h)"], "mlr: iter 3 submitted 6745abc (a10g-large, 1h)"),
    (["iter 2 completed: eval_accuracy=0.9 (keep)", "iter 3 submitted x (t4-small, 1h)"],
     "mlr: iter 2 completed: eval_accuracy=0.9 (keep); iter 3 submitted x (t4-small, 1h)"),
    (["x" * 200], "mlr: " + "x" * 94 + "…"),
])
def test_commit_message_says_what_the_step_did(events, subject):
    message = commit_message(events)
    assert message.splitlines()[0] == subject
    assert all(e in message for e in events)


# --- the whole thing, against a real origin -------------------------------------------------


class Runner:
    """Runs ``action.main`` the way action.yml does, and reads back what the runner would show."""

    def __init__(self, tmp_path: Path, monkeypatch, capsys):
        self.tmp, self.mp, self.capsys = tmp_path, monkeypatch, capsys
        self.outputs_file, self.summary_file = tmp_path / "github_output", tmp_path / "step_summary"

    def run(self, work: Path, *, event_name="workflow_dispatch", ref="refs/heads/main", event=None, argv=(), **inputs) -> int:
        event = {"repository": {"full_name": "me/repo", "default_branch": "main", "fork": False}} if event is None else event
        event_path = self.tmp / "event.json"
        event_path.write_text(json.dumps(event))
        for path in (self.outputs_file, self.summary_file):
            path.write_text("")
        env = {"GITHUB_EVENT_NAME": event_name, "GITHUB_EVENT_PATH": str(event_path), "GITHUB_REF": ref,
               "GITHUB_WORKSPACE": str(work), "GITHUB_REPOSITORY": "me/repo", "GITHUB_SHA": "0123456789abcdef",
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
    return Runner(tmp_path, monkeypatch, capsys)


@pytest.fixture
def origin(tmp_path):
    return make_origin(tmp_path, {"program.md": PROGRAM, "train.py": TRAIN})


LOCAL = dict(backend="local", proposer="search", forge="none")


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
    assert runner.run(work, **LOCAL) == 0
    assert runner.outputs["iter"] == "1" and runner.outputs["jobs-used"] == "1" and runner.outputs["dry-run"] == "false"
    author, subject = git(origin, "log", "-1", "--format=%an|%s", "main").split("|", 1)
    assert author == "github-actions[bot]" and subject.startswith("mlr: campaign work started; iter 1 submitted ")
    assert any(r.get("status") == "submitted" and r.get("iter") == 1 for r in ledger(origin))
    assert set(git(origin, "diff-tree", "--no-commit-id", "--name-only", "-r", "main").splitlines()) <= {
        "runs/ledger.jsonl", "runs/summary.md"}
    run_until(runner, work, lambda: any(r.get("status") == "completed" for r in ledger(origin)), **LOCAL)
    assert runner.outputs["best-metric"] == "0.5"
    assert "**Best:** eval_accuracy=0.5 at iter 1" in runner.summary
    assert git(work, "status", "--porcelain") == ""


def test_ledger_branch_keeps_the_default_branch_untouched_across_fresh_checkouts(runner, origin, tmp_path):
    first = clone(origin, tmp_path / "first")
    main_before = git(origin, "rev-parse", "main")
    assert runner.run(first, ledger_branch="mlr-ledger", **LOCAL) == 0
    assert git(origin, "rev-parse", "main") == main_before
    assert [r.get("iter") for r in ledger(origin, "mlr-ledger") if r.get("status") == "submitted"] == [1]
    # The next tick runs on a fresh checkout of main, whose runs/ is empty: the ledger comes from mlr-ledger.
    second = clone(origin, tmp_path / "second")
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


def _pull_request(base: str = "main", default: str = "main") -> dict:
    event = {"number": 5, "repository": {"full_name": "me/repo", "default_branch": default},
             "pull_request": {"number": 5, "base": {"ref": base, "repo": {"full_name": "me/repo"}},
                              "head": {"sha": "feedfacecafe", "repo": {"full_name": "me/repo"}}}}
    return dict(event_name="pull_request", ref="refs/pull/5/merge", event=event, command="validate", github_token="t0ken")


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
    work = clone(origin, tmp_path / "work")
    git(work, "checkout", "-q", "-b", "quiet")
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "nothing to see here")
    with CommentServer() as server:
        runner.mp.setenv("GITHUB_API_URL", server.url)
        assert runner.run(work, **_pull_request()) == 0
        [comment] = server.comments[5]
    body = comment["body"]
    assert "**Changes against the program approved on `main`**" in body
    assert all(f"- {line}" in body for line in lines), body
    assert "Budget envelope:" not in body  # the envelope is untouched; the rest still shows


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
    from mlr_action.cli import main

    (tmp_path / "program.md").write_text(PROGRAM)
    (tmp_path / "train.py").write_text(TRAIN)
    assert main(["step", "--repo", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dry run: nothing was submitted") and "would submit iter 1:" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["program.md", "train.py"]
    (tmp_path / "program.md").write_text(PROGRAM.replace("max_jobs: 12", "max_jobs: 0"))
    assert main(["step", "--repo", str(tmp_path), "--dry-run"]) == 2
    assert "is not valid" in capsys.readouterr().out
