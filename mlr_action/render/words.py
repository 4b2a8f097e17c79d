"""The small formatters every page uses: a time, a price, a configuration, a cut-off text.

Guarantees: pure functions of their arguments; the text they return is plain (a caller marks it up
with :mod:`mlr_action.core.markup`); a shortened text says it was cut. Imports only the core.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from mlr_action.core.markup import code
from mlr_action.core.redaction import redact

# --- Formatting shared with the summary ---------------------------------------


def format_now(now: datetime | str) -> str:
    """``now`` as printed: an aware datetime becomes UTC ISO 8601 with a Z; a string is kept."""
    if isinstance(now, datetime):
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be a timezone-aware datetime")
        return now.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return str(now)


def format_usd(value: float) -> str:
    return f"${value:,.2f}"


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_config(config: dict[str, Any]) -> str:
    """``lr=0.001, batch_size=16`` in the config's own order; ``—`` when empty."""
    if not config:
        return "—"
    return redact(", ".join(f"{name}={_format_value(value)}" for name, value in config.items()))


def shown_config(config: dict[str, Any]) -> str:
    """A config as code (its values may come from an LLM or a job); ``—`` when empty."""
    return code(format_config(config)) if config else "—"


def shorten(text: str | None, limit: int = 80) -> str:
    """One redacted line of at most ``limit`` characters (``…`` marks a cut)."""
    if not text:
        return ""
    one_line = " ".join(redact(text).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1].rstrip() + "…"


def short_error(text: str | None, limit: int = 80) -> str:
    """The most telling line of an error: the last non-empty one (a traceback's exception)."""
    if not text:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return shorten(lines[-1] if lines else text, limit)


def tail(text: str, *, lines: int = 40, chars: int = 4000) -> str:
    """The redacted end of a log, short enough to keep an issue readable."""
    kept = "\n".join(redact(text).rstrip().splitlines()[-lines:])
    return kept if len(kept) <= chars else "…" + kept[-chars:]
