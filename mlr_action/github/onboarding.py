"""Onboarding on GitHub: one pull request adding a drafted program.md, and one approval issue.

Guarantees (DESIGN.md section 1.2):

- Nothing is spent and nothing but onboarding happens while the default
  branch has no program.md.
- The draft goes to the branch ``mlr/onboarding`` through the git refs and
  contents APIs (the checkout and the default branch are never written), and
  an existing draft on that branch is never overwritten: it may hold a
  person's edits.
- One pull request (found by its branch, in any state) and one approval issue
  (found by label and the hidden onboarding marker) are opened, never twice:
  a merged PR waits for the next checkout, a closed one is a "no".
- When the repository does not let Actions open pull requests, the approval
  issue names the setting to change and holds the draft; once the setting is
  changed, the next tick opens the PR and the same issue is updated to link it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlr_action.github import messages as msg
from mlr_action.github.api import GitHubAPI
from mlr_action.github.api_errors import GitHubPermanentError, PullRequestsForbidden
from mlr_action.github.dashboard import clip
from mlr_action.core.redaction import redact

PROGRAM = "program.md"


def _is_onboarding(body: str) -> bool:
    return msg.ONBOARDING_MARKER in body


def onboard(api: GitHubAPI, root: Path) -> str:
    """Open (once) or follow the onboarding PR and approval issue; the line to log."""
    from mlr_action.onboard.draft import draft_program, validated

    default = api.repo.default_branch
    if api.has_file(PROGRAM, branch=default):
        return msg.program_elsewhere(default)
    draft = validated(draft_program(root), root)
    issue = next(iter(api.issues(msg.ONBOARDING_LABEL, _is_onboarding)), None)
    approval = lambda pr: msg.onboarding_issue_body(pr_number=pr.number, script=draft.script, notes=draft.notes)  # noqa: E731
    pr = api.pull_from(msg.ONBOARDING_BRANCH)
    if pr is not None:
        with api.calling(f"reading pull request #{pr.number}", msg.PULLS):
            merged, closed = pr.merged_at is not None, pr.state == "closed"
        if merged or closed:
            return msg.onboarding_status(pr=pr.number, issue=issue.number if issue else None,
                                         state="merged" if merged else "closed")
        issue = _upsert_issue(api, issue, approval(pr))
        return msg.onboarding_status(pr=pr.number, issue=issue.number, state="waiting")
    api.ensure_branch(msg.ONBOARDING_BRANCH, start=default)
    if not api.has_file(PROGRAM, branch=msg.ONBOARDING_BRANCH):
        api.create_file(PROGRAM, text=draft.text, branch=msg.ONBOARDING_BRANCH, message="mlr: draft program.md for review")
    body = msg.onboarding_pr_body(draft=draft, envelope=_envelope(draft.text, root))
    try:
        pr = api.open_pull(base=default, head=msg.ONBOARDING_BRANCH, title=msg.PR_TITLE, body=body)
    except GitHubPermanentError as exc:
        if not isinstance(exc, PullRequestsForbidden) and exc.status != 403:
            raise
        compare = f"{api.repo.html_url}/compare/{default}...{msg.ONBOARDING_BRANCH}?expand=1"
        issue = _upsert_issue(api, issue, msg.onboarding_forbidden_body(
            draft=draft.text, script=draft.script, notes=draft.notes, compare_url=compare, reason=f"403: {exc.detail}"))
        return msg.onboarding_status(pr=None, issue=issue.number, state="forbidden")
    issue = _upsert_issue(api, issue, approval(pr))
    return msg.onboarding_status(pr=pr.number, issue=issue.number, state="opened")


def close_onboarding(api: GitHubAPI, *, dashboard_number: int) -> None:
    """The campaign started: close the approval issue, pointing at the dashboard."""
    for issue in api.issues(msg.ONBOARDING_LABEL, _is_onboarding, state="open"):
        api.comment(issue, msg.onboarding_done_comment(dashboard_number))
        api.edit(issue, state="closed", state_reason="completed")


def _upsert_issue(api: GitHubAPI, issue: Any, body: str) -> Any:
    if issue is None:
        return api.create_issue(title=msg.ISSUE_TITLE, body=body, labels=[msg.ONBOARDING_LABEL])
    if issue.state == "open" and issue.body != clip(redact(body)):
        api.edit(issue, body=body)
    return issue


def _envelope(text: str, root: Path) -> str | None:
    """The drafted envelope with its worst case, as ``mlr validate`` prints it; None if the draft does not validate."""
    from mlr_action.core.program import ProgramError, parse_program
    from mlr_action.render.views import describe_envelope

    try:
        return describe_envelope(parse_program(text, root=root))
    except ProgramError:
        return None
