"""What a GitHub Actions run is, and how to talk back to the runner: stdlib only.

Guarantees:

- :func:`spend_blockers` is pure: given the event and the refs it returns every
  reason this run must not spend (a pull request, a fork, a ref other than the
  default branch, an unknown default branch). Empty means it may spend.
- Workflow commands are escaped (``%``, CR, LF and, in properties, ``:`` and
  ``,``), so a message can never smuggle in a command of its own; output of
  the campaign (which may quote job logs) is printed between
  ``::stop-commands::`` markers with a random token.
- Outputs are written to ``$GITHUB_OUTPUT`` with a random heredoc delimiter.
- Nothing here reads a token or prints one; :func:`mask` hides a value from
  every later line of the log.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

PR_EVENTS = ("pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment",
             "merge_group")


# --- talking to the runner ----------------------------------------------------


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **properties: str) -> str:
    props = ",".join(f"{k}={_escape_property(v)}" for k, v in properties.items() if v)
    return f"::{name}{' ' + props if props else ''}::{_escape_data(message)}"


def emit(name: str, message: str = "", **properties: str) -> None:
    print(command(name, message, **properties), flush=True)


def mask(value: str | None) -> None:
    """Hide ``value`` (each of its lines) from the rest of the job's log."""
    for line in (value or "").splitlines():
        if line.strip():
            emit("add-mask", line.strip())


@contextlib.contextmanager
def stop_commands() -> Iterator[None]:
    """Print untrusted text (job logs, program.md) without the runner obeying anything in it."""
    token = secrets.token_hex(16)
    print(f"::stop-commands::{token}", flush=True)
    try:
        yield
    finally:
        print(f"::{token}::", flush=True)


def set_outputs(outputs: Mapping[str, Any], env: Mapping[str, str] | None = None) -> None:
    env = os.environ if env is None else env
    path = env.get("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        for name, value in outputs.items():
            delimiter = f"mlr_{secrets.token_hex(8)}"
            fh.write(f"{name}<<{delimiter}\n{'' if value is None else value}\n{delimiter}\n")


def append_summary(markdown: str, env: Mapping[str, str] | None = None) -> None:
    env = os.environ if env is None else env
    path = env.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(markdown.rstrip() + "\n\n")


def log(text: str = "") -> None:
    print(text, flush=True)
    sys.stdout.flush()


# --- the run --------------------------------------------------------------------


@dataclass(frozen=True)
class RunContext:
    """The ``GITHUB_*`` variables of a workflow run and its event payload."""

    event_name: str = ""
    event: dict[str, Any] = field(default_factory=dict)
    ref: str = ""
    repository: str = ""
    workspace: Path = Path(".")
    api_url: str = "https://api.github.com"
    sha: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "RunContext":
        env = os.environ if env is None else env
        event: dict[str, Any] = {}
        path = env.get("GITHUB_EVENT_PATH")
        if path:
            with contextlib.suppress(OSError, ValueError):
                loaded = json.loads(Path(path).read_text(encoding="utf-8"))
                event = loaded if isinstance(loaded, dict) else {}
        return cls(
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            event=event,
            ref=env.get("GITHUB_REF", ""),
            repository=env.get("GITHUB_REPOSITORY", ""),
            workspace=Path(env.get("GITHUB_WORKSPACE") or "."),
            api_url=(env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
            sha=env.get("GITHUB_SHA", ""),
        )

    @property
    def default_branch(self) -> str | None:
        """From the event (push, workflow_dispatch, pull_request, ...); a schedule runs on it by definition."""
        repo = self.event.get("repository")
        if isinstance(repo, dict) and repo.get("default_branch"):
            return str(repo["default_branch"])
        if self.event_name == "schedule" and self.ref.startswith("refs/heads/"):
            return self.ref.removeprefix("refs/heads/")
        return None

    @property
    def is_pull_request(self) -> bool:
        return self.event_name in PR_EVENTS

    @property
    def pr_number(self) -> int | None:
        pr = self.event.get("pull_request")
        if isinstance(pr, dict) and isinstance(pr.get("number"), int):
            return pr["number"]
        number = self.event.get("number")
        return number if self.is_pull_request and isinstance(number, int) else None

    @property
    def pr_base(self) -> str | None:
        pr = self.event.get("pull_request")
        base = pr.get("base") if isinstance(pr, dict) else None
        return str(base["ref"]) if isinstance(base, dict) and base.get("ref") else None

    def fork_of(self) -> str | None:
        """The repository this run's code comes from when that is a fork, else None."""
        repo = _dict(self.event.get("repository"))
        pr = _dict(self.event.get("pull_request"))
        head = _dict(_dict(pr.get("head")).get("repo"))
        if head and (head.get("fork") or head.get("full_name") != _dict(_dict(pr.get("base")).get("repo")).get("full_name")):
            return str(head.get("full_name") or "a fork")
        run = _dict(self.event.get("workflow_run"))
        head_repo = _dict(run.get("head_repository"))
        if head_repo and repo and head_repo.get("full_name") != repo.get("full_name"):
            return str(head_repo.get("full_name"))
        if repo.get("fork"):
            return str(repo.get("full_name") or self.repository)
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def spend_blockers(ctx: RunContext, *, default_branch: str | None, checkout_branch: str | None) -> list[str]:
    """Every reason this run must not spend; the step then runs as a dry run and says why."""
    reasons = []
    if ctx.is_pull_request:
        reasons.append(f"this run was triggered by {ctx.event_name}: a pull request never spends "
                       "(its program.md is not approved until it is merged)")
    run = _dict(ctx.event.get("workflow_run"))
    if str(run.get("event", "")).startswith("pull_request"):
        reasons.append("this run was triggered by a workflow run of a pull request, which never spends")
    fork = ctx.fork_of()
    if fork:
        reasons.append(f"the code of this run comes from the fork {fork}: a fork never spends")
    if default_branch is None:
        reasons.append("the default branch is unknown (no repository in the event and the remote did not say), "
                       "so program.md cannot be read from it")
    elif not ctx.is_pull_request:
        if ctx.ref != f"refs/heads/{default_branch}":
            reasons.append(f"this run is on {ctx.ref or 'an unknown ref'}, not on the default branch {default_branch}: "
                           "a campaign spends only from its default branch")
        elif checkout_branch != default_branch:
            reasons.append(f"the checkout is on {checkout_branch or 'a detached HEAD'}, not on the default branch "
                           f"{default_branch}: check out the default branch (actions/checkout without `ref:`)")
    return reasons
