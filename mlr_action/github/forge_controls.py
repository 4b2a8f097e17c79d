"""What the dashboard's controls ask for: the issue found, its history read, and who may be shown to have done what.

:class:`DashboardControls` is the part of :class:`~mlr_action.github.forge.GitHubForge`
that reads; :class:`Tick` is what one step learned of the dashboard and holds
until ``finish_step``. Guarantees:

- The dashboard is the oldest labelled, marked issue that the bot (an app) or
  someone with write access opened; nobody else's issue is taken for it.
- Every tick reads, in one GraphQL query, the issue's close, reopen and label
  events since the cursor its hidden marker keeps and the list of its body's
  edits (the texts of the edits since the last read only when someone other
  than the bot made one, at most :data:`BOX_REVISIONS`), so a writer's change
  counts even when someone else undid it before the tick. The marker is taken
  from the bot's own last write of the body when someone else edited the body
  since. A history GitHub refuses counts nothing and is read again next tick.
- Who has write access is asked once per login per tick; a reply to people
  without it that fails is noted in the tick, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Callable

from mlr_action.github import messages as msg
from mlr_action.github.api import GitHubAPI
from mlr_action.github.api_errors import GitHubPermanentError, GitHubTransientError, is_bot, login_of
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
from mlr_action.github.dashboard import DASHBOARD_MARKER, Dashboard, Shown, is_dashboard, read_checkbox, read_shown
from mlr_action.core.ledger import EventRow


@dataclass
class Tick:
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


def lf(text: str | None) -> str:
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

class DashboardControls:
    """Reads the dashboard's controls; the forge that inherits it gives ``api``, ``clock`` and ``_tick``."""

    api: GitHubAPI
    clock: Callable[[], datetime]
    _tick: Tick

    def read_controls(self, *, state: Any) -> list[EventRow]:
        """The rows the dashboard's controls ask for (see :mod:`mlr_action.github.controls`)."""
        self._tick = tick = Tick()
        issue = self._find_dashboard()
        if issue is None:
            return []
        tick.dashboard = issue
        with self.api.calling(f"reading the dashboard issue #{issue.number}"):
            tick.comments = list(issue.get_comments()) if issue.comments else []
            dash = read_dashboard(
                number=issue.number, body=lf(issue.body), open=issue.state == "open",
                labels=[label.name for label in issue.labels],
                comments=[(c.id, login_of(c), lf(c.body)) for c in tick.comments], bot=login_of(issue))
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
