"""The ``github`` forge: onboarding PR, one dashboard issue with controls, stop reports and escalations.

Imported only when ``--forge github`` is asked for; PyGithub is behind
:mod:`mlr_action.github.api`, the onboarding in
:mod:`mlr_action.github.onboarding`, and what the dashboard shows and
what its controls mean in the pure :mod:`mlr_action.github.dashboard`.
Guarantees:

- Configuration comes from the environment (``GITHUB_TOKEN``,
  ``GITHUB_REPOSITORY``, ``GITHUB_API_URL``); constructing the forge makes no
  request. GitHub errors leave as Transient/PermanentError that name the fix.
- One dashboard issue, found by label and marker, is created once and edited
  in place, only when its body, its pause label or its open/closed state must
  change, and only an issue the bot (an app) or someone with write access
  opened is taken for it. Its controls become ledger rows through
  :mod:`mlr_action.github.controls`, which counts only what people with
  write access are shown to have done: every tick reads, in one GraphQL query,
  the issue's close, reopen and label events since the cursor its hidden
  marker keeps and the list of its body's edits (the texts of the edits
  since the last read only when someone other than the bot made one), so a
  writer's change counts even when someone else undid it before the tick; a
  command's author comes from the comment. What else changed (a control
  nobody with write access made) is set back to the campaign's state; what
  writers changed is never overwritten by the bot (a click during a step
  counts next tick). The marker is taken from the bot's own last write of
  the body when someone else edited the body since.
- People without write access get at most one reply per tick; a reply that
  fails (403, 5xx, a rate limit) is noted in the step's events and never
  aborts the tick.
- ``finish_step`` first hands ``runs/`` to the git sync (when it is
  installed), so a GitHub outage never loses ledger rows; then it refreshes
  the dashboard, posts the stop report (held by ``publish_stop_report`` until
  then) once per stop as a dashboard comment, and closes the escalations
  whose cause is gone.
- Escalations are one issue per kind, edited in place (not for a new
  timestamp alone), reopened when the problem returns and closed by
  :meth:`GitHubForge.resolve_escalation`.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from mlr_action.github import messages as msg
from mlr_action.github.api import (  # noqa: F401  (re-exported for callers and tests)
    GitHubAPI,
    GitHubPermanentError,
    GitHubTransientError,
    PullRequestsForbidden,
    Settings,
    is_bot,
    login_of,
)
from mlr_action.github.controls import control_rows, logins_to_check, read_dashboard
from mlr_action.github.history import (
    BOX,
    CLOSE,
    EVENTS_LIMIT,
    LABEL,
    BodyHistory,
    asked,
    body_editors,
    body_history,
    box_changes,
    event_actors,
    timeline_changes,
)
from mlr_action.github.dashboard import (
    DASHBOARD_MARKER,
    Dashboard,
    Shown,
    clip,
    dashboard_title,
    is_dashboard,
    read_checkbox,
    read_shown,
    render_dashboard,
    shown_for,
)
from mlr_action.github.onboarding import close_onboarding, onboard
from mlr_action.core.ledger import EventRow
from mlr_action.core.recording import commit_message
from mlr_action.core.redaction import redact

_FOOTER = re.compile(r"^<sub>mlr-action · .*</sub>$", re.M)
_ESCALATION = re.compile(r"<!-- mlr-action:escalation:([a-z0-9-]+) -->")


@dataclass
class _Tick:
    """What one step learned of the dashboard, and what it holds until ``finish_step``."""

    dashboard: Any = None  # the PyGithub Issue
    dash: Dashboard | None = None
    comments: list[Any] = field(default_factory=list)
    seen: int = 0
    report: tuple[str, str] | None = None
    published: set[str] = field(default_factory=set)
    writers: dict[str, bool] = field(default_factory=dict)  # login -> has write access, asked once a tick
    notes: list[str] = field(default_factory=list)  # for the step's events: what was ignored, what failed
    events: str | None = None  # where the issue's events were read to, for the marker
    edit: str | None = None  # the newest edit of the body read, for the marker
    advance: bool = False  # someone else than the bot changed something: the marker must say how far it was read
    texts: dict[str, str | None] = field(default_factory=dict)  # the body after each edit, as far as fetched


BOX_REVISIONS = 20  # texts of the body fetched at most to tell who changed the box; beyond, every editor must write


def _lf(text: str | None) -> str:
    """Bodies edited in the web UI come back with CRLF line ends."""
    return (text or "").replace("\r\n", "\n")


def _whole_body(text: str | None) -> bool:
    """Whether an edit's text is a whole dashboard body, as GitHub gives it (``diff`` holds the body after the edit)."""
    return bool(text) and text.lstrip().startswith(DASHBOARD_MARKER)  # type: ignore[union-attr]


def _box_ids(shown: Shown, body: BodyHistory) -> list[str]:
    """The edits whose text tells who changed the box: the last one read, and those after it (when few)."""
    since = body.since or ()
    if len(since) > BOX_REVISIONS:
        return []
    return ([shown.edit] if shown.edit else []) + [edit_id for edit_id, _, _ in since]


def publish_runs_with_gitsync(root: Path, *, message: str) -> None:
    """Commit and push ``runs/`` through :mod:`mlr_action.github.gitsync`; nothing when that module is absent."""
    try:
        gitsync = importlib.import_module("mlr_action.github.gitsync")
    except ModuleNotFoundError as exc:
        if exc.name != "mlr_action.github.gitsync":
            raise
        return
    gitsync.publish_runs(root, message=message)


class GitHubForge:
    """Reports, dashboard and controls on the GitHub repository named by ``GITHUB_REPOSITORY``."""

    name = "github"
    onboards = True  # a missing program.md is handled (the onboarding PR), not an error

    def __init__(
        self,
        root: Path,
        *,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
        publish_runs: Callable[..., Any] = publish_runs_with_gitsync,
        throttle: bool = True,
        timeout: int = 15,
        retries: int = 2,
        backoff: float = 0.5,
    ):
        self.root = Path(root)
        self.settings = Settings.from_env(os.environ if env is None else env)
        self.api = GitHubAPI(self.settings, throttle=throttle, timeout=timeout, retries=retries, backoff=backoff)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.publish_runs = publish_runs
        self._tick = _Tick()

    def onboard(self) -> str:
        """No program.md here: open the onboarding PR and approval issue once, then wait for the merge."""
        self._tick = _Tick()
        return onboard(self.api, self.root)

    # -- controls -----------------------------------------------------------------

    def read_controls(self, *, state: Any) -> list[EventRow]:
        """The rows the dashboard's controls ask for (see :mod:`mlr_action.github.controls`)."""
        self._tick = tick = _Tick()
        issue = self._find_dashboard()
        if issue is None:
            return []
        tick.dashboard = issue
        with self.api.calling(f"reading the dashboard issue #{issue.number}"):
            tick.comments = list(issue.get_comments()) if issue.comments else []
            dash = read_dashboard(
                number=issue.number, body=_lf(issue.body), open=issue.state == "open",
                labels=[label.name for label in issue.labels],
                comments=[(c.id, login_of(c), _lf(c.body)) for c in tick.comments], bot=login_of(issue))
        tick.dash = dash = self._history(issue, dash, state)
        writers = {login for login in logins_to_check(dash, state) if self._can_write(login)}
        controls = control_rows(dash, state, writers=writers, ts=self.clock().isoformat(timespec="seconds"))
        tick.seen = controls.seen
        tick.notes += controls.ignored
        if controls.reply is not None:
            try:
                self.api.comment(issue, controls.reply)
            except (GitHubTransientError, GitHubPermanentError) as exc:  # the controls that count still do
                tick.notes.append(f"could not reply on the dashboard issue #{issue.number}: {exc}")
        return controls.rows

    def _find_dashboard(self) -> Any:
        """The oldest labelled, marked issue that the bot or someone with write access opened."""
        for issue in self.api.issues(msg.DASHBOARD_LABEL, is_dashboard):
            if is_bot(issue) or self._can_write(login_of(issue)):
                return issue
        return None

    def _can_write(self, login: str) -> bool:
        if login not in self._tick.writers:
            self._tick.writers[login] = self.api.can_write(login)
        return self._tick.writers[login]

    def _history(self, issue: Any, dash: Dashboard, state: Any) -> Dashboard:
        """The dashboard with the changes since the bot last read the issue (see github_controls)."""
        tick = self._tick
        if dash.shown is None:
            return dash  # the marker is gone: only comments count, and the next marker starts the history anew
        tick.events, tick.edit = dash.shown.events, dash.shown.edit
        try:
            return self._read_history(issue, dash, state)
        except GitHubPermanentError as exc:  # nobody can be shown to have made anything: it does not count
            tick.events, tick.edit, tick.advance = dash.shown.events, dash.shown.edit, False  # read it next tick
            tick.notes.append(f"could not tell who changed the dashboard issue #{issue.number}: {exc}")
            return dash

    def _read_history(self, issue: Any, dash: Dashboard, state: Any) -> Dashboard:
        tick, number, bot = self._tick, issue.number, dash.bot
        shown = dash.shown
        assert shown is not None
        page = self._first_page(number, shown)
        if page is None:  # GitHub no longer takes the cursor: compare with what was shown, and start anew from here
            shown = replace(shown, events=None)
            dash = replace(dash, shown=shown)
            page = self.api.history(number, after=None, newest=True)
        body = body_history(page.edits, total=page.total_edits, bot=bot, since=shown.edit)
        if body.others_after_bot and body.bot_last:
            text = self._texts(number, [body.bot_last, *_box_ids(shown, body)]).get(body.bot_last)  # one query
            own = read_shown(text) if _whole_body(text) else None
            if own is not None and own != shown:  # someone else rewrote the marker: the bot's word is its own write
                tick.notes.append(f"ignored: a change of the hidden marker of the dashboard issue #{number} "
                                  "by someone other than the bot")
                tick.advance = True
                dash = replace(dash, shown=own)
                if own.events != shown.events:
                    page = self.api.history(number, after=own.events, newest=own.events is None)
                shown = own
                body = body_history(page.edits, total=page.total_edits, bot=bot, since=shown.edit)
        first, events, cursor = page, list(page.events), page.cursor
        while page.more and shown.events is not None and len(events) < EVENTS_LIMIT:
            page = self.api.history(number, after=cursor, edits=False)
            events += page.events
            cursor = page.cursor or cursor
        if page.more and shown.events is not None:
            tick.notes.append(f"read {len(events)} changes of the dashboard issue #{number}: the rest next tick")
        tick.events = cursor or ("" if shown.events is None else shown.events)
        tick.edit = body.newest  # edits GitHub no longer lists back to the last one read: compared with what was shown
        tick.advance |= shown.events is None or shown.edit is None or any(actor != bot for _, actor, _ in events)
        tick.advance |= any(editor != bot for _, _, editor in body.since or ())

        wanted = asked(dash, state)
        made: dict[str, tuple[str, ...]] = {}
        changes = {}
        if shown.events is None:  # no cursor yet: who made what differs from what the bot showed (the newest event)
            if wanted - {BOX}:
                made.update(event_actors(reversed(events), wanted=wanted, dash=dash))
        else:
            found = timeline_changes(events)
            changes = {control: tuple(c for c in found if c.control == control) for control in (CLOSE, LABEL)}
        box = self._box_changes(issue, shown, body)
        if box is not None:
            changes[BOX] = tuple(box)
        elif BOX in wanted:
            made[BOX] = body_editors(first.edits, total=first.total_edits, bot=bot, kept=shown.kept)
        return replace(dash, made_by=made, changes=changes)

    def _first_page(self, number: int, shown: Shown) -> Any:
        """The history after the marker's cursor; None when GitHub answers that it does not take that cursor."""
        try:
            return self.api.history(number, after=shown.events, newest=shown.events is None)
        except GitHubPermanentError as exc:
            if not shown.events or exc.status != 200:  # a refusal of the request itself, not of the cursor
                raise
            self._tick.notes.append(f"GitHub did not take where the history was read to on the dashboard issue "
                                    f"#{number} ({exc.detail[:100]}): compared with what the bot showed instead")
            return None

    def _box_changes(self, issue: Any, shown: Shown, body: BodyHistory) -> list[Any] | None:
        """Who checked or unchecked the box since the last read; None when that cannot be told."""
        since = body.since
        if since is None or len(since) > BOX_REVISIONS:
            return None
        if all(editor == login_of(issue) for _, _, editor in since):
            # Only the bot's own writes: an app's mirror the campaign's state. A person's token runs the bot:
            # their clicks carry its login, and every editor since the bot's last write decides instead.
            return [] if is_bot(issue) else None
        ids = _box_ids(shown, body)
        texts = self._texts(issue.number, ids)
        if not all(_whole_body(texts.get(i)) for i in ids if texts.get(i) is not None):
            return None  # not the whole body after each edit (as GitHub gives it): who clicked is unknown
        base = read_checkbox(texts.get(shown.edit) or "") if shown.edit else shown.paused
        if shown.edit and texts.get(shown.edit) is None:
            return None
        return box_changes([(editor, texts.get(edit_id)) for edit_id, _, editor in since], base=base)

    def _texts(self, number: int, ids: list[str]) -> dict[str, str | None]:
        missing = [i for i in dict.fromkeys(ids) if i not in self._tick.texts]
        self._tick.texts.update(self.api.revisions(number, missing))
        return self._tick.texts

    # -- the end of a step ---------------------------------------------------------

    def publish(self, *, message: str) -> None:
        """Commit and push ``runs/`` now (the git sync's errors name the fix); the step calls it before spending."""
        self.publish_runs(self.root, message=message)

    def finish_step(self, *, step: Any) -> None:
        """Push ``runs/``, then refresh the dashboard, post the stop report, close fixed escalations."""
        try:
            self.publish(message=commit_message(step.events, since=step.recorded))
            step.events += self._tick.notes  # for the log, not the commit message
            if step.program is None or step.state is None or step.used is None:
                return
            issue = self._sync_dashboard(step.program, step.state, step.used)
            self._post_stop_report(issue, step.state)
            self._resolve_fixed(step)
        finally:
            self._tick = _Tick()

    def _sync_dashboard(self, program: Any, state: Any, used: Any) -> Any:
        tick = self._tick
        shown = shown_for(state, seen=tick.seen, events=tick.events, edit=tick.edit)
        stamps = [r.ts for r in (*state.experiments.values(), *state.finals.values(), *state.events)]
        now = max(stamps) if stamps else self.clock().isoformat(timespec="seconds")

        def render(checkbox: bool, kept: bool = False, marker: Shown = shown) -> str:
            marker = replace(marker, kept=True) if kept else marker
            return clip(redact(render_dashboard(program=program, state=state, used=used, shown=marker, checkbox=checkbox, now=now)))

        human_stop = state.stopped is not None and state.stopped.reason == "human"
        if tick.dashboard is None:
            fresh = replace(shown, events="", edit="")  # its whole history is new
            labels = [msg.DASHBOARD_LABEL] + ([msg.PAUSED_LABEL] if state.paused else [])
            issue = self.api.create_issue(title=dashboard_title(program, state), body=render(state.paused, marker=fresh),
                                          labels=labels,
                                          also=(msg.PAUSED_LABEL,))  # so people find it in the labels menu
            if human_stop:
                self.api.edit(issue, state="closed")
            close_onboarding(self.api, dashboard_number=issue.number)
            return issue
        issue, dash = tick.dashboard, tick.dash
        assert dash is not None
        if dash.label != shown.label:
            self.api.set_label(issue, msg.PAUSED_LABEL, shown.label)
        changes: dict[str, Any] = {}
        if dash.open and human_stop:
            changes["state"] = "closed"  # closed mirrors a stop by a person, so reopening it resumes
        elif not dash.open and state.stopped is None:
            changes["state"] = "open"
        body, current = render(state.paused), _lf(issue.body)
        if body != current and not tick.advance and dash.shown is not None:
            # Only the history read since moved (the bot's own events and writes): read it again next time.
            unread = replace(shown, events=dash.shown.events, edit=dash.shown.edit)
            body = current if render(state.paused, marker=unread) == current else body
        if body != current:
            fresh = _lf(self.api.get_body(issue.number))
            clicked = read_checkbox(fresh)
            if clicked is not None and clicked != dash.checkbox:
                body = render(clicked, kept=True)  # a person clicked during this step: keep it, it counts next tick
            if body != fresh:
                changes["body"] = body
        if changes:
            self.api.edit(issue, **changes)
        return issue

    # -- reports --------------------------------------------------------------------

    def publish_stop_report(self, *, title: str, body: str) -> None:
        """Held until ``finish_step``, which posts it on the dashboard once ``runs/`` is pushed."""
        self._tick.report = (title, body)

    def _post_stop_report(self, issue: Any, state: Any) -> None:
        if self._tick.report is None or state.stopped is None:
            return
        title, body = self._tick.report
        marker = msg.stop_report_marker(state.stopped.ts, state.stopped.reason)
        text = clip(redact(f"## {title}\n\n{body.rstrip()}\n\n{marker}\n"))
        bot = login_of(issue)
        existing = next((c for c in self._tick.comments if marker in (c.body or "") and login_of(c) == bot), None)
        if existing is None:
            self.api.comment(issue, text)
        elif _FOOTER.sub("", _lf(existing.body)) != _FOOTER.sub("", text):
            self.api.edit_comment(existing, text)

    def publish_escalation(self, *, kind: str, title: str, body: str) -> Any:
        """Open the issue for ``kind``, or rewrite (and reopen) the one there is."""
        self._tick.published.add(kind)
        marker = msg.escalation_marker(kind)
        text = f"{body.rstrip()}\n\n{marker}\n"
        issue = next(iter(self.api.issues(msg.ESCALATION_LABEL, lambda b: marker in b)), None)
        if issue is None:
            return self.api.create_issue(title=title, body=text, labels=[msg.ESCALATION_LABEL])
        changes: dict[str, Any] = {}
        if _FOOTER.sub("", _lf(issue.body)) != _FOOTER.sub("", clip(redact(text))):
            changes["body"] = text
        if issue.title != redact(title):
            changes["title"] = title
        if issue.state != "open":
            changes["state"] = "open"
        if changes:
            self.api.edit(issue, **changes)
        return issue

    def resolve_escalation(self, *, kind: str) -> bool:
        """Close the open escalation of ``kind``, saying so; True when there was one."""
        marker = msg.escalation_marker(kind)
        found = self.api.issues(msg.ESCALATION_LABEL, lambda b: marker in b, state="open")
        for issue in found:
            self._close_escalation(issue)
        return bool(found)

    def _close_escalation(self, issue: Any) -> None:
        self.api.comment(issue, msg.escalation_resolved())
        self.api.edit(issue, state="closed", state_reason="completed")

    def _resolve_fixed(self, step: Any) -> None:
        """Close the escalations whose cause the step shows is gone (StepResult.fixed_escalations)."""
        fixed = step.fixed_escalations() - self._tick.published
        for issue in self.api.issues(msg.ESCALATION_LABEL, lambda b: bool(_ESCALATION.search(b)), state="open"):
            match = _ESCALATION.search(issue.body or "")
            if match and match.group(1) in fixed:
                self._close_escalation(issue)
