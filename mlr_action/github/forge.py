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
  change. Its controls become ledger rows through
  :mod:`mlr_action.github.controls`, which counts only what people with
  write access are shown to have done (the issue and its history are read by
  :mod:`mlr_action.github.forge_controls`); a command's author comes from the
  comment. What else changed (a control nobody with write access made) is
  set back to the campaign's state; what writers changed is never
  overwritten by the bot (a click during a step counts next tick).
- People without write access get at most one reply per tick; a reply that
  fails (403, 5xx, a rate limit) is noted in the step's events and never
  aborts the tick.
- ``finish_step`` first hands ``runs/`` to the git sync (when it is
  installed), so a GitHub outage never loses ledger rows; then it refreshes
  the dashboard, posts the stop report (held by ``publish_stop_report`` until
  then) once per stop as a dashboard comment, and closes the escalations
  whose cause is gone (:mod:`mlr_action.github.forge_reports`).
- Escalations are one issue per kind, edited in place (not for a new
  timestamp alone), reopened when the problem returns and closed by
  :meth:`GitHubForge.resolve_escalation`.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from mlr_action.github import messages as msg
from mlr_action.github.api import GitHubAPI
from mlr_action.github.api_errors import Settings
from mlr_action.github.dashboard import Shown, clip, dashboard_title, read_checkbox, render_dashboard, shown_for
from mlr_action.github.forge_controls import DashboardControls, Tick, lf
from mlr_action.github.forge_reports import ForgeReports
from mlr_action.github.onboarding import close_onboarding, onboard
from mlr_action.core.recording import commit_message
from mlr_action.core.redaction import redact


def publish_runs_with_gitsync(root: Path, *, message: str) -> None:
    """Commit and push ``runs/`` through :mod:`mlr_action.github.gitsync`; nothing when that module is absent."""
    try:
        gitsync = importlib.import_module("mlr_action.github.gitsync")
    except ModuleNotFoundError as exc:
        if exc.name != "mlr_action.github.gitsync":
            raise
        return
    gitsync.publish_runs(root, message=message)


class GitHubForge(DashboardControls, ForgeReports):
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
        self._tick = Tick()

    def onboard(self) -> str:
        """No program.md here: open the onboarding PR and approval issue once, then wait for the merge."""
        self._tick = Tick()
        return onboard(self.api, self.root)

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
            self._tick = Tick()

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
        body, current = render(state.paused), lf(issue.body)
        if body != current and not tick.advance and dash.shown is not None:
            # Only the history read since moved (the bot's own events and writes): read it again next time.
            unread = replace(shown, events=dash.shown.events, edit=dash.shown.edit)
            body = current if render(state.paused, marker=unread) == current else body
        if body != current:
            fresh = lf(self.api.get_body(issue.number))
            clicked = read_checkbox(fresh)
            if clicked is not None and clicked != dash.checkbox:
                body = render(clicked, kept=True)  # a person clicked during this step: keep it, it counts next tick
            if body != fresh:
                changes["body"] = body
        if changes:
            self.api.edit(issue, **changes)
        return issue

