"""The value types of program.md's fields: each reads what a reviewer reads, or says why not and how to fix it.

Guarantees:

- A duration (:data:`Duration`) is stored in seconds, read by :func:`mlr_action.core.durations.parse_duration`
  (``30m``, ``2h30m``, a number of seconds); anything else is refused with the forms it may take.
- A flavor (:data:`Flavor`) is a known HF Jobs flavor; a near miss is answered with the one it nearly is,
  anything else with the known ones.
- An image (:data:`Image`) is a name like ``pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime``, with no spaces or
  quotes; a dependency (:data:`Dependency`) a requirement that starts with a letter or digit and holds no
  control character (index options go in requirements.txt); a Python version (:data:`PythonVersion`) a quoted
  ``3.X`` or ``3.X.Y``, never a number (``3.10`` would read as ``3.1``).
- A value quoted back in a message is cut to a few dozen characters (:func:`shown`), never a megabyte of it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field

from mlr_action.core.durations import HINT as DURATION_HINT
from mlr_action.core.durations import parse_duration
from mlr_action.core.flavors import KNOWN_FLAVORS, suggest_flavor


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: a problem quotes the value, not a megabyte of it."""
    text = repr(value) if not isinstance(value, (dict, list)) or len(value) < 20 else f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _duration(value: Any) -> int:
    if not isinstance(value, (str, int, float)) or isinstance(value, str) and len(value) > 40:
        raise ValueError(f"{shown(value)} is not a duration ({DURATION_HINT})")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


Duration = Annotated[int, BeforeValidator(_duration), Field(json_schema_extra={"examples": ["30m", "2h", "2h30m", 3600]})]


def _flavor(value: Any) -> str:
    if not isinstance(value, str) or value not in KNOWN_FLAVORS:
        hint = suggest_flavor(str(value)[:40])
        fix = f"did you mean {hint}?" if hint else "known flavors: " + ", ".join(KNOWN_FLAVORS)
        raise ValueError(f"{shown(value)} is not an HF Jobs flavor ({fix})")
    return value


Flavor = Annotated[str, BeforeValidator(_flavor)]

STRICT = ConfigDict(extra="forbid", frozen=True)


def _checked(pattern: str, fix: str):
    """A validator that lets a string matching ``pattern`` through, and otherwise says ``fix``."""
    compiled = re.compile(pattern)

    def check(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str) or not compiled.fullmatch(value):
            raise ValueError(f"{shown(value)} {fix}")
        return value

    return check


def _python_version(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"{shown(value)} is a number; quote it, like python: '3.11' (as a number, 3.10 reads as 3.1)")
    return _checked(r"3\.[0-9]{1,2}(\.[0-9]{1,3})?", "is not a Python version (like '3.11' or '3.12.7')")(value)


Image = Annotated[str, BeforeValidator(_checked(
    r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}",
    "is not a container image (like pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime); no spaces or quotes"))]
Dependency = Annotated[str, BeforeValidator(_checked(
    r"[A-Za-z0-9][^\x00-\x1f\x7f]{0,199}",
    "is not a package requirement (like torch>=2.4 or transformers==4.46.0); index options such as "
    "--index-url go in requirements.txt"))]
PythonVersion = Annotated[str, BeforeValidator(_python_version)]
