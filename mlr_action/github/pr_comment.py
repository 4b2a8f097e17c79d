"""The pull request check's one comment, kept up to date over the REST API.

Guarantees (the body is :mod:`mlr_action.github.pr_comment_body`'s, which
starts it with :data:`MARKER`):

- :func:`upsert_comment` keeps one comment per pull request: it finds its own
  comment by the hidden marker it starts with (written by a bot, so a person
  quoting it is never mistaken for it) and edits it in place, and
  posts a new one only when there is none (and ``create`` is true).
  Identical text is not rewritten.
- It speaks the REST API with the standard library and the token it is given
  (``GITHUB_TOKEN``, ``GITHUB_API_URL``); no token ever appears in a message.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

MARKER = "<!-- mlr-action:program-validation -->"


class CommentError(Exception):
    """The comment could not be written; the message says why and what to do."""


# --- the REST API -----------------------------------------------------------------


def _request(method: str, url: str, token: str, payload: dict | None = None) -> tuple[Any, dict[str, str]]:
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "mlr-action",
        **({"Content-Type": "application/json"} if data else {}),
    })
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
            return (json.loads(body) if body else None), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403, 404):
            raise CommentError(
                f"GitHub answered {exc.code} to {method} {url.split('?')[0]}: the token may not write to this pull "
                "request. A pull request from a fork gets a read-only token, so the result is in the job summary "
                "instead; for your own branches give the workflow `permissions: pull-requests: write`"
            ) from None
        raise CommentError(f"GitHub answered {exc.code} to {method} {url.split('?')[0]}; re-run the job") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise CommentError(f"could not reach {url.split('/repos')[0]} ({exc}); re-run the job") from None


def _next_link(headers: dict[str, str]) -> str | None:
    link = next((v for k, v in headers.items() if k.lower() == "link"), "")
    match = re.search(r'<([^>]+)>;\s*rel="next"', link)
    return match.group(1) if match else None


def find_comment(*, api_url: str, repo: str, number: int, token: str) -> dict | None:
    url: str | None = f"{api_url.rstrip('/')}/repos/{repo}/issues/{number}/comments?per_page=100"
    while url:
        comments, headers = _request("GET", url, token)
        for comment in comments or []:
            user = comment.get("user") or {}
            if (comment.get("body") or "").startswith(MARKER) and user.get("type") == "Bot":
                return comment
        url = _next_link(headers)
    return None


def upsert_comment(*, api_url: str, repo: str, number: int, token: str, body: str, create: bool = True) -> str:
    """``created``, ``updated``, ``unchanged`` or ``skipped`` (none yet and not ``create``).

    Raises :class:`CommentError`.
    """
    if not token:
        raise CommentError("no github-token, so the pull request gets no comment; the result is in the job summary")
    existing = find_comment(api_url=api_url, repo=repo, number=number, token=token)
    if existing is None and not create:
        return "skipped"
    if existing is None:
        _request("POST", f"{api_url.rstrip('/')}/repos/{repo}/issues/{number}/comments", token, {"body": body})
        return "created"
    if existing.get("body") == body:
        return "unchanged"
    _request("PATCH", f"{api_url.rstrip('/')}/repos/{repo}/issues/comments/{existing['id']}", token, {"body": body})
    return "updated"
