"""The github forge over a loopback GitHub: configuration, errors, onboarding, escalations."""

from __future__ import annotations

import pytest

from loopback.github_server import BOT, FakeGitHub
from mlr_action.core.jobs import PermanentError, TransientError
from mlr_action.forges import make_forge
from mlr_action.github.api_errors import GitHubPermanentError, GitHubTransientError
from mlr_action.github.forge import GitHubForge
from mlr_action.github.messages import ACTIONS_PR_SETTING, ESCALATION_LABEL, ONBOARDING_LABEL
from mlr_action.render.reports import render_escalation
from simulate import FakeClock


@pytest.fixture
def gh():
    with FakeGitHub() as server:
        yield server


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "train.py").write_text("print(f'eval_accuracy={0.5}')\n")
    return tmp_path


def forge(gh: FakeGitHub, root, **kw) -> GitHubForge:
    kw.setdefault("publish_runs", lambda root, message: None)
    return GitHubForge(root, env=gh.env(), throttle=False, backoff=0, clock=FakeClock(), **kw)


# -- configuration --------------------------------------------------------------


@pytest.mark.parametrize("env,needle", [
    ({}, "GITHUB_TOKEN, GITHUB_REPOSITORY"),
    ({"GITHUB_TOKEN": "x"}, "GITHUB_REPOSITORY"),
    ({"GITHUB_TOKEN": "x", "GITHUB_REPOSITORY": "no-slash"}, "owner/name"),
])
def test_missing_settings_say_how_to_set_them(tmp_path, env, needle):
    with pytest.raises(ValueError, match=needle) as info:
        GitHubForge(tmp_path, env=env)
    assert "--forge none" in str(info.value) or "owner/name" in str(info.value)


def test_make_forge_reads_the_standard_environment(gh, repo, monkeypatch):
    for name, value in gh.env().items():
        monkeypatch.setenv(name, value)
    made = make_forge("github", root=repo)
    assert isinstance(made, GitHubForge) and made.onboards
    assert made.settings.api_url == gh.base_url and made.settings.repository == "octo/sweep"
    monkeypatch.delenv("GITHUB_API_URL")
    assert make_forge("github", root=repo).settings.api_url == "https://api.github.com"
    assert gh.log == []  # constructing the forge makes no request


# -- errors ---------------------------------------------------------------------


def test_a_bad_token_is_permanent_and_says_so(gh, repo):
    bad = GitHubForge(repo, env={**gh.env(), "GITHUB_TOKEN": "ghs_" + "w" * 36}, throttle=False, backoff=0)
    with pytest.raises(PermanentError, match="401") as info:
        bad.onboard()
    assert "ghs_" not in str(info.value)


@pytest.mark.parametrize("status,message,headers,kind,needle", [
    (500, "oops", {}, TransientError, "next tick retries"),
    (502, "bad gateway", {}, TransientError, "502"),
    (429, "slow down", {}, TransientError, "rate limited"),
    (403, "API rate limit exceeded", {"X-RateLimit-Remaining": "0"}, TransientError, "rate limited"),
    (403, "Resource not accessible by integration", {}, PermanentError, "issues: write"),
    (404, "Not Found", {}, PermanentError, "GITHUB_REPOSITORY=octo/sweep"),
    (410, "Issues are disabled for this repo", {}, PermanentError, "Settings > General > Features"),
    (422, "Validation Failed", {}, PermanentError, "422"),
])
def test_github_errors_are_translated(gh, repo, status, message, headers, kind, needle):
    gh.fail("POST", r"/issues$", status, message, times=5, headers=headers)
    f = forge(gh, repo)
    title, body = render_escalation(kind="ledger", problems=["line 3"], now="t")
    with pytest.raises(kind, match=needle) as info:
        f.publish_escalation(kind="ledger", title=title, body=body)
    assert isinstance(info.value, (GitHubTransientError, GitHubPermanentError))


def test_5xx_on_reads_is_retried_a_bounded_number_of_times(gh, repo):
    gh.fail("GET", r"/repos/octo/sweep$", 503, times=2)
    assert "opened onboarding PR" in forge(gh, repo, retries=2).onboard()
    gh.fail("GET", r"/repos/octo/sweep$", 503, times=5)
    with pytest.raises(TransientError):
        forge(gh, repo, retries=2).onboard()


def test_an_unreachable_api_is_transient(repo):
    env = {"GITHUB_TOKEN": "x" * 20, "GITHUB_REPOSITORY": "o/r", "GITHUB_API_URL": "http://127.0.0.1:9"}
    with pytest.raises(TransientError, match="cannot reach"):
        GitHubForge(repo, env=env, throttle=False, backoff=0, retries=0, timeout=2).onboard()


# -- onboarding -------------------------------------------------------------------


def test_onboarding_opens_one_pr_and_one_issue_and_never_twice(gh, repo):
    f = forge(gh, repo)
    first = f.onboard()
    assert "opened onboarding PR #1" in first and "issue #2" in first
    for _ in range(3):
        assert "waiting for onboarding PR #1" in forge(gh, repo).onboard()
    assert len(gh.pulls) == 1 and len(gh.issues_labelled(ONBOARDING_LABEL)) == 1
    pull = gh.pulls[1]
    assert pull["head"]["ref"] == "mlr/onboarding" and pull["base"]["ref"] == "main"
    assert "Merging it is the approval to spend" in pull["body"] and "Worst case" in pull["body"]
    draft = gh.files["mlr/onboarding"]["program.md"]
    assert "script: train.py" in draft and "program.md" not in gh.files["main"]  # never on the default branch
    issue = gh.issues_labelled(ONBOARDING_LABEL)[0]
    assert "#1" in issue["body"] and "<!-- mlr-action:onboarding -->" in issue["body"]
    assert ("POST", "/repos/octo/sweep/git/refs") in gh.log  # through the API, not the git CLI


def test_onboarding_waits_after_a_merge_and_after_a_close(gh, repo):
    forge(gh, repo).onboard()
    gh.merge(1)
    # This checkout predates the merge; the contents API says program.md is there now.
    assert "not in this checkout" in forge(gh, repo).onboard()
    assert len(gh.pulls) == 1


def test_a_closed_onboarding_pr_is_not_opened_again(gh, repo):
    forge(gh, repo).onboard()
    gh.pulls[1].update(state="closed", closed_at="2026-01-01T00:00:00Z")
    assert "closed without merging" in forge(gh, repo).onboard()
    assert len(gh.pulls) == 1 and len(gh.issues_labelled(ONBOARDING_LABEL)) == 1


def test_when_actions_may_not_open_prs_the_issue_says_which_setting_and_holds_the_draft(gh, repo):
    gh.actions_may_open_prs = False
    for _ in range(3):
        assert "does not let Actions open pull requests" in forge(gh, repo).onboard()
    (issue,) = gh.issues_labelled(ONBOARDING_LABEL)
    assert ACTIONS_PR_SETTING in issue["body"] and "pull-requests: write" in issue["body"]
    assert "## Budget envelope" in issue["body"] and "script: train.py" in issue["body"]
    assert "compare/main...mlr/onboarding" in issue["body"] and gh.pulls == {}
    # The setting is changed: the next tick opens the PR and the same issue now links it.
    gh.actions_may_open_prs = True
    assert "opened onboarding PR" in forge(gh, repo).onboard()
    (issue,) = gh.issues_labelled(ONBOARDING_LABEL)
    assert f"#{next(iter(gh.pulls))}" in issue["body"] and "## Budget envelope" not in issue["body"]


def test_onboarding_through_a_step_exits_0_and_spends_nothing(gh, repo):
    from mlr_action.backends.memory import InMemoryBackend
    from mlr_action.proposers.search import SearchProposer
    from mlr_action.shell.step import Step

    clock = FakeClock()
    backend = InMemoryBackend(clock=clock.seconds)
    result = Step(root=repo, backend=backend, proposer=SearchProposer(), forge=forge(gh, repo), clock=clock).run()
    assert result.exit_code == 0 and backend.jobs == {} and "onboarding PR" in result.events[0]
    assert not (repo / "runs" / "ledger.jsonl").exists()


# -- escalations -------------------------------------------------------------------


def test_escalations_are_one_issue_per_kind_edited_in_place_and_resolved(gh, repo):
    f = forge(gh, repo)
    for n in range(3):
        title, body = render_escalation(kind="invalid-program", problems=[f"problem {n}"], now=f"t{n}")
        f.publish_escalation(kind="invalid-program", title=title, body=body)
    title, body = render_escalation(kind="ledger", problems=["line 3"], now="t")
    f.publish_escalation(kind="ledger", title=title, body=body)
    issues = gh.issues_labelled(ESCALATION_LABEL)
    assert len(issues) == 2
    invalid = next(i for i in issues if "escalation:invalid-program" in i["body"])
    assert "problem 2" in invalid["body"] and "problem 0" not in invalid["body"]
    assert f.resolve_escalation(kind="invalid-program") is True
    assert f.resolve_escalation(kind="invalid-program") is False
    assert invalid["state"] == "closed" and "Resolved" in gh.comments_on(invalid["number"])[-1]["body"]
    # The problem comes back: the same issue reopens.
    f.publish_escalation(kind="invalid-program", title=title.replace("ledger", "x"), body="again")
    assert invalid["state"] == "open" and len(gh.issues_labelled(ESCALATION_LABEL)) == 2


def test_an_unchanged_escalation_is_not_rewritten_for_a_new_timestamp(gh, repo):
    f = forge(gh, repo)
    for now in ("2026-01-01T00:00:00Z", "2026-01-01T00:15:00Z"):
        title, body = render_escalation(kind="ledger", problems=["line 3"], now=now)
        f.publish_escalation(kind="ledger", title=title, body=body)
    assert [m for m, p in gh.log if m == "PATCH"] == []


def test_tokens_never_reach_github(gh, repo, monkeypatch):
    hf = "hf_" + "a" * 30
    monkeypatch.setenv("HF_TOKEN", hf)
    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    f = forge(gh, repo)
    f.publish_escalation(kind="unrecoverable-error", title=f"bad {hf}",
                         body=f"token {hf} and {gh.token} and Bearer abcdefghijklmnopqrstuvwxyz")
    f.onboard()
    assert gh.bodies and all(hf not in b and gh.token not in b for b in gh.bodies)
    assert all("abcdefghijklmnopqrstuvwxyz" not in b for b in gh.bodies)


def test_the_loopback_server_speaks_like_github(gh):
    """A guard on the fake itself, seen through PyGithub: pagination, labels, 404s."""
    from github import Auth, Github, UnknownObjectException

    client = Github(base_url=gh.base_url, auth=Auth.Token(gh.token), per_page=2,
                    seconds_between_writes=None, seconds_between_requests=None)
    repo = client.get_repo("octo/sweep")
    for n in range(5):
        repo.create_issue(title=f"t{n}", body="b", labels=["x"])
    listed = list(repo.get_issues(state="all", labels=["x"], direction="asc"))
    assert [i.title for i in listed] == [f"t{n}" for n in range(5)]
    listed[0].create_comment("hi")
    assert [c.body for c in listed[0].get_comments()] == ["hi"] and listed[0].labels[0].name == "x"
    assert repo.get_collaborator_permission(BOT) == "write"
    with pytest.raises(UnknownObjectException):
        repo.get_contents("missing.md", ref="main")
