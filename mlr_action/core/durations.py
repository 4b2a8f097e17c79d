"""Durations as people write them in program.md: ``30m``, ``2h``, ``2h30m``, ``90s``, ``1d``, ``3600``.

Guarantees: :func:`parse_duration` accepts exactly those forms (a bare number
is seconds) and raises :class:`ValueError` on anything else, never returning 0
for garbage, so a typo can never turn a limit into "no limit".
"""

from __future__ import annotations

import re

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
HINT = "use 30m, 2h, 2h30m or seconds"


def parse_duration(value: object) -> int:
    """Seconds in ``value``; raises ValueError naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration ({HINT})")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"{value!r} is not a positive duration ({HINT})")
        return value
    if isinstance(value, float) and value.is_integer() and value > 0:
        return int(value)
    text = str(value).strip().lower().replace(" ", "")
    if text.isdigit() and int(text) > 0:
        return int(text)
    match = _DURATION.match(text)
    if not text or not match or not any(match.groups()):
        raise ValueError(f"{str(value)!r} is not a duration ({HINT})")
    seconds = sum(int(n) * unit for n, unit in zip(match.groups(), _UNITS.values()) if n)
    if seconds <= 0:
        raise ValueError(f"{str(value)!r} is not a positive duration ({HINT})")
    return seconds


def format_duration(seconds: float) -> str:
    """Compact human form: 5400 -> ``1h30m``, 45 -> ``45s``, 0 -> ``0s``."""
    seconds = int(round(seconds))
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
