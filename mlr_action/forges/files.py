"""The ``none`` forge: reports as Markdown files under ``runs/``, for a step with no GitHub.

Guarantees:

- The stop report is ``runs/stop-report.md``; an escalation of ``kind`` is
  ``runs/escalations/<kind>.md``. One file each, rewritten in place, so a
  repeated report never piles up files.
- Reports land inside ``runs/`` only: a symlinked ``runs/``, report folder or
  report is refused (:class:`~mlr_action.core.safepath.UnsafePath`, a
  :class:`~mlr_action.core.jobs.PermanentError`), never followed.
- Writes are atomic (a temporary file in the same folder, then
  :func:`os.replace`): a reader sees the old file or the new one, never half
  of one. Publishing identical content leaves the file untouched.
- A report is redacted (:func:`mlr_action.core.redaction.redact`) before it is
  written, whoever rendered it.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlr_action.core import safepath
from mlr_action.core.redaction import redact

_KIND = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def write_atomic(path: Path, text: str, *, root: Path) -> None:
    """Replace ``path`` (below ``root``, never through a link) with ``text`` in one step; skip it when unchanged."""
    safepath.check(root, path)
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    safepath.replace(root, path, text.encode("utf-8"))


def _document(title: str, body: str) -> str:
    return redact(f"# {title}\n\n{body.rstrip()}\n")


class FileForge:
    """Reports as files under ``<root>/runs/``."""

    name = "none"

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def stop_report_path(self) -> Path:
        return self.root / "runs" / "stop-report.md"

    def escalation_path(self, kind: str) -> Path:
        if not _KIND.match(kind):
            raise ValueError(f"escalation kind {kind!r} must look like invalid-program (a-z, 0-9, -)")
        return self.root / "runs" / "escalations" / f"{kind}.md"

    def publish_stop_report(self, *, title: str, body: str) -> Path:
        path = self.stop_report_path
        write_atomic(path, _document(title, body), root=self.root)
        return path

    def publish_escalation(self, *, kind: str, title: str, body: str) -> Path:
        path = self.escalation_path(kind)
        write_atomic(path, _document(title, body), root=self.root)
        return path

    def resolve_escalation(self, *, kind: str) -> bool:
        """Remove the report of ``kind`` once its cause is fixed; True when there was one."""
        path = self.escalation_path(kind)
        safepath.check(self.root, path)  # never removes a file through a linked folder
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def read_controls(self, *, state) -> list:
        """A local campaign has no dashboard; pause or stop it by stopping `mlr run`."""
        return []

    def onboard(self) -> str:
        return "no program.md here: run `mlr init` to draft one, review it, then run `mlr step` again"

    def publish(self, *, message: str) -> None:
        """Nothing to publish: locally the appended, fsynced rows are the record."""

    def finish_step(self, *, step) -> None:
        """Nothing to commit or push locally; escalation files whose cause is gone are removed."""
        for kind in sorted(step.fixed_escalations()):
            self.resolve_escalation(kind=kind)
