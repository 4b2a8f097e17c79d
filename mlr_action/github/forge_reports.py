"""The forge's reports: the stop report on the dashboard and one escalation issue per kind.

:class:`ForgeReports` is the part of :class:`~mlr_action.github.forge.GitHubForge`
that reports. Guarantees:

- The stop report is held by :meth:`~ForgeReports.publish_stop_report` until
  ``finish_step`` has pushed ``runs/``, then posted once per stop as a
  dashboard comment (found again by its marker among the bot's own comments)
  and edited only when more than its footer changed.
- Escalations are one issue per kind, found by label and marker, edited in
  place (not for a new timestamp alone), reopened when the problem returns
  and closed, saying so, by :meth:`~ForgeReports.resolve_escalation` or when
  the step shows their cause is gone (``StepResult.fixed_escalations``),
  unless the same step published that kind again.
- Every title and body passes :func:`~mlr_action.core.redaction.redact` and is
  clipped below GitHub's size limit before it is compared or written.
"""

from __future__ import annotations

import re
from typing import Any

from mlr_action.github import messages as msg
from mlr_action.github.api import GitHubAPI
from mlr_action.github.api_errors import login_of
from mlr_action.github.dashboard import clip
from mlr_action.github.forge_controls import Tick, lf
from mlr_action.core.redaction import redact

_FOOTER = re.compile(r"^<sub>mlr-action · .*</sub>$", re.M)
_ESCALATION = re.compile(r"<!-- mlr-action:escalation:([a-z0-9-]+) -->")


class ForgeReports:
    """Posts stop reports and escalations; the forge that inherits it gives ``api`` and ``_tick``."""

    api: GitHubAPI
    _tick: Tick

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
        elif _FOOTER.sub("", lf(existing.body)) != _FOOTER.sub("", text):
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
        if _FOOTER.sub("", lf(issue.body)) != _FOOTER.sub("", clip(redact(text))):
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
