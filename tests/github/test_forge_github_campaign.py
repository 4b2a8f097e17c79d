"""Whole campaigns with the github forge: the in-memory backend, the search proposer, a loopback GitHub."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from loopback.github_server import BOT, FakeGitHub
from mlr_action.backends.memory import InMemoryBackend
from mlr_action.github.forge import GitHubForge
from mlr_action.github.dashboard import read_checkbox, read_shown
from mlr_action.github.messages import DASHBOARD_LABEL, ESCALATION_LABEL, ONBOARDING_LABEL, PAUSED_LABEL
from mlr_action.core.ledger import read_ledger
from mlr_action.proposers.search import SearchProposer
from mlr_action.core.state import fold
from mlr_action.shell.step import Step
from programs import CAMPAIGN, program_text, with_
from simulate import FakeClock, finish_jobs


class HookedBackend(InMemoryBackend):
    """The in-memory backend with a hook in the middle of a step (after the controls are read)."""

    during_step = None

    def prices(self):
        if self.during_step is not None:
            hook, self.during_step = self.during_step, None
            hook()
        return super().prices()


@dataclass
class Campaign:
    gh: FakeGitHub
    root: object
    clock: FakeClock
    backend: HookedBackend
    step: Step
    pushes: list[str] = field(default_factory=list)

    def tick(self, *, finish: bool = True):
        result = self.step.run()
        self.clock.advance(900)
        if finish:
            finish_jobs(self.backend)
        return result

    @property
    def state(self):
        return fold(read_ledger(self.root / "runs" / "ledger.jsonl"))

    @property
    def dashboards(self) -> list[dict]:
        return self.gh.issues_labelled(DASHBOARD_LABEL)

    @property
    def dashboard(self) -> dict:
        (issue,) = self.dashboards
        return issue

    def comments(self) -> list[str]:
        return [c["body"] for c in self.gh.comments_on(self.dashboard["number"])]

    def writes(self, method: str = "PATCH") -> int:
        return sum(1 for m, p in self.gh.log if m == method and p != "/graphql")  # a GraphQL query is a read


def make_campaign(tmp_path, gh: FakeGitHub, campaign: dict | None = None) -> Campaign:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "train.py").write_text("print('eval_accuracy=0.5')\n")
    (root / "program.md").write_text(program_text(campaign=campaign or with_(CAMPAIGN, target=None, patience=None)))
    clock = FakeClock()
    backend = HookedBackend(clock=clock.seconds)
    pushes: list[str] = []
    forge = GitHubForge(root, env=gh.env(), clock=clock, throttle=False, backoff=0,
                        publish_runs=lambda root, message: pushes.append(message))
    step = Step(root=root, backend=backend, proposer=SearchProposer(), forge=forge, clock=clock)
    return Campaign(gh, root, clock, backend, step, pushes)


def labels(camp: Campaign) -> list[str]:
    """The dashboard issue's labels, by name."""
    return [label["name"] for label in camp.dashboard["labels"]]


def bot_replies(camp: Campaign) -> list[str]:
    """The bodies of the bot's replies to commands on the dashboard."""
    return [c["body"] for c in camp.gh.comments_on(camp.dashboard["number"])
            if c["user"]["login"] == BOT and "mlr-action:reply" in c["body"]]


@pytest.fixture
def gh():
    with FakeGitHub() as server:
        server.permissions.update(alice="write", mallory="read")
        yield server


@pytest.fixture
def camp(tmp_path, gh) -> Campaign:
    return make_campaign(tmp_path, gh)


def test_a_full_campaign_keeps_one_dashboard_edited_in_place(camp):
    results = [camp.tick() for _ in range(40) if not camp.state.stopped]
    assert camp.state.stopped is not None and camp.state.stopped.reason == "budget"
    assert all(r.exit_code == 0 for r in results) and len(results) > 10
    for _ in range(3):  # ticks after the stop change nothing
        camp.tick()
    dashboard = camp.dashboard
    assert sum(1 for m, p in camp.gh.log if m == "POST" and p.endswith("/issues")) == 1
    assert read_shown(dashboard["body"]).state == "stopped" and "budget is spent" in dashboard["body"]
    assert dashboard["state"] == "open"  # only a stop by a person closes it
    reports = [c for c in camp.comments() if "mlr-action:stop-report" in c]
    assert len(reports) == 1 and "stopped (budget spent)" in reports[0]
    assert camp.pushes[0].startswith("mlr: iter 1 submitted mem-0001 (a10g-large, 1h)")
    assert len(camp.pushes) == len(results) + 3  # runs/ is handed to the git sync every tick
    edits = [p for m, p in camp.gh.log if m == "PATCH" and p.endswith(f"/issues/{dashboard['number']}")]
    assert 0 < len(edits) <= len(results)  # at most one edit per tick, none once nothing changes


def test_the_dashboard_is_edited_only_when_it_changed(camp):
    camp.tick(finish=False)  # submits iter 1
    patches, posts = camp.writes(), camp.writes("POST")
    for _ in range(3):
        camp.tick(finish=False)  # the job is still running: nothing changes
    assert (camp.writes(), camp.writes("POST")) == (patches, posts)


def test_pause_by_checkbox_then_resume(camp):
    camp.tick()
    number = camp.dashboard["number"]
    camp.gh.check_box(number, True)
    result = camp.tick()
    assert camp.state.paused and any("pause box" in e for e in result.events)
    assert PAUSED_LABEL in [l["name"] for l in camp.dashboard["labels"]]  # the label mirrors the box
    jobs = len(camp.backend.jobs)
    rows = len(camp.state.events)
    for _ in range(3):
        camp.tick()
    assert len(camp.backend.jobs) == jobs and len(camp.state.events) == rows  # idempotent, nothing submitted
    patches = camp.writes()
    camp.tick()
    assert camp.writes() == patches  # the CRLF body a click leaves behind does not cause an edit every tick
    assert read_checkbox(camp.dashboard["body"]) is True and "paused" in camp.dashboard["body"]
    camp.gh.check_box(number, False)
    camp.tick()
    assert not camp.state.paused and [e.event for e in camp.state.events].count("resumed") == 1
    camp.tick()
    assert len(camp.backend.jobs) > jobs
    assert PAUSED_LABEL not in [l["name"] for l in camp.dashboard["labels"]]


def test_pause_and_resume_by_label(camp):
    camp.tick()
    number = camp.dashboard["number"]
    camp.gh.add_label(number, PAUSED_LABEL)
    camp.tick()
    assert camp.state.paused and read_checkbox(camp.dashboard["body"]) is True  # the box mirrors the label
    camp.tick()
    assert [e.event for e in camp.state.events].count("paused") == 1
    camp.gh.remove_label(number, PAUSED_LABEL)
    camp.tick()
    assert not camp.state.paused and read_checkbox(camp.dashboard["body"]) is False


def test_a_click_during_a_step_is_not_overwritten(camp):
    camp.tick()
    number = camp.dashboard["number"]
    camp.backend.during_step = lambda: camp.gh.check_box(number, True)
    camp.tick()  # the box was checked after the controls were read, and a job finished meanwhile
    assert read_checkbox(camp.dashboard["body"]) is True and not camp.state.paused
    camp.tick()
    assert camp.state.paused


def test_stop_by_closing_the_dashboard_then_resume_by_reopening(camp):
    camp.tick()
    number = camp.dashboard["number"]
    camp.gh.close(number, by="alice")
    camp.tick()
    stop = camp.state.stopped
    assert stop is not None and stop.reason == "human" and "@alice closed" in stop.detail
    jobs = len(camp.backend.jobs)
    for _ in range(3):
        camp.tick()
    assert len(camp.backend.jobs) == jobs and camp.dashboard["state"] == "closed"
    assert [c for c in camp.comments() if "stop-report" in c][0].count("stopped by a person") == 1
    assert len([c for c in camp.comments() if "stop-report" in c]) == 1
    camp.gh.reopen(number)
    camp.tick()
    assert camp.state.stopped is None and camp.dashboard["state"] == "open"
    camp.tick()
    assert len(camp.backend.jobs) > jobs


def test_stop_by_a_writers_comment_closes_the_dashboard(camp):
    camp.tick()
    number = camp.dashboard["number"]
    comment = camp.gh.comment(number, "Enough for today.\n/mlr stop", by="alice")
    camp.tick()
    stop = camp.state.stopped
    assert stop.reason == "human" and getattr(stop, "comment_id") == comment and getattr(stop, "by") == "alice"
    assert camp.dashboard["state"] == "closed"
    rows = len(camp.state.events)
    for _ in range(2):
        camp.tick()
    assert len(camp.state.events) == rows  # the comment is not acted on twice; the bot's close is no reopen
    camp.gh.comment(number, "/mlr resume", by="alice")
    camp.tick()
    assert camp.state.stopped is None and camp.dashboard["state"] == "open"


def test_a_stop_comment_from_someone_without_write_access_is_ignored(camp):
    camp.tick()
    number = camp.dashboard["number"]
    camp.gh.comment(number, "/mlr stop", by="mallory")
    for _ in range(3):
        camp.tick()
    assert camp.state.stopped is None
    replies = [c for c in camp.comments() if "@mallory" in c]
    assert len(replies) == 1 and "write access" in replies[0]


def test_a_pasted_reply_marker_does_not_silence_a_writers_command(camp):
    camp.tick()
    number = camp.dashboard["number"]
    command = camp.gh.comment(number, "/mlr stop", by="alice")
    camp.gh.comment(number, f"<!-- mlr-action:reply {command} -->", by="mallory")
    camp.tick()
    assert camp.state.stopped is not None and camp.state.stopped.reason == "human"


def test_onboarding_then_merge_starts_the_campaign_and_closes_the_approval_issue(tmp_path, gh):
    camp = make_campaign(tmp_path, gh)
    program = (camp.root / "program.md").read_text()
    (camp.root / "program.md").unlink()
    assert camp.tick().exit_code == 0 and camp.backend.jobs == {}
    assert camp.tick().exit_code == 0 and len(gh.pulls) == 1
    gh.merge(1)
    (camp.root / "program.md").write_text(program)  # the next checkout has it
    camp.tick()
    (approval,) = gh.issues_labelled(ONBOARDING_LABEL)
    assert approval["state"] == "closed" and f"#{camp.dashboard['number']}" in gh.comments_on(approval["number"])[-1]["body"]
    assert len(camp.backend.jobs) == 1


def test_escalations_through_the_step_open_once_and_resolve(camp):
    good = (camp.root / "program.md").read_text()
    (camp.root / "program.md").write_text(good.replace("max_jobs: 12", "max_jobs: many"))
    for _ in range(2):
        assert camp.tick().exit_code == 2
    (issue,) = camp.gh.issues_labelled(ESCALATION_LABEL)
    assert "max_jobs" in issue["body"] and issue["state"] == "open"
    (camp.root / "program.md").write_text(good)
    assert camp.tick().exit_code == 0
    assert issue["state"] == "closed" and len(camp.gh.issues_labelled(ESCALATION_LABEL)) == 1


def test_without_issue_permission_the_step_fails_loudly_after_pushing_runs(camp):
    camp.gh.fail("POST", r"/issues$", 403, "Resource not accessible by integration", times=10)
    result = camp.tick()
    assert result.exit_code == 2 and len(camp.pushes) == 1  # runs/ was pushed before GitHub refused
    assert any("issues: write" in e for e in result.events)
    assert any("could not publish" in e for e in result.events)


def test_a_github_outage_is_transient_and_the_next_tick_catches_up(camp):
    camp.tick()
    camp.gh.fail("GET", r"/issues$", 503, times=10)
    assert camp.tick().exit_code == 1
    camp.gh.failures.clear()
    assert camp.tick().exit_code == 0 and len(camp.dashboards) == 1


def test_finish_step_commits_runs_through_the_git_sync(tmp_path, gh):
    """The default hook: runs/ goes to origin through mlr_action.github.gitsync, with a message saying what happened."""
    import shutil
    import subprocess

    pytest.importorskip("mlr_action.github.gitsync")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")

    def git(*args, cwd=tmp_path):
        ident = ["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main"]
        return subprocess.run(["git", *ident, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout

    git("init", "--bare", "-q", "origin.git")
    git("clone", "-q", str(tmp_path / "origin.git"), "repo")
    root = tmp_path / "repo"
    (root / "train.py").write_text("print('eval_accuracy=0.5')\n")
    (root / "program.md").write_text(program_text(campaign=with_(CAMPAIGN, target=None, patience=None)))
    git("add", ".", cwd=root)
    git("commit", "-q", "-m", "init", cwd=root)
    git("push", "-q", "origin", "HEAD:main", cwd=root)
    clock = FakeClock()
    forge = GitHubForge(root, env=gh.env(), clock=clock, throttle=False, backoff=0)  # the real hook
    step = Step(root=root, backend=InMemoryBackend(clock=clock.seconds), proposer=SearchProposer(), forge=forge, clock=clock)
    assert step.run().exit_code == 0
    subject = git("log", "-1", "--format=%s", "main", cwd=tmp_path / "origin.git").strip()
    assert subject.startswith("mlr: iter 1 submitted")
    assert "runs/ledger.jsonl" in git("show", "--name-only", "--format=", "main", cwd=tmp_path / "origin.git")


def test_a_writers_stop_comment_cancels_a_running_final_evaluation(tmp_path, gh):
    """After the stop the dashboard's controls are spent, except `/mlr stop`, which cancels the final repeats."""
    camp = make_campaign(tmp_path, gh, with_(CAMPAIGN, target=0.5, final={"repeats": 2, "seed_param": "seed"}))
    camp.tick()
    camp.tick(finish=False)  # the stop on the target, and the first repeat in flight
    assert camp.state.final_running and "the final evaluation is running" in gh.issues[camp.dashboard["number"]]["body"]
    camp.gh.comment(camp.dashboard["number"], "/mlr stop", by="mallory")
    camp.tick(finish=False)
    assert camp.state.final_running  # a reader's command changes nothing
    camp.gh.comment(camp.dashboard["number"], "/mlr stop", by="alice")
    camp.tick(finish=False)
    state = camp.state
    assert state.stopped.reason == "human" and not state.final_running and state.in_flight == []
    assert [r.status for r in state.finals.values()] == ["canceled"]
    assert {j.stage.value for j in camp.backend.jobs.values() if "mlr-final-of" in j.labels} == {"CANCELED"}
