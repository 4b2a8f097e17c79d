"""runs/ledger.jsonl: the append-only log that is the record of the campaign.

Guarantees (DESIGN.md section 3):

- One JSON object per line. Experiment rows carry at least the seed's fields
  (``iter, ts, hypothesis, config, job_id, status, metric, hub_url, decision,
  best_so_far, timeout``); a later row for the same ``iter`` is a complete
  snapshot that supersedes the earlier ones. Campaign events (started,
  stopped, paused, resumed, escalated, the proposer's llm and research
  rows, deleted Hub repos, and the end of the final evaluation) are rows
  with an ``event`` field. A row with ``final_of`` is a repeat of the final
  evaluation, not a search experiment.
- Appends write whole lines and fsync, so a crash leaves at most one truncated
  last line. The ledger is written only below the campaign folder, never
  through a symlink (:mod:`mlr_action.core.safepath`). :func:`read_ledger` drops (and :func:`repair_ledger` removes) such
  a line; any other unreadable line raises :class:`LedgerError` naming the
  line, and nothing is spent on a ledger that cannot be read.
- Unknown fields are kept (``extra="allow"``), so rows written by a newer
  version or by the seed's own loop are read, not rejected.
- What the budget is computed from cannot be bent by a bad line: ``NaN``,
  ``Infinity`` and numbers too large for a float are refused, as are negative
  durations, costs and LLM spend, and a ``timeout`` that is not a duration.
  Such a line is a :class:`LedgerError`, never a crash and never a row that
  counts less than it spent.
- :func:`dump_row` redacts every string it writes
  (:func:`mlr_action.core.redaction.redact`), so no token reaches the ledger,
  plainly or encoded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlr_action.core import safepath
from mlr_action.core.durations import format_duration
from mlr_action.core.redaction import redact

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
    timeout_s: int | None = Field(None, ge=0)
    duration_s: float | None = Field(None, ge=0, allow_inf_nan=False)
    cost_usd: float | None = Field(None, ge=0, allow_inf_nan=False)
    error: str | None = None
    reason: str | None = None
    proposer: str | None = None
    output_repo: str | None = None
    # GitHub mode: the commit at the tip of the default branch that authorized this experiment's spend
    # (the job carries it as the ``mlr-commit`` label). None for a local step. Recorded by the bot, kept
    # on every later row of the iter; like every row, data for people, never read back as authority.
    commit: str | None = None
    # The digest of the campaign folder the job ran in (mlr_action.job.shipped: the same content gives the same
    # digest, committed or not), and what ran it when that may differ from HF (the local backend without uv).
    folder_hash: str | None = None
    runner: str | None = None
    # The final evaluation (mlr_action.core.final): a row with ``final_of`` is a repeat of that search iter's config,
    # run after the stop; it never counts for keep/discard, patience, the best so far or the proposer.
    final_of: int | None = Field(None, ge=1)
    repeat: int | None = Field(None, ge=1)  # 1-based, of the final block's repeats
    final_seed: int | None = None  # the seed it was given (for people: the job gets it from program.md)

    @model_validator(mode="after")
    def _chargeable(self) -> ExperimentRow:
        from mlr_action.core.durations import parse_duration

        if self.timeout and self.timeout_s is None:
            try:
                parse_duration(self.timeout)
            except ValueError:
                raise ValueError(f"timeout {self.timeout[:40]!r} is not a duration (the budget charges it)") from None
        return _check_llm_usd(self)

    @property
    def charged_timeout_s(self) -> int:
        from mlr_action.core.durations import parse_duration

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
    # "deleted": Hub repos of discarded runs deleted at the stop (allow_deletes), see mlr_action.core.cleanup.
    # "final": the final evaluation after the stop ended (``reason``: finished, unaffordable, refused).
    event: Literal["started", "stopped", "paused", "resumed", "escalated", "llm", "research", "deleted", "final"]
    ts: str
    reason: str = ""
    detail: str = ""
    campaign: str | None = None
    program: str | None = None  # fingerprint of the program.md blocks in force

    @model_validator(mode="after")
    def _chargeable(self) -> EventRow:
        return _check_llm_usd(self)


def _check_llm_usd(row: Any) -> Any:
    """``llm_usd`` (an extra field the budget sums) must be a non-negative, finite number of dollars."""
    spent = (row.model_extra or {}).get("llm_usd")
    if spent is not None and (isinstance(spent, bool) or not isinstance(spent, (int, float)) or not 0 <= spent < float("inf")):
        raise ValueError(f"llm_usd must be a non-negative number of dollars, not {str(spent)[:40]!r}")
    return row


Row = ExperimentRow | EventRow


class LedgerError(Exception):
    """The ledger has a line that cannot be read; nothing may be spent until it is fixed."""


def parse_row(data: Any) -> Row:
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    if "event" in data:
        return EventRow.model_validate(data)
    return ExperimentRow.model_validate(data)


def _not_json_number(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows (write null where there is no value)")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:40]} is too large for a number")
    return value


def _load_line(line: str) -> Any:
    return json.loads(line, parse_constant=_not_json_number, parse_float=_finite)


def _parse_lines(text: str, path: Path) -> tuple[list[Row], bool]:
    """Rows, and whether the last line was a truncated write to drop."""
    lines = text.removeprefix("\ufeff").split("\n")  # a BOM left by an editor is not part of the first row
    rows: list[Row] = []
    last = len(lines) - 1
    truncated = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(parse_row(_load_line(line)))
        except json.JSONDecodeError as exc:
            # A crash mid-append leaves a last line with no newline after it.
            if number - 1 == last and not text.endswith("\n"):
                truncated = True
                continue
            raise LedgerError(
                f"{path}:{number} is not valid JSON ({exc.msg}); fix or remove that line "
                "(every line must be one JSON object); nothing was spent"
            ) from None
        except RecursionError:
            raise LedgerError(f"{path}:{number} is nested too deeply to be a ledger row; fix or remove that line; "
                              "nothing was spent") from None
        except (ValidationError, ValueError) as exc:
            detail = exc.errors()[0] if isinstance(exc, ValidationError) else None
            where = ".".join(map(str, detail["loc"])) if detail else ""
            why = str(detail["msg"]).removeprefix("Value error, ").removesuffix(".") if detail else str(exc)
            why = f"{where}: {why}" if where else why
            if detail and detail["loc"] == ("event",):  # a kind a newer mlr-action writes, or a typo
                why += "; a newer mlr-action may have written it: upgrade the action"
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


def repair_ledger(path: Path, *, root: Path | None = None) -> bool:
    """Drop a truncated last line left by a crash; True when something was removed.

    ``root`` is the campaign folder (default: the one ``runs/ledger.jsonl`` is in); the file is rewritten
    only below it, never through a symlink (:mod:`mlr_action.core.safepath`).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return False
    if not text or text.endswith("\n"):  # whole lines only: nothing to repair, no need to parse
        return False
    _, truncated = _parse_lines(text, path)
    if not truncated:
        return False
    keep = text[: text.rfind("\n") + 1]
    safepath.replace(_root_of(path, root), path, keep.encode("utf-8"))
    return True


def dump_row(row: Row) -> str:
    def clean(value: Any) -> Any:
        if isinstance(value, str):  # lone surrogates (from a job's bytes) cannot be written as UTF-8
            return redact(value.encode("utf-8", "replace").decode("utf-8"))
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value

    data = clean(row.model_dump(mode="json", exclude_none=False))
    for key in _UNSET_UNSAID:
        if data.get(key, 0) is None:
            del data[key]
    return json.dumps(data, sort_keys=False, allow_nan=False)


# Fields a search row does not have: left out when unset, so a campaign without a final block writes the rows it
# always wrote (the seed's fields are always there, null or not).
_UNSET_UNSAID = ("final_of", "repeat", "final_seed")


def append_rows(path: Path, rows: list[Row], *, root: Path | None = None) -> None:
    """Append whole lines and fsync: a crash can only truncate the last one.

    ``root`` is the campaign folder (default: the one ``runs/ledger.jsonl`` is in): the ledger, and every
    folder between it and ``root``, must not be a symlink (:class:`~mlr_action.core.safepath.UnsafePath`).
    """
    if not rows:
        return
    payload = "".join(dump_row(r) + "\n" for r in rows)
    safepath.append(_root_of(path, root), path, payload.encode("utf-8"))


def _root_of(path: Path, root: Path | None) -> Path:
    """The campaign folder of the ledger at ``path``: ``root``, or the parent of the folder the file is in."""
    return Path(root) if root is not None else Path(path).parent.parent


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
