"""The dashboard issue as data: what the bot writes on it, and what it last showed.

Pure: no I/O and no clock. The adapter (:mod:`mlr_action.github.forge`)
reads the issue into a :class:`Dashboard` (through
:func:`mlr_action.github.controls.read_dashboard`, which also decides
which controls count) and writes back :func:`render_dashboard`.

Guarantees:

- The body starts with a hidden marker holding what the bot last showed
  (:class:`Shown`): the campaign's state, whether the pause box was checked
  and the pause label set, the last comment read, whether the box was left
  as a person clicked it during the bot's last write (``kept``), and how far
  the bot has read the issue's history: its close, reopen and label events
  (``events``, GitHub's cursor) and its body's edits (``edit``, the newest
  one read). A control counts as a request only where a change made since
  then asks for it (or, without that history, where the issue differs from
  what the bot last showed), so the same dashboard yields no new rows on the
  next tick, and a control the bot has not mirrored yet (after a failed
  write) is never taken for a person's request.
- Once stopped, the stop and the final evaluation (with its cost) come first,
  each as its own section, as in runs/summary.md.
- The controls sit above everything that grows. :func:`render_dashboard`
  trims the experiments table first, then whole sections, then the tail, to
  stay under GitHub's body limit; the marker and controls are never cut.
- What the body shows from a job, an LLM or the ledger is shown, never
  rendered (:mod:`mlr_action.core.markup`, as in runs/summary.md), and the hidden
  marker's JSON has ``<`` and ``>`` escaped, so no ledger value can close
  the comment early.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping

from mlr_action.core.budget import Usage
from mlr_action.core.durations import format_duration
from mlr_action.github.messages import PAUSED_LABEL
from mlr_action.render.final_report import HEADING as FINAL_HEADING
from mlr_action.render.final_report import metric_cell
from mlr_action.core.ledger import ExperimentRow
from mlr_action.core.markup import cell, code, plain
from mlr_action.core.program import Program
from mlr_action.render.reports import campaign_name
from mlr_action.core.metric import format_metric
from mlr_action.render.words import format_now, short_error, shorten, shown_config
from mlr_action.core.state import CampaignState
from mlr_action.render.summary import campaign_status, render_summary

GITHUB_BODY_LIMIT = 65536
BODY_LIMIT = 64000  # a margin under GitHub's limit, which some clients count in bytes of escapes
LAST_EXPERIMENTS = 20
DASHBOARD_MARKER = "<!-- mlr-action:dashboard"
PAUSE_BOX = "Pause the campaign"
TRIMMED = "\n\n… (trimmed to fit GitHub's size limit: the full text is in `runs/summary.md`)"

_MARKER = re.compile(r"<!-- mlr-action:dashboard (\{.*?\}) -->")
_BOX = re.compile(r"^[ \t]*[-*] \[([ xX])\] " + re.escape(PAUSE_BOX), re.M)


@dataclass(frozen=True)
class Shown:
    """What the bot last wrote on the dashboard (kept in its hidden marker)."""

    state: str = "running"  # running | paused | stopped
    reason: str = ""  # the stop reason when stopped
    paused: bool = False  # the pause box was checked
    label: bool = False  # the pause label was set
    seen: int = 0  # the last comment id read
    kept: bool = False  # the box shows a person's click made while the bot wrote (it counts next tick)
    events: str | None = None  # where the events were read to (GitHub's cursor; "": none yet; None: unknown)
    edit: str | None = None  # the newest edit of the body read ("": none yet; None: unknown)

    def marker(self) -> str:
        data: dict[str, object] = {"state": self.state, "reason": self.reason, "paused": self.paused,
                                   "label": self.label, "seen": self.seen}
        if self.kept:
            data["kept"] = True
        if self.events is not None:
            data["ev"] = self.events
        if self.edit is not None:
            data["ed"] = self.edit
        text = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")
        return f"{DASHBOARD_MARKER} {text} -->"  # no "-->" inside: a ledger value cannot end the comment

    @property
    def human_stop(self) -> bool:
        return self.state == "stopped" and self.reason == "human"


@dataclass(frozen=True)
class Command:
    """A comment with a line that looks like a command (whether it is one depends on who wrote it)."""

    comment_id: int
    login: str
    verb: str  # stop | pause | resume, from the first line that looks like a command
    text: str = ""  # the comment, read as Markdown only when its author may write ("": the verb is final)


@dataclass(frozen=True)
class Change:
    """One change of a control since the bot last read the issue, as GitHub names who made it."""

    control: str  # github_controls.CLOSE (``on``: closed), LABEL (``on``: the pause label set) or BOX (``on``: checked)
    on: bool
    by: str  # "" when GitHub names nobody


@dataclass(frozen=True)
class Dashboard:
    """The dashboard issue as observed at the start of a step."""

    number: int
    open: bool
    shown: Shown | None  # None: the marker is gone or unreadable, so only comments count
    checkbox: bool | None  # None: the pause box line is gone
    label: bool
    commands: tuple[Command, ...] = ()
    replied: frozenset[int] = frozenset()
    last_comment: int = 0
    bot: str = ""  # who opened it: the bot's login
    # Who made each changed control (see github_controls.asked), as GitHub names them; () when it does not.
    made_by: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Every change of a control since the bot last read the issue, oldest first, for the controls whose history
    # is known (github_controls.CLOSE, LABEL, BOX); for the others, what differs from what the bot last showed
    # is the request, made by ``made_by``.
    changes: Mapping[str, tuple[Change, ...]] = field(default_factory=dict)


def is_dashboard(body: str | None) -> bool:
    return bool(body) and DASHBOARD_MARKER in body  # type: ignore[operator]


def read_shown(body: str) -> Shown | None:
    match = _MARKER.search(body or "")
    if not match:
        return None
    try:
        data = json.loads(match.group(1))
        return Shown(state=str(data["state"]), reason=str(data.get("reason", "")), paused=bool(data["paused"]),
                     label=bool(data["label"]), seen=int(data.get("seen", 0)), kept=data.get("kept") is True,
                     events=_text(data.get("ev")), edit=_text(data.get("ed")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _text(value: object) -> str | None:
    return value[:200] if isinstance(value, str) else None


def read_checkbox(body: str) -> bool | None:
    match = _BOX.search(body or "")
    return None if match is None else match.group(1) != " "


def set_checkbox(body: str, checked: bool) -> str:
    return _BOX.sub(lambda m: m.group(0).replace(f"[{m.group(1)}]", "[x]" if checked else "[ ]", 1), body, count=1)


# --- Rendering ---------------------------------------------------------------


def shown_for(state: CampaignState, *, seen: int, events: str | None = None, edit: str | None = None) -> Shown:
    """What the bot shows for ``state``: the box and the label mirror the pause."""
    return Shown(state=campaign_status(state), reason=state.stopped.reason if state.stopped else "",
                 paused=state.paused, label=state.paused, seen=seen, events=events, edit=edit)


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
        "To **stop**, close this issue or comment `/mlr stop`: jobs in flight are canceled. Comments `/mlr pause` "
        "and `/mlr resume` work too. Only people with write access steer: anything else is set back.",
    ]
    if state.stopped is not None and state.stopped.reason == "human":
        lines += ["", "**Stopped by a person.** Reopen this issue (or comment `/mlr resume`) to resume."]
    elif state.final_running:
        lines += ["", "**Stopped; the final evaluation is running** (the best config again, from the reserve). The stop "
                  "report below says why it stopped. Comment `/mlr stop` to cancel the final evaluation's jobs."]
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


def _experiments(rows: list[ExperimentRow], total: int, state: CampaignState) -> str:
    if not rows:
        return "### Last experiments\n\nNo experiments yet." if total == 0 else (
            f"### Last experiments\n\n{total} experiments: the table is in `runs/summary.md`.")
    header = ["iter", "status", "decision", "metric", "best so far", "config", "flavor", "duration", "error"]
    lines = [f"### Last experiments ({len(rows)} of {total})" if len(rows) < total else "### Experiments", "",
             "| " + " | ".join(header) + " |", "| ---: | --- | --- | ---: | ---: | --- | --- | ---: | --- |"]
    for e in rows:
        cells = [str(e.iter), e.status, e.decision or "—", metric_cell(state, e), format_metric(e.best_so_far),
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
    before = [parts.get(k, "") for k in ("Stopped", FINAL_HEADING, "Budget", "In flight")] if state.stopped else [
        parts.get(k, "") for k in ("Best so far", "Budget", "In flight")]
    after = [parts.get("Progress", "")]
    experiments = list(state.experiments.values())
    shown_rows = experiments[-last:] if last > 0 else []
    for keep in range(len(shown_rows), -1, -1):
        text = _join(head, [*before, _experiments(shown_rows[len(shown_rows) - keep:], len(experiments), state), *after])
        if len(text) <= limit:
            return text
    optional = [*before, _experiments([], len(experiments), state), *after]
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
