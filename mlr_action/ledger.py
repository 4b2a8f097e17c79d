"""runs/ledger.jsonl: the append-only log that is the campaign's only source of truth.

Guarantees (DESIGN.md section 3):

- One JSON object per line. Experiment rows carry at least the seed's fields
  (``iter, ts, hypothesis, config, job_id, status, metric, hub_url, decision,
  best_so_far, timeout``); a later row for the same ``iter`` is a complete
  snapshot that supersedes the earlier ones. Campaign events (started,
  stopped, paused, resumed, escalated, the proposer's llm and research
  rows, and deleted Hub repos) are rows with an ``event`` field.
- Appends write whole lines and fsync, so a crash leaves at most one truncated
  last line. :func:`read_ledger` drops (and :func:`repair_ledger` removes) such
  a line; any other unreadable line raises :class:`LedgerError` naming the
  line, and nothing is spent on a ledger that cannot be read.
- Unknown fields are kept (``extra="allow"``), so rows written by a newer
  version or by the seed's own loop are read, not rejected.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlr_action.durations import format_duration

LEDGER_PATH = Path("runs") / "ledger.jsonl"

# "proposed" is our extension of the seed's statuses: an intent written before a
# submit, so a crash between submit and commit can be matched to its job.
ExperimentStatus = Literal["proposed", "submitted", "running", "completed", "error", "canceled"]
IN_FLIGHT: frozenset[str] = frozenset({"proposed", "submitted", "running"})
FINISHED: frozenset[str] = frozenset({"completed", "error", "canceled"})


class ExperimentRow(BaseModel):
    """One experiment at one moment. Later rows for the same iter supersede earlier ones."""

    model_config = ConfigDict(extra="allow")

    iter: int = Field(ge=0)
    ts: str
    hypothesis: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    job_id: str | None = None
    status: ExperimentStatus
    metric: float | None = None
    hub_url: str | None = None
    decision: Literal["keep", "discard"] | None = None
    best_so_far: float | None = None
    timeout: str = ""
    # Extensions over the seed's row.
    flavor: str | None = None
    timeout_s: int | None = None
    duration_s: float | None = None
    cost_usd: float | None = None
    error: str | None = None
    reason: str | None = None
    proposer: str | None = None
    output_repo: str | None = None

    @property
    def charged_timeout_s(self) -> int:
        from mlr_action.durations import parse_duration

        if self.timeout_s:
            return self.timeout_s
        try:
            return parse_duration(self.timeout)
        except ValueError:
            return 0


class EventRow(BaseModel):
    """A campaign-level event."""

    model_config = ConfigDict(extra="allow")

    # "llm": one proposer decision's LLM spend (``llm_usd``), or why search stood in;
    # "research": one research attempt, with ``after`` (finished experiments) and its ``note``.
    # "deleted": Hub repos of discarded runs deleted at the stop (allow_deletes), see mlr_action.cleanup.
    event: Literal["started", "stopped", "paused", "resumed", "escalated", "llm", "research", "deleted"]
    ts: str
    reason: str = ""
    detail: str = ""
    campaign: str | None = None
    program: str | None = None  # fingerprint of the program.md blocks in force


Row = ExperimentRow | EventRow


class LedgerError(Exception):
    """The ledger has a line that cannot be read; nothing may be spent until it is fixed."""


def parse_row(data: Any) -> Row:
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    if "event" in data:
        return EventRow.model_validate(data)
    return ExperimentRow.model_validate(data)


def _parse_lines(text: str, path: Path) -> tuple[list[Row], bool]:
    """Rows, and whether the last line was a truncated write to drop."""
    lines = text.split("\n")
    rows: list[Row] = []
    last = len(lines) - 1
    truncated = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(parse_row(json.loads(line)))
        except json.JSONDecodeError as exc:
            # A crash mid-append leaves a last line with no newline after it.
            if number - 1 == last and not text.endswith("\n"):
                truncated = True
                continue
            raise LedgerError(
                f"{path}:{number} is not valid JSON ({exc.msg}); fix or remove that line "
                "(every line must be one JSON object); nothing was spent"
            ) from None
        except (ValidationError, ValueError) as exc:
            detail = exc.errors()[0] if isinstance(exc, ValidationError) else None
            why = (
                f"{'.'.join(map(str, detail['loc']))}: {detail['msg']}" if detail else str(exc)
            )
            raise LedgerError(
                f"{path}:{number} is not a ledger row ({why}); fix or remove that line; nothing was spent"
            ) from None
    return rows, truncated


def read_ledger(path: Path) -> list[Row]:
    """Every row of the ledger at ``path`` (none when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except UnicodeDecodeError:
        raise LedgerError(f"{path} is not UTF-8 text; restore it from git; nothing was spent") from None
    return _parse_lines(text, path)[0]


def repair_ledger(path: Path) -> bool:
    """Drop a truncated last line left by a crash; True when something was removed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return False
    _, truncated = _parse_lines(text, path)
    if not truncated:
        return False
    keep = text[: text.rfind("\n") + 1]
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text(keep, encoding="utf-8")
    os.replace(tmp, path)
    return True


def dump_row(row: Row) -> str:
    return json.dumps(row.model_dump(mode="json", exclude_none=False), sort_keys=False, allow_nan=False)


def append_rows(path: Path, rows: list[Row]) -> None:
    """Append whole lines and fsync: a crash can only truncate the last one."""
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(dump_row(r) + "\n" for r in rows)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())


def experiment_row(
    *,
    iter: int,
    ts: str,
    status: str,
    config: dict[str, Any],
    timeout_s: int,
    flavor: str,
    hypothesis: str = "",
    **extra: Any,
) -> ExperimentRow:
    """A new experiment row with the seed's ``timeout`` string filled from seconds."""
    return ExperimentRow(
        iter=iter,
        ts=ts,
        status=status,  # type: ignore[arg-type]
        config=config,
        timeout=format_duration(timeout_s),
        timeout_s=timeout_s,
        flavor=flavor,
        hypothesis=hypothesis,
        **extra,
    )
