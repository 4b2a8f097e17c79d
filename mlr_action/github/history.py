"""What changed on the dashboard issue since the bot last read it, and who made each change.

Pure: no I/O and no clock. The adapter (:mod:`mlr_action.github.forge`)
reads, every tick, the issue's close, reopen and label events after the
cursor the hidden marker keeps (:func:`timeline_changes`), and the body's
edits after the newest one read (:func:`body_history`; the text after each
of them, only when someone other than the bot made one, gives
:func:`box_changes`). :func:`apply_history` turns those changes into what
the controls ask for, which :mod:`mlr_action.github.controls` makes
rows of.

Guarantees:

- For each control (closing, the pause label, the pause box) the last
  change made by someone with write access since the last read counts,
  even when someone without it undid it before the tick (and the other way
  round: a writer's reopen counts though a triage user closed the issue
  again). A control no writer changed stays as the bot showed it, whatever
  the issue shows now. Between writers the later change of a control counts;
  across controls, stopping and pausing win (github_controls).
- Every change by someone without write access, or by someone GitHub does
  not name, is ignored and answered, once per person and kind of change with
  a count; the bot's own change (an app: its mirror of the campaign's state)
  is neither a request nor answered.
- Who checked the box is read from the body's text after each edit: an edit
  elsewhere in the body neither takes a writer's click nor gives one.
- Without that history (a marker from before it was kept, edits GitHub no
  longer lists back to the last one read, texts GitHub does not give),
  :func:`asked` names the controls that differ from what the bot last
  showed, and a control counts only when everyone GitHub names as having
  made it has write access: the actor of the newest ``closed``/``reopened``
  or pause-label event, which must match what the issue shows
  (:func:`event_actors`), or every editor of the body since the bot last
  wrote it, or since the write before when the last one kept a person's
  click (:func:`body_editors`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Collection, Iterable

from mlr_action.github.dashboard import Change, Dashboard, read_checkbox
from mlr_action.github.messages import PAUSED_LABEL, Ignored
from mlr_action.core.state import CampaignState

CLOSE, REOPEN, LABEL, BOX = "close-issue", "reopen-issue", "label", "checkbox"  # also the rows' ``control``
EVENTS_LIMIT = 500  # issue events read in one tick (100 a query); more wait for the next tick, nothing is skipped

DOING = {  # what a person did, for the rows, the reply and the log; the label and the box by direction
    CLOSE: "closed", REOPEN: "reopened",
    (LABEL, True): f"added the `{PAUSED_LABEL}` label to", (LABEL, False): f"removed the `{PAUSED_LABEL}` label from",
    (BOX, True): "checked the pause box on", (BOX, False): "unchecked the pause box on",
}


def doing(control: str, on: bool) -> str:
    if control == CLOSE:
        return DOING[CLOSE if on else REOPEN]
    return DOING[control, on]


# --- What changed since the bot last read the issue -------------------------------


def timeline_changes(events: Iterable[tuple[str, str, str]]) -> list[Change]:
    """The controls' changes among the issue's ``(event, actor, label)`` events, oldest first."""
    changes = []
    for event, actor, label in events:
        if event in ("closed", "reopened"):
            changes.append(Change(CLOSE, event == "closed", actor))
        elif event in ("labeled", "unlabeled") and label == PAUSED_LABEL:
            changes.append(Change(LABEL, event == "labeled", actor))
    return changes


@dataclass(frozen=True)
class BodyHistory:
    """The body's edits as GitHub lists them, against the newest one the bot had read."""

    newest: str  # the newest edit's id, to read from next time ("": the body was never edited)
    since: tuple[tuple[str, str, str], ...] | None  # ``(id, edited_at, editor)`` after the one read; None: unknown
    bot_last: str  # the bot's newest write among them ("": none listed)
    others_after_bot: bool  # someone else edited the body after it (then its marker is the bot's word, not the body's)


def body_history(chunks: list[list[tuple[str, str, str]]], *, total: int, bot: str, since: str | None) -> BodyHistory:
    """Order the ``(id, edited_at, editor)`` edits GitHub listed (the first and the last ones, out of ``total``).

    ``since`` is the newest edit read last time ("" when there was none,
    None when unknown); the edits after it are known only when the listing
    reaches back to it.
    """
    edits = {edit[0]: edit for chunk in chunks for edit in chunk}
    if len(edits) < total:  # a gap in the middle: only the chunk with the newest edit runs up to now
        newest_chunk = max(chunks, key=lambda chunk: max((edit[1] for edit in chunk), default=""))
        edits = {edit[0]: edit for edit in newest_chunk}
    ordered = sorted(edits.values(), key=lambda edit: edit[1])
    ids = [edit[0] for edit in ordered]
    after: tuple[tuple[str, str, str], ...] | None = None
    if since == "" and len(ordered) >= total:
        after = tuple(ordered)
    elif since and since in ids:
        after = tuple(ordered[ids.index(since) + 1:])
    mine = [i for i, edit in enumerate(ordered) if edit[2] == bot]
    last = mine[-1] if mine else -1
    return BodyHistory(newest=ids[-1] if ids else "", since=after, bot_last=ordered[last][0] if mine else "",
                       others_after_bot=any(edit[2] != bot for edit in ordered[last + 1:]))


def box_changes(revisions: Iterable[tuple[str, str | None]], *, base: bool | None) -> list[Change] | None:
    """Who checked or unchecked the pause box, from ``(editor, body after the edit)`` oldest first.

    ``base`` is the box before the first of them. None when a revision's
    text is missing (GitHub did not give it): who changed the box is unknown.
    """
    changes, box = [], base
    for editor, body in revisions:
        if body is None:
            return None
        now = read_checkbox(body)
        if now is not None and box is not None and now != box:
            changes.append(Change(BOX, now, editor))
        box = now if now is not None else box
    return changes


def apply_history(dash: Dashboard, writers: Collection[str]) -> tuple[Dashboard, list[Ignored]]:
    """The dashboard as the changes since the last read leave it, and the changes to ignore and answer.

    For each control with a known history (``dash.changes``), the last
    change by someone with write access sets it, whatever the issue shows
    now; without one it is what the bot showed. Every other change is
    ignored, counted per person and kind; the bot's own (an app: the mirror
    of the campaign's state) is neither a request nor answered.
    """
    shown = dash.shown
    assert shown is not None
    values = {CLOSE: not dash.open, LABEL: dash.label, BOX: dash.checkbox}
    made = dict(dash.made_by)
    others: Counter[tuple[str, str]] = Counter()
    for control, changes in dash.changes.items():
        values[control] = {CLOSE: shown.human_stop, LABEL: shown.label, BOX: shown.paused}[control]
        for change in changes:
            if change.by and change.by in writers:
                values[control] = change.on
                made[REOPEN if (control, change.on) == (CLOSE, False) else control] = (change.by,)
            elif not (change.by and change.by == dash.bot):
                others[doing(control, change.on), change.by] += 1
    box = None if dash.checkbox is None else values[BOX]
    ignored = [Ignored(what=what, by=(who,) if who else (), times=n) for (what, who), n in others.items()]
    return replace(dash, open=not values[CLOSE], label=bool(values[LABEL]), checkbox=box, made_by=made), ignored


# --- Without the history: who made what differs from what the bot showed -----------


def asked(dash: Dashboard, state: CampaignState) -> set[str]:
    """The controls that differ from what the bot last showed and may change the campaign: whose maker to find."""
    shown = dash.shown
    if shown is None:
        return set()
    found = set()
    human_stop = state.stopped is not None and state.stopped.reason == "human"
    if not dash.open and state.stopped is None and shown.state != "stopped":
        found.add(CLOSE)
    if dash.open and human_stop and shown.human_stop:
        found.add(REOPEN)
    if dash.label != shown.label:
        found.add(LABEL)
    if dash.checkbox is not None and dash.checkbox != shown.paused:
        found.add(BOX)
    return found


def event_actors(events: Iterable[tuple[str, str, str]], *, wanted: Collection[str], dash: Dashboard,
                 limit: int = EVENTS_LIMIT) -> dict[str, tuple[str, ...]]:
    """Who made the ``wanted`` issue-state controls, from ``(event, actor, label)`` newest first.

    The newest ``closed``/``reopened`` event must be the one the issue shows,
    and the newest event of the pause label must match whether it is there;
    otherwise (or when there is none within ``limit``) nobody is named.
    """
    wanted = {w for w in wanted if w in (CLOSE, REOPEN, LABEL)}
    found: dict[str, tuple[str, ...]] = {}
    events = iter(events)
    for _ in range(limit):
        if not wanted - found.keys():
            break
        event, actor, label = next(events, ("", "", ""))
        if not event:
            break
        if event in ("closed", "reopened"):
            for control, kind in ((CLOSE, "closed"), (REOPEN, "reopened")):
                if control in wanted and control not in found:
                    found[control] = (actor,) if event == kind and actor else ()
        elif event in ("labeled", "unlabeled") and label == PAUSED_LABEL and LABEL in wanted and LABEL not in found:
            found[LABEL] = (actor,) if (event == "labeled") == dash.label and actor else ()
    return found


def body_editors(chunks: list[list[tuple[str, str, str]]], *, total: int, bot: str, kept: bool) -> tuple[str, ...]:
    """Who edited the body since the bot's last write (the one before, when that one ``kept`` a click).

    ``chunks`` are lists of ``(id, edited_at, editor)`` that GitHub gave (the
    first and the last edits, in whatever order it lists them) out of
    ``total``; ``()`` when the history does not reach back that far. An edit
    in the same second as the bot's counts as after it.
    """
    edits = {edit[0]: edit for chunk in chunks for edit in chunk}
    complete = len(edits) >= total
    if not complete:  # a gap in the middle: only the chunk with the newest edit runs up to now
        newest = max(chunks, key=lambda chunk: max((edit[1] for edit in chunk), default=""))
        edits = {edit[0]: edit for edit in newest}
    ordered = sorted(edits.values(), key=lambda edit: edit[1])
    writes = [at for _, at, who in ordered if who == bot]
    need = 2 if kept else 1
    if len(writes) < need and not complete:
        return ()
    since = writes[-need] if len(writes) >= need else ""
    people = tuple(dict.fromkeys(who for _, at, who in ordered if who != bot and at >= since))
    # Only the bot's own login since: a person's token runs the bot, so their clicks carry its login.
    return people or ((bot,) if ordered and ordered[-1][2] == bot else ())
