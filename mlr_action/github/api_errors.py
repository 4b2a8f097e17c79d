"""The GitHub seam's words, without PyGithub: its settings, its errors, and who wrote an issue or comment.

Guarantees:

- :meth:`Settings.from_env` reads ``GITHUB_TOKEN``, ``GITHUB_REPOSITORY`` and
  ``GITHUB_API_URL`` (default ``https://api.github.com``); a missing or
  malformed one is a ValueError that says how to set it.
- :func:`translate` turns a PyGithub ``GithubException`` (read by duck typing:
  this module imports no SDK) into a :class:`GitHubTransientError` (5xx,
  408/409, rate limits) or a :class:`GitHubPermanentError` that names the
  permission or setting to fix; both are the job backends'
  Transient/PermanentError. GitHub's own words in them are redacted and cut to
  300 characters.
- :func:`login_of` and :func:`is_bot` read the listed JSON only: no request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from mlr_action.core.jobs import PermanentError, TransientError
from mlr_action.github import messages as msg
from mlr_action.core.redaction import redact

DEFAULT_API_URL = "https://api.github.com"
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")



class GitHubTransientError(TransientError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class GitHubPermanentError(PermanentError):
    def __init__(self, message: str, status: int | None = None, detail: str = ""):
        super().__init__(message)
        self.status = status
        self.detail = detail  # GitHub's own words


class PullRequestsForbidden(GitHubPermanentError):
    """The repository does not let GitHub Actions open pull requests."""


@dataclass(frozen=True)
class Settings:
    token: str
    repository: str
    api_url: str = DEFAULT_API_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        missing = [name for name in ("GITHUB_TOKEN", "GITHUB_REPOSITORY") if not env.get(name)]
        if missing:
            raise ValueError(msg.missing_settings(missing))
        repository = env["GITHUB_REPOSITORY"].strip()
        if not _REPOSITORY.match(repository):
            raise ValueError(msg.bad_repository(repository))
        return cls(token=env["GITHUB_TOKEN"], repository=repository,
                   api_url=(env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"))

    @property
    def owner(self) -> str:
        return self.repository.split("/")[0]


def _detail(exc: Any) -> str:
    data = exc.data
    if isinstance(data, dict):
        errors = [(e.get("message") or e.get("code") or "") if isinstance(e, dict) else str(e) for e in data.get("errors") or []]
        text = "; ".join(t for t in [str(data.get("message") or ""), *errors] if t)
    else:
        text = str(data or exc.message or "")
    return redact(" ".join(text.split()))[:300] or "no message"


def translate(exc: Any, *, doing: str, needs: str, repository: str) -> Exception:
    """A PyGithub ``GithubException`` as a transient or permanent error that says what to do."""
    status = exc.status or 0
    detail = _detail(exc)
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    rate_limited = status == 429 or (status == 403 and (
        "rate limit" in detail.lower() or headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers))
    if rate_limited:
        return GitHubTransientError(msg.transient(doing, f"rate limited, {status}: {detail}"), status)
    if status >= 500 or status in (408, 409):
        return GitHubTransientError(msg.transient(doing, f"{status}: {detail}"), status)
    if status == 401:
        return GitHubPermanentError(msg.bad_credentials(doing), status)
    if status in (403, 422) and msg.is_pr_forbidden(detail):
        return PullRequestsForbidden(msg.forbidden(doing, msg.PULLS, detail), status, detail)
    if status == 403:
        return GitHubPermanentError(msg.forbidden(doing, needs, detail), status, detail)
    if status == 404:
        return GitHubPermanentError(msg.not_found(doing, repository, detail), status)
    if status == 410:
        return GitHubPermanentError(msg.issues_disabled(doing), status)
    return GitHubPermanentError(msg.refused(doing, status, detail), status)


def login_of(item: Any) -> str:
    """Who wrote an issue or comment (in the listed JSON already: no request)."""
    return item.user.login if item.user else ""


def is_bot(item: Any) -> bool:
    """Whether an app (a ``[bot]`` account) wrote an issue or comment."""
    return bool(item.user) and (item.user.type == "Bot" or item.user.login.endswith("[bot]"))

