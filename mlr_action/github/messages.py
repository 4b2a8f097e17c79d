"""What the GitHub forge says to people: onboarding texts, control replies, errors.

Commit messages of runs/ come from :func:`mlr_action.core.recording.commit_message`, for every publish.

Pure: no I/O, no clock. Kept together so the words can be read (and reviewed)
as a set; :mod:`mlr_action.github.forge` only fills them in and posts them.
Every text that may carry outside input is redacted by the caller before it
is posted, and shown through :mod:`mlr_action.core.markup` (a script name as code;
the ledger's values in a hidden marker reduced to characters that cannot end
the comment).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import NamedTuple

from mlr_action.core.markup import block, code

# --- Markers and labels (how the bot finds its own issues again) --------------

ONBOARDING_MARKER = "<!-- mlr-action:onboarding -->"
ONBOARDING_BRANCH = "mlr/onboarding"
ONBOARDING_LABEL = "mlr-onboarding"
DASHBOARD_LABEL = "mlr-dashboard"
PAUSED_LABEL = "mlr:paused"
ESCALATION_LABEL = "mlr-escalation"

LABELS: dict[str, tuple[str, str]] = {  # name -> (color, description)
    ONBOARDING_LABEL: ("0e8a16", "mlr-action: approve the campaign's budget by merging program.md"),
    DASHBOARD_LABEL: ("1d76db", "mlr-action: the campaign dashboard, edited in place by the bot"),
    PAUSED_LABEL: ("fbca04", "mlr-action: add to the dashboard issue to pause the campaign, remove to resume"),
    ESCALATION_LABEL: ("d93f0b", "mlr-action: the campaign needs a person to fix something"),
}


def escalation_marker(kind: str) -> str:
    return f"<!-- mlr-action:escalation:{kind} -->"


def stop_report_marker(stop_ts: str, reason: str) -> str:
    """The stop's time and reason (ledger values) in a hidden comment, with nothing that could end it early."""
    return f"<!-- mlr-action:stop-report {_marker_word(stop_ts)} {_marker_word(reason)} -->"


def _marker_word(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9:+._-]", "_", text)[:80]


def reply_marker(comment_ids: list[int]) -> str:
    """Says which comments a reply answers, so they are never answered twice."""
    return f"<!-- mlr-action:reply{''.join(f' {i}' for i in comment_ids)} -->"


# --- Permissions ---------------------------------------------------------------

ACTIONS_PR_SETTING = (
    'Settings > Actions > General > Workflow permissions > '
    '"Allow GitHub Actions to create and approve pull requests"'
)
CONTENTS, ISSUES, PULLS = "contents: write", "issues: write", "pull-requests: write"
_PR_FORBIDDEN = re.compile(r"not permitted to create or approve pull requests", re.I)


def is_pr_forbidden(message: str) -> bool:
    """Whether GitHub's answer says this repository does not let Actions open pull requests."""
    return bool(_PR_FORBIDDEN.search(message or ""))


def missing_settings(missing: list[str]) -> str:
    return (
        f"--forge github needs {', '.join(missing)} in the environment. In a workflow run GitHub sets "
        "GITHUB_REPOSITORY; pass the token with `env: GITHUB_TOKEN: ${{ github.token }}` (or the action's "
        "`github-token` input). Locally: `export GITHUB_TOKEN=$(gh auth token) GITHUB_REPOSITORY=owner/name`. "
        "Or use --forge none."
    )


def bad_repository(value: str) -> str:
    return f"GITHUB_REPOSITORY={value!r} is not owner/name (for example octo/sweep)"


def bad_credentials(doing: str) -> str:
    return (
        f"GitHub rejected the token (401) while {doing}. Check that the workflow passes a valid "
        "GITHUB_TOKEN (`${{ github.token }}`) or that the personal token in your secret has not expired."
    )


def forbidden(doing: str, permission: str, detail: str) -> str:
    text = (
        f"GitHub refused {doing} (403: {detail}). The token needs `{permission}`: add it to the workflow's "
        f"`permissions:` block (contents: write, issues: write, pull-requests: write)"
    )
    if permission == PULLS:
        text += f", and allow Actions to open pull requests in {ACTIONS_PR_SETTING}"
    return text + "."


def not_found(doing: str, repository: str, detail: str) -> str:
    return (
        f"GitHub answered 404 while {doing} ({detail}). Check GITHUB_REPOSITORY={repository} and "
        "GITHUB_API_URL, and that the token can see that repository."
    )


def issues_disabled(doing: str) -> str:
    return (
        f"GitHub answered 410 while {doing}: issues are disabled on this repository. Enable them in "
        "Settings > General > Features > Issues (the dashboard and reports are issues), or use --forge none."
    )


def refused(doing: str, status: int, detail: str) -> str:
    return f"GitHub refused {doing} ({status}: {detail}); retrying will not help until that is fixed."


def transient(doing: str, detail: str) -> str:
    return f"GitHub did not answer while {doing} ({detail}); the next tick retries."


# --- Onboarding ----------------------------------------------------------------

PR_TITLE = "mlr: add program.md (merging approves the campaign's budget)"
ISSUE_TITLE = "mlr: approve the campaign's budget"


def _fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _envelope_block(envelope: str | None) -> list[str]:
    if not envelope:
        return []
    return ["### The budget you approve by merging", "", "The worst case included, as `mlr validate` prints it:", "",
            block(envelope), ""]


def _notes(notes: list[str]) -> list[str]:
    if not notes:
        return []
    return ["**Check these before merging:**", "", *[f"- {n}" for n in notes], ""]


def onboarding_pr_body(*, draft, envelope: str | None) -> str:
    """The pull request: what merging approves, what was read from the repository and why, what to check."""
    from mlr_action.onboard.onboarding_body import inferred

    lines = [
        ONBOARDING_MARKER,
        "This pull request adds a `program.md` drafted by mlr-action for the training script "
        f"{code(draft.script)} it found in this repository. The search space, the metric and its direction were "
        "read from the script (never run); each is shown below with where it came from.",
        "",
        "**Merging it is the approval to spend.** Until it is merged nothing is submitted and nothing is "
        "spent. Edit the `## Budget envelope` and `## Campaign` blocks on this branch first (limits, "
        "flavors, the search space, the metric and its target), then merge.",
        "",
        *inferred(draft),
        *_envelope_block(envelope),
        *_notes(draft.notes),
        "After the merge, each scheduled tick runs one step and a dashboard issue follows the campaign. "
        "The bot never writes `program.md` on the default branch: to change the budget later, merge another "
        "pull request.",
        "",
        "Note: pull requests opened with the workflow's `GITHUB_TOKEN` do not start other workflows, so a "
        "`program.md` check may not run here until you push a commit to this branch.",
    ]
    return "\n".join(lines) + "\n"


def onboarding_issue_body(*, pr_number: int, script: str, notes: list[str]) -> str:
    lines = [
        ONBOARDING_MARKER,
        f"mlr-action is installed but has no `program.md` yet, so it has spent nothing. Pull request #{pr_number} "
        f"adds a drafted one (training script {code(script)}).",
        "",
        "To approve the campaign:",
        "",
        f"1. Review #{pr_number}: adjust the budget envelope (`max_jobs`, `max_walltime`, `max_cost_usd`, "
        "`allowed_flavors`) and the campaign (metric, target, search space).",
        f"2. Merge #{pr_number}. Merging is the approval to spend; the next tick starts the campaign and "
        "opens a dashboard issue, and this issue is closed.",
        "",
        *_notes(notes),
        f"To say no, close #{pr_number}: nothing is spent and the bot does not open it again.",
    ]
    return "\n".join(lines) + "\n"


def onboarding_forbidden_body(
    *, draft: str, script: str, notes: list[str], compare_url: str, reason: str
) -> str:
    fence = _fence(draft)
    lines = [
        ONBOARDING_MARKER,
        "mlr-action is installed but has no `program.md` yet, so it has spent nothing. It tried to open a pull "
        f"request adding a drafted one, but GitHub refused: {reason}",
        "",
        "**To let the bot open the pull request**, change this repository setting:",
        "",
        f"> {ACTIONS_PR_SETTING}",
        "",
        "and make sure the workflow has `permissions: pull-requests: write`. The next tick then opens it.",
        "",
        f"**Or open it yourself:** the branch `{ONBOARDING_BRANCH}` already holds the draft: {compare_url}",
        "",
        "**Or add it by hand:** commit this draft as `program.md` on the default branch (edit it first). "
        f"It names the training script {code(script)}. Merging it is the approval to spend.",
        "",
        *_notes(notes),
        "<details><summary>The drafted program.md</summary>",
        "",
        f"{fence}markdown",
        draft.rstrip("\n"),
        fence,
        "",
        "</details>",
    ]
    return "\n".join(lines) + "\n"


def onboarding_done_comment(dashboard_number: int) -> str:
    return (
        f"`program.md` is on the default branch: the budget is approved and the campaign has started. "
        f"Follow it on the dashboard, #{dashboard_number}."
    )


def onboarding_status(*, pr: int | None, issue: int | None, state: str) -> str:
    """The one line ``onboard()`` returns (it ends up in the workflow log)."""
    if state == "merged":
        return f"onboarding PR #{pr} is merged: the next tick (with program.md checked out) starts the campaign"
    if state == "closed":
        return f"onboarding PR #{pr} was closed without merging: nothing is spent until a program.md is merged"
    if state == "forbidden":
        return (f"no program.md; GitHub does not let Actions open pull requests here, so issue #{issue} holds "
                f"the draft and the setting to change ({ACTIONS_PR_SETTING}); nothing was spent")
    if state == "opened":
        return f"no program.md: opened onboarding PR #{pr} and approval issue #{issue}; nothing is spent until it is merged"
    return f"waiting for onboarding PR #{pr} to be merged (approval issue #{issue}); nothing was spent"


def program_elsewhere(branch: str) -> str:
    return (
        f"program.md is on the default branch ({branch}) but not in this checkout: run the step on a checkout "
        "of the default branch; nothing was spent"
    )


# --- Controls --------------------------------------------------------------------


REPLY_LINES = 10  # a reply names at most this many ignored things (each @-mention notifies someone)


class Ignored(NamedTuple):
    """A control someone without write access made (or that nobody can be shown to have made)."""

    what: str  # "closed", "checked the pause box on", ...
    by: tuple[str, ...]  # the people GitHub names without write access; () when it names nobody
    times: int = 1  # how often since the last tick

    def describe(self) -> str:
        who = " and ".join(f"@{login}" for login in self.by) if self.by else "someone GitHub does not name"
        return f"{who} {self.what}"

    def line(self, where: str) -> str:
        """``@tri closed <where> (3 times)``."""
        return f"{self.describe()} {where}" + (f" ({self.times} times)" if self.times > 1 else "")


def ignored_command(login: str, verb: str) -> str:
    return (
        f"@{login} only people with write access to this repository can {verb} the campaign, "
        f"so this `/mlr {verb}` was ignored."
    )


def ignored_reply(commands: list[tuple[int, str, str]], controls: list[Ignored]) -> str:
    """The one reply of a tick to everything ignored: ``commands`` are ``(comment id, login, verb)``."""
    if len(commands) == 1 and not controls:
        text = ignored_command(commands[0][1], commands[0][2])
    else:
        counts = Counter((login, verb) for _, login, verb in commands)
        lines = [f"- `/mlr {verb}` from @{login}" + (f" ({n} times)" if n > 1 else "") for (login, verb), n in counts.items()]
        lines += [f"- {item.line('this issue')}" for item in controls]
        if len(lines) > REPLY_LINES:
            lines = [*lines[:REPLY_LINES], f"- and {len(lines) - REPLY_LINES} more"]
        text = ("Only people with write access to this repository can pause, resume or stop the campaign, "
                "so this was ignored:\n\n" + "\n".join(lines) + "\n\nThis issue shows the campaign's state again.")
    return text + "\n\n" + reply_marker([comment_id for comment_id, _, _ in commands])


def escalation_resolved() -> str:
    return "Resolved: the last step ran without this problem, so this issue is closed. It reopens if the problem comes back."
