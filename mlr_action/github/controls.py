"""The dashboard's controls: what people did, who did it, and which of it counts.

Pure: no I/O and no clock. The adapter (:mod:`mlr_action.github.forge`)
reads the issue with :func:`read_dashboard` and the changes since the bot
last read it (:mod:`mlr_action.github.history`, which says who made
each), asks GitHub which of the people named and of the commenters have
write access (:func:`logins_to_check`), and gets the ledger rows and at most
one reply from :func:`control_rows`.

Guarantees:

- Only people with write access steer, by any means: a writer's close,
  pause label or pause box counts even when someone without write access
  undid it before the tick, and anything else is ignored, a pause included
  (pausing spends nothing, but a pause by someone without write access is a
  denial of service). The adapter then shows the campaign's state again
  (reopens, closes, sets the label and the box back), so an ignored control
  never lingers to count later. Who made what, and what happens without the
  issue's history, is in :mod:`mlr_action.github.history`.
- A writer's comment holds a command only where it reads as one: a line of
  a top-level paragraph that starts, in plain text, with ``/mlr stop``,
  ``/mlr pause`` or ``/mlr resume`` (the comment is parsed as Markdown, HTML
  allowed, as GitHub does). Code blocks and spans, block quotes (a quoted
  reply of someone's command), lists, tables, headings, HTML comments and
  whatever sits inside an element raw HTML left open (``<details>``) are not
  commands.
- Only comments newer than the last one read and with a line that starts
  with ``/mlr <verb>`` are looked at, and only a writer's are parsed: what a
  comment costs to read is bounded by what people with write access post.
- A command counts from someone with write access, once: one that changed
  the campaign is recorded in its row (``comment_id``); any other is covered
  by ``seen`` or by the bot's reply to it.
- People without write access are never obeyed and get at most one reply per
  tick for everything of theirs that looked like a command or a control
  (one command alone gets the one-line reply it always had).
- A control the bot's own login made (an app) is neither a request nor
  answered: it is the bot's mirror of an earlier state.
- Where writers' controls disagree in one tick, stopping and pausing win: they spend nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Collection

from mlr_action.github.dashboard import Command, Dashboard, Shown, read_checkbox, read_shown
from mlr_action.github.history import BOX, CLOSE, DOING, LABEL, REOPEN, apply_history
from mlr_action.github.messages import PAUSED_LABEL, Ignored, ignored_reply
from mlr_action.core.ledger import EventRow
from mlr_action.core.state import CampaignState


_COMMAND = re.compile(r"/mlr[ \t]+(stop|pause|resume)\b", re.I)
_LOOKS_LIKE = re.compile(r"^[ \t]*\\?/mlr[ \t]+(stop|pause|resume)\b", re.M | re.I)  # cheap, before any parse
_REPLY = re.compile(r"<!-- mlr-action:reply((?: \d+)*) -->")
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)\b[^>]*?(/?)>")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())


# --- Comments --------------------------------------------------------------------


@lru_cache(maxsize=1)
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable(["table", "strikethrough"])  # GitHub's flavour, raw HTML included


def _open_elements(html: str) -> int:
    """How many HTML elements ``html`` opens and leaves open (negative: closes ones opened before)."""
    depth = 0
    for closing, name, self_closing in _TAG.findall(_HTML_COMMENT.sub("", html)):
        if name.lower() not in _VOID and not self_closing:
            depth += -1 if closing else 1
    return depth


def find_command(text: str) -> str | None:
    """The verb of the first command ``text`` gives, or None (see the module's guarantees)."""
    if not _LOOKS_LIKE.search(text or ""):
        return None
    tokens = _markdown().parse(text)
    inside_html = 0  # elements raw HTML opened and left open: what follows renders inside them
    for i, token in enumerate(tokens):
        if token.type == "html_block":
            inside_html = max(0, inside_html + _open_elements(token.content))
        elif token.type == "inline":
            top = token.level == 1 and tokens[i - 1].type == "paragraph_open"
            line_start = True
            for child in token.children or []:
                if child.type == "html_inline":
                    inside_html = max(0, inside_html + _open_elements(child.content))
                if line_start and not (child.type == "text" and child.content == ""):
                    line_start = False
                    match = _COMMAND.match(child.content) if child.type == "text" and child.level == 0 else None
                    if match and top and not inside_html:
                        return match.group(1).lower()
                if child.type in ("softbreak", "hardbreak"):
                    line_start = True
    return None


def read_dashboard(
    *, number: int, body: str, open: bool, labels: Collection[str], comments: list[tuple[int, str, str]], bot: str,
) -> Dashboard:
    """The dashboard from the issue's fields; ``comments`` are ``(id, login, body)``.

    ``bot`` is the login that opened the dashboard: only its comments are the
    bot's (a person could paste a reply marker to silence a command).
    """
    shown = read_shown(body)
    seen = shown.seen if shown else 0
    commands, replied = [], set()
    for comment_id, login, text in comments:
        if login == bot:
            replied.update(int(i) for ids in _REPLY.findall(text) for i in ids.split())
            continue
        looks = _LOOKS_LIKE.search(text) if comment_id > seen else None
        if looks:
            commands.append(Command(comment_id, login, looks.group(1).lower(), text))
    return Dashboard(
        number=number, open=open, shown=shown, checkbox=read_checkbox(body),
        label=PAUSED_LABEL in labels, commands=tuple(sorted(commands, key=lambda c: c.comment_id)), bot=bot,
        replied=frozenset(replied), last_comment=max((c[0] for c in comments), default=0),
    )


def acted_comments(state: CampaignState) -> set[int]:
    return {int(getattr(e, "comment_id")) for e in state.events if getattr(e, "comment_id", None) is not None}


def pending_commands(dash: Dashboard, state: CampaignState) -> list[Command]:
    """Commands not yet acted on: newer than ``seen``, not in the ledger, not answered."""
    seen = dash.shown.seen if dash.shown else 0
    done = acted_comments(state) | dash.replied
    return [c for c in dash.commands if c.comment_id > seen and c.comment_id not in done]


def logins_to_check(dash: Dashboard, state: CampaignState) -> set[str]:
    """Everyone whose write access decides something this tick."""
    made = {login for who in dash.made_by.values() for login in who if login}
    made |= {change.by for changes in dash.changes.values() for change in changes if change.by}
    return made | {c.login for c in pending_commands(dash, state)}


# --- What counts -------------------------------------------------------------------


@dataclass(frozen=True)
class Controls:
    rows: list[EventRow]
    reply: str | None  # one reply for everything ignored this tick, or None
    seen: int
    ignored: tuple[str, ...] = ()  # what was ignored, for the log


class _Tally:
    """The campaign's state as this tick's rows change it, and what was ignored on the way."""

    def __init__(self, dash: Dashboard, state: CampaignState, writers: Collection[str], ts: str):
        self.dash, self.writers, self.ts = dash, writers, ts
        self.paused = state.paused
        self.stop_reason = state.stopped.reason if state.stopped else None
        self.final_running = state.final_running  # after the stop: `/mlr stop` still cancels the final evaluation
        self.where = f"the dashboard issue #{dash.number}"
        self.rows: list[EventRow] = []
        self.ignored: list[Ignored] = []
        self.commands: list[Command] = []  # from people without write access

    def add(self, event: str, detail: str, **extra: Any) -> None:
        self.rows.append(EventRow(event=event, ts=self.ts, reason="human", detail=detail, **extra))
        if event == "stopped":
            self.stop_reason = "human"
        elif event == "paused":
            self.paused = True
        elif event == "resumed":
            self.paused, self.stop_reason = False, None

    def writer(self, control: str, doing: str) -> str | None:
        """The writers who made ``control`` ("a and b"), or None when it does not count (then noted)."""
        who = self.dash.made_by.get(control, ())
        if who and all(login in self.writers for login in who):
            return " and ".join(who)
        if who == (self.dash.bot,):
            return None  # the bot's own write (an app): not a request, and no one to answer
        self.ignored.append(Ignored(what=doing, by=tuple(w for w in who if w not in self.writers) if who else ()))
        return None

    def issue_controls(self, shown: Shown) -> None:
        """Closing, reopening, the box and the label, against what the bot last showed."""
        dash, where = self.dash, self.where
        if not dash.open and self.stop_reason is None and shown.state != "stopped":
            who = self.writer(CLOSE, DOING[CLOSE])
            if who:
                self.add("stopped", f"@{who} closed {where}", by=who, control=CLOSE)
        elif dash.open and self.stop_reason == "human" and shown.human_stop:
            who = self.writer(REOPEN, DOING[REOPEN])
            if who:
                self.add("resumed", f"@{who} reopened {where}", by=who, control=REOPEN)
        wants = []
        for control, value, was in ((BOX, dash.checkbox, shown.paused), (LABEL, dash.label, shown.label)):
            if value is not None and value != was:
                who = self.writer(control, DOING[control, value])
                if who:
                    wants.append((value, f"@{who} {DOING[control, value]} {where}", control, who))
        if wants and self.stop_reason is None:
            paused, detail, control, who = max(wants, key=lambda w: w[0])  # pausing wins
            if paused != self.paused:
                self.add("paused" if paused else "resumed", detail, control=control, by=who)

    def command(self, command: Command) -> None:
        if command.login not in self.writers:
            self.commands.append(command)
            return
        verb = find_command(command.text) if command.text else command.verb
        if verb is None:
            return  # a writer showing a command (quoted, in code): no command, nothing to answer
        command = Command(command.comment_id, command.login, verb)
        said = dict(detail=f"@{command.login} commented `/mlr {command.verb}` on {self.where}", by=command.login,
                    comment_id=command.comment_id, control="comment")
        if command.verb == "stop" and (self.stop_reason is None or self.final_running and self.stop_reason != "human"):
            self.add("stopped", **said)
        elif command.verb == "pause" and self.stop_reason is None and not self.paused:
            self.add("paused", **said)
        elif command.verb == "resume" and (self.stop_reason == "human" or (self.stop_reason is None and self.paused)):
            self.add("resumed", **said)

    def notes(self) -> tuple[str, ...]:
        said = Counter((c.login, c.verb) for c in self.commands)
        return tuple(f"ignored: {i.line(self.where)} (only people with write access steer the campaign)"
                     for i in self.ignored) + tuple(
            f"ignored: @{login} commented `/mlr {verb}` on {self.where}{f' {n} times' if n > 1 else ''} (no write access)"
            for (login, verb), n in said.items())


def control_rows(dash: Dashboard, state: CampaignState, *, writers: Collection[str], ts: str) -> Controls:
    """The rows the dashboard asks for, given who among the people named may write."""
    ignored: list[Ignored] = []
    if dash.shown is not None and dash.changes:
        dash, ignored = apply_history(dash, writers)
    tally = _Tally(dash, state, writers, ts)
    tally.ignored += ignored
    if dash.shown is not None:
        tally.issue_controls(dash.shown)
    for command in pending_commands(dash, state):
        tally.command(command)
    reply = None
    if tally.commands or tally.ignored:
        reply = ignored_reply([(c.comment_id, c.login, c.verb) for c in tally.commands], tally.ignored)
    seen = max(dash.last_comment, dash.shown.seen if dash.shown else 0)
    return Controls(rows=tally.rows, reply=reply, seen=seen, ignored=tally.notes())
