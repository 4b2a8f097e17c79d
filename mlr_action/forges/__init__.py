"""Forges: where reports reach people (DESIGN.md section 5).

Every forge guarantees:

- ``publish_stop_report(title=, body=)`` posts the stop report once per
  campaign: publishing the same report again updates it, never duplicates it.
- ``publish_escalation(kind=, title=, body=)`` keeps one report per ``kind``
  and rewrites it, so an escalation repeated every tick never piles up.
- ``read_controls(state=)`` returns the event rows (paused, resumed, stopped
  by a person) that human controls ask for and the ledger does not yet show.
- ``onboard()`` is called when there is no program.md; it says what happens
  next (the none forge: run ``mlr init``; github: the onboarding PR).
- ``finish_step(step=)`` runs once at the end of every step that read the
  program, after the summary is written: the place to commit and push
  ``runs/`` and refresh a dashboard. It must be idempotent.
- ``publish(message=)`` puts every row written so far where the next tick
  reads it, with ``message`` as the commit message, and raises a
  :class:`~mlr_action.core.jobs.BackendError` when it cannot (transient:
  the next tick retries; permanent: a protected branch, no permission). The
  step calls it in the middle of a step, before it spends (see
  :attr:`mlr_action.shell.step.Step.publish`); ``none`` has nothing to publish.

``none`` writes the reports as files under ``runs/`` (local use); ``github``
posts issues and is imported only when asked for, so a local step never
imports PyGithub.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

from mlr_action.forges.files import FileForge

FORGES = ("none", "github")


class Forge(Protocol):
    def publish_stop_report(self, *, title: str, body: str) -> Any: ...

    def publish_escalation(self, *, kind: str, title: str, body: str) -> Any: ...

    def resolve_escalation(self, *, kind: str) -> Any: ...

    def read_controls(self, *, state: Any) -> list[Any]: ...

    def onboard(self) -> str: ...

    def finish_step(self, *, step: Any) -> None: ...

    def publish(self, *, message: str) -> Any: ...


def make_forge(name: str, *, root: Path) -> Forge:
    """The forge called ``name`` for the campaign repository at ``root``."""
    if name == "none":
        return FileForge(root)
    if name == "github":
        try:
            module = importlib.import_module("mlr_action.github.forge")
        except ModuleNotFoundError as exc:
            if exc.name != "mlr_action.github.forge":
                raise ValueError(
                    f"--forge github needs {exc.name}, which is not installed "
                    "(pip install 'mlr-action[github]'), or use --forge none"
                ) from None
            raise ValueError("--forge github is not available yet; use --forge none") from None
        return module.GitHubForge(root=root)
    raise ValueError(f"unknown forge {name!r} (use one of: {', '.join(FORGES)})")
