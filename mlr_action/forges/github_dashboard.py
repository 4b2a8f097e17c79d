"""The dashboard issue as data: what the bot writes on it, and what people changed on it.

Pure: no I/O and no clock. The adapter (:mod:`mlr_action.forges.github`)
reads the issue into a :class:`Dashboard`, asks :func:`control_rows` which
ledger rows the human controls ask for, and writes back
:func:`render_dashboard`.

Guarantees:

- The body starts with a hidden marker holding what the bot last showed
  (:class:`Shown`): the campaign's state, whether the pause box was checked
  and the pause label set, and the last comment read. A control counts as a
  request only where it differs from what the bot last showed. So the same
  dashboard yields no new rows on the next tick, and a control the bot has not
  mirrored yet (after a failed write) is never taken for a person's request.
- Closing the issue while the campaign runs is a stop by a person; reopening
  it after such a stop resumes. Closing it after any other stop does nothing.
- A ``/mlr stop|pause|resume`` comment counts only from someone with write
  access, and only once: a command that changed the campaign is recorded in
  its row (``comment_id``); any other is covered by ``seen`` or by the bot's
  reply to it. Where controls disagree, pausing wins: it spends nothing.
- The controls sit above everything that grows. :func:`render_dashboard`
  trims the experiments table first, then whole sections, then the tail, to
  stay under GitHub's body limit; the marker and controls are never cut.
- What the body shows from a job, an LLM or the ledger is shown, never
  rendered (:mod:`mlr_action.markup`, as in runs/summary.md), and the hidden
  marker's JSON has ``<`` and ``>`` escaped, so no ledger value can close
  the comment early.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Collection

from mlr_action.budget import Usage
from mlr_action.durations import format_duration
from mlr_action.forges.github_messages import PAUSED_LABEL, ignored_command, reply_marker
from mlr_action.ledger import EventRow, ExperimentRow
from mlr_action.markup import cell, code, plain
from mlr_action.program import Program
from mlr_action.reports import campaign_name, format_metric, format_now, short_error, shorten, shown_config
from mlr_action.state import CampaignState
from mlr_action.summary import campaign_status, render_summary

GITHUB_BODY_LIMIT = 65536
BODY_LIMIT = 64000  # a margin under GitHub's limit, which some clients count in bytes of escapes
LAST_EXPERIMENTS = 20
DASHBOARD_MARKER = "<!-- mlr-action:dashboard"
PAUSE_BOX = "Pause the campaign"
TRIMMED = "\n\n… (trimmed to fit GitHub's size limit: the full text is in `runs/summary.md`)"

_MARKER = re.compile(r"<!-- mlr-action:dashboard (\{.*?\}) -->")
_BOX = re.compile(r"^[ \t]*[-*] \[([ xX])\] " + re.escape(PAUSE_BOX), re.M)
_COMMAND = re.compile(r"^[ \t]*/mlr[ \t]+(stop|pause|resume)\b", re.M | re.I)
_REPLY = re.compile(r"<!-- mlr-action:reply (\d+) -->")


@dataclass(frozen=True)
class Shown:
    """What the bot last wrote on the dashboard (kept in its hidden marker)."""

    state: str = "running"  # running | paused | stopped
    reason: str = ""  # the stop reason when stopped
    paused: bool = False  # the pause box was checked
    label: bool = False  # the pause label was set
    seen: int = 0  # the last comment id read

    def marker(self) -> str:
        data = {"state": self.state, "reason": self.reason, "paused": self.paused, "label": self.label, "seen": self.seen}
        text = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")
        return f"{DASHBOARD_MARKER} {text} -->"  # no "-->" inside: a ledger value cannot end the comment

    @property
    def human_stop(self) -> bool:
        return self.state == "stopped" and self.reason == "human"


@dataclass(frozen=True)
class Command:
    comment_id: int
    login: str
    verb: str  # stop | pause | resume


@dataclass(frozen=True)
class Dashboard:
    """The dashboard issue as observed at the start of a step."""

    number: int
    open: bool
    shown: Shown | None  # None: the marker is gone or unreadable, so only comments count
    checkbox: bool | None  # None: the pause box line is gone
    label: bool
    closed_by: str | None = None
    commands: tuple[Command, ...] = ()
    replied: frozenset[int] = frozenset()
    last_comment: int = 0


@dataclass(frozen=True)
class Controls:
    rows: list[EventRow]
    replies: list[tuple[int, str]]  # (comment id, reply text) for commands that were ignored
    seen: int


def is_dashboard(body: str | None) -> bool:
    return bool(body) and DASHBOARD_MARKER in body  # type: ignore[operator]


def read_shown(body: str) -> Shown | None:
    match = _MARKER.search(body or "")
    if not match:
        return None
    try:
        data = json.loads(match.group(1))
        return Shown(state=str(data["state"]), reason=str(data.get("reason", "")), paused=bool(data["paused"]),
                     label=bool(data["label"]), seen=int(data.get("seen", 0)))
    except (ValueError, KeyError, TypeError):
        return None


def read_checkbox(body: str) -> bool | None:
    match = _BOX.search(body or "")
    return None if match is None else match.group(1) != " "


def set_checkbox(body: str, checked: bool) -> str:
    return _BOX.sub(lambda m: m.group(0).replace(f"[{m.group(1)}]", "[x]" if checked else "[ ]", 1), body, count=1)


def read_dashboard(
    *, number: int, body: str, open: bool, labels: Collection[str], comments: list[tuple[int, str, str]],
    bot: str, closed_by: str | None = None,
) -> Dashboard:
    """The dashboard from the issue's fields; ``comments`` are ``(id, login, body)``.

    ``bot`` is the login that opened the dashboard: only its comments are the
    bot's (a person could paste a reply marker to silence a command).
    """
    commands, replied = [], set()
    for comment_id, login, text in comments:
        if login == bot:
            replied.update(int(i) for i in _REPLY.findall(text))
            continue
        match = _COMMAND.search(text)
        if match:
            commands.append(Command(comment_id, login, match.group(1).lower()))
    return Dashboard(
        number=number, open=open, shown=read_shown(body), checkbox=read_checkbox(body),
        label=PAUSED_LABEL in labels, closed_by=closed_by, commands=tuple(sorted(commands, key=lambda c: c.comment_id)),
        replied=frozenset(replied), last_comment=max((c[0] for c in comments), default=0),
    )


def acted_comments(state: CampaignState) -> set[int]:
    return {int(getattr(e, "comment_id")) for e in state.events if getattr(e, "comment_id", None) is not None}


def pending_commands(dash: Dashboard, state: CampaignState) -> list[Command]:
    """Commands not yet acted on: newer than ``seen``, not in the ledger, not answered."""
    seen = dash.shown.seen if dash.shown else 0
    done = acted_comments(state) | dash.replied
    return [c for c in dash.commands if c.comment_id > seen and c.comment_id not in done]


class _Campaign:
    """The campaign's state as the rows of this step change it."""

    def __init__(self, state: CampaignState):
        self.paused = state.paused
        self.stop_reason = state.stopped.reason if state.stopped else None

    def apply(self, row: EventRow) -> EventRow:
        if row.event == "stopped":
            self.stop_reason = row.reason
        elif row.event == "paused":
            self.paused = True
        elif row.event == "resumed":
            self.paused, self.stop_reason = False, None
        return row


def control_rows(dash: Dashboard, state: CampaignState, *, writers: Collection[str], ts: str) -> Controls:
    """The rows the dashboard asks for, given who among the commenters may write."""
    now = _Campaign(state)
    rows: list[EventRow] = []
    where = f"the dashboard issue #{dash.number}"

    def add(event: str, detail: str, **extra) -> None:
        rows.append(now.apply(EventRow(event=event, ts=ts, reason="human", detail=detail, **extra)))

    shown = dash.shown
    if shown is not None:
        if not dash.open and now.stop_reason is None and shown.state != "stopped":
            who = f"@{dash.closed_by}" if dash.closed_by else "a person"
            add("stopped", f"{who} closed {where}", by=dash.closed_by, control="close-issue")
        elif dash.open and now.stop_reason == "human" and shown.human_stop:
            add("resumed", f"{where} was reopened", control="reopen-issue")
        wanted = _wanted_pause(dash, shown, where)
        if now.stop_reason is None and wanted is not None and wanted[0] != now.paused:
            add("paused" if wanted[0] else "resumed", wanted[1], control=wanted[2])
    replies = []
    for command in pending_commands(dash, state):
        if command.login not in writers:
            replies.append((command.comment_id, ignored_command(command.login, command.verb) + "\n\n" + reply_marker(command.comment_id)))
            continue
        said = dict(detail=f"@{command.login} commented `/mlr {command.verb}` on {where}", by=command.login,
                    comment_id=command.comment_id, control="comment")
        if command.verb == "stop" and now.stop_reason is None:
            add("stopped", **said)
        elif command.verb == "pause" and now.stop_reason is None and not now.paused:
            add("paused", **said)
        elif command.verb == "resume" and (now.stop_reason == "human" or (now.stop_reason is None and now.paused)):
            add("resumed", **said)
    seen = max(dash.last_comment, shown.seen if shown else 0)
    return Controls(rows=rows, replies=replies, seen=seen)


def _wanted_pause(dash: Dashboard, shown: Shown, where: str) -> tuple[bool, str, str] | None:
    """(paused?, detail, control) that a changed box or label asks for; pausing wins a conflict."""
    wants = []
    if dash.checkbox is not None and dash.checkbox != shown.paused:
        wants.append((dash.checkbox, f"the pause box on {where} was {'checked' if dash.checkbox else 'unchecked'}", "checkbox"))
    if dash.label != shown.label:
        verb = "added to" if dash.label else "removed from"
        wants.append((dash.label, f"the `{PAUSED_LABEL}` label was {verb} {where}", "label"))
    return max(wants, key=lambda w: w[0]) if wants else None


# --- Rendering ---------------------------------------------------------------


def shown_for(state: CampaignState, *, seen: int) -> Shown:
    """What the bot shows for ``state``: the box and the label mirror the pause."""
    return Shown(state=campaign_status(state), reason=state.stopped.reason if state.stopped else "",
                 paused=state.paused, label=state.paused, seen=seen)


def dashboard_title(program: Program, state: CampaignState) -> str:
    return f"mlr: campaign {plain(shorten(campaign_name(program, state), 60))} dashboard"


def _controls(state: CampaignState, checkbox: bool) -> str:
    box = f"- [{'x' if checkbox else ' '}] {PAUSE_BOX}"
    lines = [
        "### Controls",
        "",
        box,
        "",
        f"Check the box (or add the `{PAUSED_LABEL}` label) to **pause**: no new experiment is submitted, "
        "jobs in flight are still followed. Uncheck it (or remove the label) to **resume**.",
        "",
        "To **stop**, close this issue or comment `/mlr stop`. Comments `/mlr pause` and `/mlr resume` work too; "
        "commands count only from people with write access.",
    ]
    if state.stopped is not None and state.stopped.reason == "human":
        lines += ["", "**Stopped by a person.** Reopen this issue (or comment `/mlr resume`) to resume."]
    elif state.stopped is not None:
        lines += ["", "**Stopped.** The stop report below says why. Merge a change to program.md (a raised budget, a "
                  "wider search) to resume; closing this issue now changes nothing."]
    return "\n".join(lines)


def _summary_sections(program: Program, state: CampaignState, used: Usage, now: str) -> dict[str, str]:
    """The summary's sections by heading, one level down for an issue."""
    sections = {}
    for chunk in render_summary(program=program, state=state, used=used, now=now).split("\n## ")[1:]:
        heading, _, text = chunk.partition("\n")
        sections[heading.strip()] = f"### {heading.strip()}\n{text.rstrip()}"
    return sections


def _experiments(rows: list[ExperimentRow], total: int) -> str:
    if not rows:
        return "### Last experiments\n\nNo experiments yet." if total == 0 else (
            f"### Last experiments\n\n{total} experiments: the table is in `runs/summary.md`.")
    header = ["iter", "status", "decision", "metric", "best so far", "config", "flavor", "duration", "error"]
    lines = [f"### Last experiments ({len(rows)} of {total})" if len(rows) < total else "### Experiments", "",
             "| " + " | ".join(header) + " |", "| ---: | --- | --- | ---: | ---: | --- | --- | ---: | --- |"]
    for e in rows:
        cells = [str(e.iter), e.status, e.decision or "—", format_metric(e.metric), format_metric(e.best_so_far),
                 shown_config(e.config), plain(e.flavor) or "—",
                 format_duration(e.duration_s) if e.duration_s is not None else "—", code(short_error(e.error))]
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    if len(rows) < total:
        lines += ["", f"{total - len(rows)} older experiments are in `runs/summary.md`."]
    return "\n".join(lines)


def render_dashboard(
    *, program: Program, state: CampaignState, used: Usage, shown: Shown, checkbox: bool,
    now: datetime | str, limit: int = BODY_LIMIT, last: int = LAST_EXPERIMENTS,
) -> str:
    """The dashboard body, at most ``limit`` characters, controls first."""
    stamp = format_now(now)  # the time of the last ledger row
    status = campaign_status(state)
    head = [
        shown.marker(),
        f"**Campaign {code(campaign_name(program, state))}: {status}** · updated {plain(stamp)} · "
        "edited in place by mlr-action from `runs/ledger.jsonl`",
        _controls(state, checkbox),
    ]
    parts = _summary_sections(program, state, used, stamp)
    # Once stopped, the writeup names the best result, so "Best so far" would say it twice.
    before = [parts.get(k, "") for k in ("Stopped", "Budget", "In flight")] if state.stopped else [
        parts.get(k, "") for k in ("Best so far", "Budget", "In flight")]
    after = [parts.get("Progress", "")]
    experiments = list(state.experiments.values())
    shown_rows = experiments[-last:] if last > 0 else []
    for keep in range(len(shown_rows), -1, -1):
        text = _join(head, [*before, _experiments(shown_rows[len(shown_rows) - keep:], len(experiments)), *after])
        if len(text) <= limit:
            return text
    optional = [*before, _experiments([], len(experiments)), *after]
    while optional:
        optional.pop()
        text = _join(head, optional)
        if len(text) <= limit:
            return text
    return clip(text, limit)


def _join(head: list[str], sections: list[str]) -> str:
    return "\n\n".join(s for s in [*head, *sections] if s) + "\n"


def clip(text: str, limit: int = BODY_LIMIT) -> str:
    """``text`` cut to ``limit`` characters with a note saying so; the head is kept."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(TRIMMED))].rstrip() + TRIMMED
