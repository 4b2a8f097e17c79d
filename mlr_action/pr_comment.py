"""The program.md check on a pull request: one comment with the envelope and the worst-case spend.

Guarantees:

- :func:`render_validation` is pure: the same program (or problems) and the
  same approved program give the same Markdown. It starts with
  :data:`MARKER`, says whether merging approves a budget, the worst case, and
  what changes against the envelope approved on the base branch.
- :func:`upsert_comment` keeps one comment per pull request: it finds its own
  comment by the hidden marker it starts with (written by a bot, so a person
  quoting it is never mistaken for it) and edits it in place, and
  posts a new one only when there is none. Identical text is not rewritten.
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
_ENVELOPE_DURATIONS = ("max_walltime", "max_timeout")


class CommentError(Exception):
    """The comment could not be written; the message says why and what to do."""


# --- the body (pure) --------------------------------------------------------------


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}text\n{text.rstrip()}\n{ticks}"


def _show(key: str, value: Any) -> str:
    from mlr_action.durations import format_duration

    if value is None:
        return "not set"
    if key in _ENVELOPE_DURATIONS:
        return format_duration(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def envelope_changes(old, new) -> list[str]:
    """What the new program changes in the approved envelope, one line per key, plus the worst case."""
    from mlr_action.budget import worst_case
    from mlr_action.durations import format_duration

    before, after = old.envelope.model_dump(), new.envelope.model_dump()
    lines = [f"`{k}`: {_show(k, before.get(k))} → {_show(k, after.get(k))}"
             for k in after if before.get(k) != after.get(k)]
    (w0, d0), (w1, d1) = worst_case(old.envelope), worst_case(new.envelope)
    if (w0, round(d0, 2)) != (w1, round(d1, 2)):
        lines.append(f"worst case: {format_duration(w0)} and ${d0:.2f} → {format_duration(w1)} and ${d1:.2f}")
    return lines


def render_validation(*, path: str, program=None, problems: list[str] | None = None, approved=None,
                      base: str | None = None, sha: str = "") -> str:
    """The comment for ``path``: ``program`` when it is valid, else ``problems``; ``approved`` is the base's."""
    from mlr_action.budget import worst_case
    from mlr_action.durations import format_duration
    from mlr_action.views import describe_envelope

    parts = [MARKER]
    if program is None:
        parts += [f"### ❌ `{path}` is not valid",
                  "Nothing is spent until it is fixed. Every problem, each with its fix:",
                  _fence("\n".join(f"- {p}" for p in problems or ["unknown problem"]))]
    else:
        walltime, dollars = worst_case(program.envelope)
        env = program.envelope
        parts += [f"### ✅ `{path}` is valid: merging this pull request approves this budget",
                  f"**Worst case:** at most {env.max_jobs} jobs, {format_duration(walltime)} of job walltime, "
                  f"${dollars:.2f} on the priciest allowed flavor (built-in price table, rounded up)."]
        if approved is not None:
            changes = envelope_changes(approved, program)
            where = f"`{base}`" if base else "the base branch"
            parts.append(f"**Changes to the envelope approved on {where}:**\n" + "\n".join(f"- {c}" for c in changes)
                         if changes else f"The envelope is the one already approved on {where}.")
        elif base:
            parts.append(f"`{base}` has no approved program.md yet: this is the first budget.")
        parts.append("<details><summary>Envelope and campaign</summary>\n\n" + _fence(describe_envelope(program))
                     + "\n\n</details>")
    parts.append(f"<sub>mlr-action · checked at {sha[:7] or 'this commit'} · this comment is updated in place</sub>")
    return "\n\n".join(parts) + "\n"


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


def upsert_comment(*, api_url: str, repo: str, number: int, token: str, body: str) -> str:
    """``created``, ``updated`` or ``unchanged``; raises :class:`CommentError`."""
    if not token:
        raise CommentError("no github-token, so the pull request gets no comment; the result is in the job summary")
    existing = find_comment(api_url=api_url, repo=repo, number=number, token=token)
    if existing is None:
        _request("POST", f"{api_url.rstrip('/')}/repos/{repo}/issues/{number}/comments", token, {"body": body})
        return "created"
    if existing.get("body") == body:
        return "unchanged"
    _request("PATCH", f"{api_url.rstrip('/')}/repos/{repo}/issues/comments/{existing['id']}", token, {"body": body})
    return "updated"
