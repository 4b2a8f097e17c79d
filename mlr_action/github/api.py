"""The GitHub REST seam: PyGithub calls, with their errors translated.

The only module that imports PyGithub (lazily: building a client costs an
import, making it costs no request); its settings and errors are in
:mod:`mlr_action.github.api_errors`. Guarantees:

- Requests time out; idempotent methods are retried a bounded number of times
  on a 5xx (never a POST, which could open an issue twice); a rate limit is
  never slept on: it is transient, and the next tick retries.
- Every PyGithub or network error raised inside :meth:`GitHubAPI.calling`
  leaves as a :class:`GitHubTransientError` (network, 5xx, rate limits) or a
  :class:`GitHubPermanentError` that names the permission or setting to fix;
  both are the job backends' Transient/PermanentError, so the step maps them
  to exit 1 and to an escalation.
- Every title, body and comment written passes :func:`~mlr_action.core.redaction.redact`
  and is clipped below GitHub's size limit.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from mlr_action.github import messages as msg
from mlr_action.github.api_errors import GitHubPermanentError, GitHubTransientError, Settings, translate
from mlr_action.github.dashboard import clip
from mlr_action.core.redaction import redact

WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})


_ACTOR = "actor { __typename login }"
_TIMELINE = """timeline: timelineItems(%(range)s, itemTypes: [CLOSED_EVENT, REOPENED_EVENT, LABELED_EVENT, UNLABELED_EVENT]) {
        pageInfo { endCursor hasNextPage }
        nodes { __typename ... on ClosedEvent { %(actor)s } ... on ReopenedEvent { %(actor)s }
                ... on LabeledEvent { %(actor)s label { name } } ... on UnlabeledEvent { %(actor)s label { name } } }
      }"""
_EDITS = """head: userContentEdits(first: %(n)d) { totalCount nodes { id editedAt editor { __typename login } } }
      tail: userContentEdits(last: %(n)d) { totalCount nodes { id editedAt editor { __typename login } } }"""
_HISTORY = """query($owner: String!, $name: String!, $number: Int!%(after_var)s) {
  repository(owner: $owner, name: $name) {
    issue(number: $number) {
      %(parts)s
    }
  }
}"""
_REVISIONS = "query($ids: [ID!]!) { nodes(ids: $ids) { ... on UserContentEdit { id diff } } }"
_EVENT_KINDS = {"ClosedEvent": "closed", "ReopenedEvent": "reopened", "LabeledEvent": "labeled", "UnlabeledEvent": "unlabeled"}


@dataclass(frozen=True)
class HistoryPage:
    """One read of an issue's history: close, reopen and label events, and (when asked) its body's edits."""

    events: list[tuple[str, str, str]]  # ``(event, actor login, label name)``, oldest first
    cursor: str | None  # where the next read starts; None when nothing came after ``after``
    more: bool  # there are more events after this page
    edits: list[list[tuple[str, str, str]]]  # the first and the last edits ``(id, edited_at, editor)``
    total_edits: int


def _editor(actor: Any) -> str:
    if not isinstance(actor, dict) or not actor.get("login"):
        return ""  # a deleted account, or GitHub does not say
    login = str(actor["login"])
    return f"{login}[bot]" if actor.get("__typename") == "Bot" and not login.endswith("[bot]") else login


class GitHubAPI:
    """One repository through PyGithub, with every call's errors translated."""

    def __init__(self, settings: Settings, *, throttle: bool = True, timeout: int = 15, retries: int = 2,
                 backoff: float = 0.5):
        try:
            from github import Auth, Github
        except ModuleNotFoundError:
            raise ValueError("--forge github needs PyGithub (pip install 'mlr-action[github]'), or use --forge none") from None
        from urllib3.util.retry import Retry

        self.settings = settings
        retry = Retry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=backoff,
                      status_forcelist=(500, 502, 503, 504), allowed_methods=frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
                      raise_on_status=False, respect_retry_after_header=False)
        # GitHub asks integrations to space out writes (secondary rate limits); tests on loopback need not.
        spacing = {} if throttle else {"seconds_between_requests": None, "seconds_between_writes": None}
        self.github = Github(base_url=settings.api_url, auth=Auth.Token(settings.token), timeout=timeout,
                             retry=retry, per_page=100, user_agent="mlr-action", **spacing)
        self._repo: Any = None

    @contextlib.contextmanager
    def calling(self, doing: str, needs: str = msg.ISSUES) -> Iterator[None]:
        """Translate what goes wrong while ``doing`` (which needs the permission ``needs``)."""
        import requests
        from github import GithubException

        try:
            yield
        except GithubException as exc:
            raise translate(exc, doing=doing, needs=needs, repository=self.settings.repository) from None
        except requests.exceptions.RequestException as exc:
            raise GitHubTransientError(msg.transient(doing, f"cannot reach {self.settings.api_url}: {type(exc).__name__}")) from None

    @property
    def repo(self) -> Any:
        if self._repo is None:
            with self.calling(f"reading the repository {self.settings.repository}", msg.CONTENTS):
                self._repo = self.github.get_repo(self.settings.repository)
        return self._repo

    # -- issues -----------------------------------------------------------------

    def issues(self, label: str, marked: Callable[[str], bool], state: str = "all") -> list[Any]:
        """Issues with ``label`` whose body ``marked`` accepts, oldest first."""
        with self.calling(f"listing the issues labelled {label}"):
            issues = self.repo.get_issues(state=state, labels=[label], sort="created", direction="asc")
            return [i for i in issues if marked(i.body or "")]

    def create_issue(self, *, title: str, body: str, labels: list[str], also: tuple[str, ...] = ()) -> Any:
        """Open an issue; ``also`` names labels to create (with descriptions) without setting them."""
        self.ensure_labels([*dict.fromkeys([*labels, *also])])
        with self.calling(f"opening the issue {title!r}"):
            return self.repo.create_issue(title=redact(title), body=clip(redact(body)), labels=labels)

    def get_body(self, number: int) -> str:
        with self.calling(f"reading issue #{number}"):
            return self.repo.get_issue(number).body or ""

    def edit(self, issue: Any, **changes: Any) -> None:
        if "body" in changes:
            changes["body"] = clip(redact(changes["body"]))
        if "title" in changes:
            changes["title"] = redact(changes["title"])
        with self.calling(f"editing issue #{issue.number}"):
            issue.edit(**changes)

    def comment(self, issue: Any, text: str) -> Any:
        with self.calling(f"commenting on issue #{issue.number}"):
            return issue.create_comment(clip(redact(text)))

    def edit_comment(self, comment: Any, text: str) -> None:
        with self.calling("editing a comment"):
            comment.edit(clip(redact(text)))

    def set_label(self, issue: Any, name: str, present: bool) -> None:
        from github import UnknownObjectException

        with self.calling(f"labelling issue #{issue.number}"):
            try:
                issue.add_to_labels(name) if present else issue.remove_from_labels(name)
            except UnknownObjectException:
                if present:
                    raise  # removing a label someone removed meanwhile is done

    def _graphql(self, doing: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The ``data`` of a GraphQL answer; errors in it are a refusal (GitHubPermanentError)."""
        with self.calling(doing):
            requester = self.repo._requester  # PyGithub has no GraphQL call common to the versions we support
            _, data = requester.requestJsonAndCheck("POST", requester.graphql_url,
                                                    input={"query": query, "variables": variables})
        data = data if isinstance(data, dict) else {}
        if data.get("errors") or not isinstance(data.get("data"), dict):
            detail = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                               for e in data.get("errors") or []) or "no data"
            raise GitHubPermanentError(msg.refused(doing, 200, redact(detail)[:300]), 200, detail)
        return data["data"]

    def history(self, number: int, *, after: str | None, newest: bool = False, edits: bool = True,
                count: int = 100, edit_count: int = 50) -> HistoryPage:
        """The issue's close, reopen and label events after the cursor ``after`` (from the first with None), or
        the ``newest`` ones, ``count`` at most; with ``edits``, the first and the last ``edit_count`` edits of its
        body as ``(id, edited_at, editor login)`` and how many there are (GraphQL ``timelineItems`` and
        ``userContentEdits``; apps get their REST login, ``name[bot]``)."""
        doing = f"reading the history of issue #{number}"
        variables: dict[str, Any] = {"owner": self.settings.owner, "name": self.settings.repository.split("/")[1],
                                     "number": number}
        if newest:
            span, after_var = f"last: {count}", ""
        else:
            span, after_var = f"first: {count}, after: $after", ", $after: String"
            variables["after"] = after or None
        parts = _TIMELINE % {"range": span, "actor": _ACTOR}
        if edits:
            parts += "\n      " + _EDITS % {"n": edit_count}
        data = self._graphql(doing, _HISTORY % {"after_var": after_var, "parts": parts}, variables)
        issue = (data.get("repository") or {}).get("issue")
        if not isinstance(issue, dict):
            raise GitHubPermanentError(msg.refused(doing, 200, "no issue"))
        timeline = issue.get("timeline") or {}
        events = []
        for node in timeline.get("nodes") or []:
            kind = _EVENT_KINDS.get((node or {}).get("__typename", ""))
            if kind:
                events.append((kind, _editor(node.get("actor")), str((node.get("label") or {}).get("name") or "")))
        info = timeline.get("pageInfo") or {}
        chunks, total = [], 0
        for part in (issue.get("head") or {}, issue.get("tail") or {}) if edits else ():
            total = max(total, int(part.get("totalCount") or 0))
            chunks.append([(str(n.get("id")), str(n.get("editedAt") or ""), _editor(n.get("editor")))
                           for n in part.get("nodes") or [] if n])
        cursor = info.get("endCursor")
        return HistoryPage(events=events, cursor=str(cursor) if cursor else None, more=bool(info.get("hasNextPage")),
                           edits=chunks, total_edits=total)

    def revisions(self, number: int, ids: list[str]) -> dict[str, str | None]:
        """The text of the body after each of the edits ``ids`` (GraphQL ``UserContentEdit.diff``, which holds the
        whole body); None for one GitHub does not give (a deleted revision)."""
        if not ids:
            return {}
        data = self._graphql(f"reading the edits of issue #{number}", _REVISIONS, {"ids": ids})
        texts: dict[str, str | None] = {i: None for i in ids}
        for node in data.get("nodes") or []:
            if isinstance(node, dict) and node.get("id") in texts and isinstance(node.get("diff"), str):
                texts[str(node["id"])] = node["diff"]
        return texts

    def ensure_labels(self, names: list[str]) -> None:
        from github import GithubException, UnknownObjectException

        for name in names:
            color, description = msg.LABELS.get(name, ("ededed", ""))
            with self.calling(f"creating the label {name}"):
                try:
                    self.repo.get_label(name)
                except UnknownObjectException:
                    try:
                        self.repo.create_label(name, color, description)
                    except GithubException as exc:
                        if exc.status != 422:  # 422: someone created it meanwhile
                            raise

    def can_write(self, login: str) -> bool:
        """Whether ``login`` has write access (admin, maintain or write); nobody and apps never have."""
        from github import UnknownObjectException

        if not login or login.endswith("[bot]"):
            return False
        with self.calling(f"reading the permission of @{login}", msg.CONTENTS):
            try:
                return self.repo.get_collaborator_permission(login) in WRITE_PERMISSIONS
            except UnknownObjectException:
                return False

    # -- contents and refs --------------------------------------------------------

    def has_file(self, path: str, *, branch: str) -> bool:
        from github import UnknownObjectException

        with self.calling(f"reading {path} on {branch}", msg.CONTENTS):
            try:
                self.repo.get_contents(path, ref=branch)
            except UnknownObjectException:
                return False
        return True

    def ensure_branch(self, branch: str, *, start: str) -> None:
        """``branch`` exists, made at the tip of ``start`` if it did not (git refs API, no checkout)."""
        from github import UnknownObjectException

        with self.calling(f"creating the branch {branch}", msg.CONTENTS):
            try:
                self.repo.get_git_ref(f"heads/{branch}").object.sha
            except UnknownObjectException:
                sha = self.repo.get_git_ref(f"heads/{start}").object.sha
                self.repo.create_git_ref(f"refs/heads/{branch}", sha)

    def create_file(self, path: str, *, text: str, branch: str, message: str) -> None:
        with self.calling(f"committing {path} to {branch}", msg.CONTENTS):
            self.repo.create_file(path, message, text, branch=branch)

    # -- pull requests ----------------------------------------------------------------

    def pull_from(self, branch: str) -> Any:
        """The newest pull request from ``branch`` in any state, or None."""
        with self.calling(f"listing the pull requests from {branch}", msg.PULLS):
            return next(iter(self.repo.get_pulls(state="all", head=f"{self.settings.owner}:{branch}")), None)

    def open_pull(self, *, base: str, head: str, title: str, body: str) -> Any:
        with self.calling(f"opening a pull request from {head}", msg.PULLS):
            return self.repo.create_pull(base=base, head=head, title=redact(title), body=clip(redact(body)))
