"""Writing a draft into the program.md template: a first envelope, and the two YAML blocks edited key by key.

Guarantees (pure): the template's prose and every key of its YAML blocks the
draft does not set are kept as they are (a key added to the template later
survives); a key the draft sets replaces that key's line and its indented
continuation lines, keeping the template's comment. Values are written as
plain YAML that :mod:`mlr_action.core.program_yaml` reads back as the same value
(floats always with a dot, strings quoted when they could read as anything
else). Comments carry only printable ASCII. The first envelope is small:
:data:`FIRST_JOBS` jobs (one when there is nothing to search) of one hour
on the cheapest flavor that fits, with a walltime and a dollar ceiling that
hold every one of those jobs after the step's reserve, each with the
starting allowance HF jobs reserve (the default ``scheduling_timeout``) on
top of its timeout, and no room for one more.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from mlr_action.core.budget import RESERVE, billed_hours
from mlr_action.core.durations import format_duration
from mlr_action.core.flavors import BUILTIN_PRICES_USD_PER_HOUR
from mlr_action.core.program import Campaign

FIRST_JOBS = 8
JOB_TIMEOUT_S = 3600
STARTING_S = int(Campaign.model_fields["scheduling_timeout"].default)  # the draft sets no scheduling_timeout
CPU_FLAVOR = min((f for f in BUILTIN_PRICES_USD_PER_HOUR if f.startswith("cpu")), key=BUILTIN_PRICES_USD_PER_HOUR.get)
GPU_FLAVOR = min((f for f in BUILTIN_PRICES_USD_PER_HOUR if not f.startswith("cpu")), key=BUILTIN_PRICES_USD_PER_HOUR.get)
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}
_COMMENT_COLUMN = 30


@dataclass(frozen=True)
class FirstEnvelope:
    flavor: str
    max_jobs: int
    timeout_s: int
    max_walltime_s: int
    max_cost_usd: int
    starting_s: int = 0  # what each job reserves to start on HF (the Campaign's default scheduling_timeout)


def first_envelope(*, gpu: bool, searching: bool) -> FirstEnvelope:
    """The smallest envelope that lets every drafted job run on HF: each job reserves its timeout plus what HF may
    bill while it starts (:data:`STARTING_S`, as :func:`mlr_action.core.budget.budget_problems` charges it), in started
    minutes, and the step keeps :data:`RESERVE` back."""
    flavor = GPU_FLAVOR if gpu else CPU_FLAVOR
    jobs = FIRST_JOBS if searching else 1
    job_s = JOB_TIMEOUT_S + STARTING_S
    walltime = math.ceil(jobs * job_s / (1 - RESERVE) / 600) * 600
    dollars = max(1, math.ceil(jobs * billed_hours(job_s) * BUILTIN_PRICES_USD_PER_HOUR[flavor] / (1 - RESERVE)))
    return FirstEnvelope(flavor, jobs, JOB_TIMEOUT_S, walltime, dollars, STARTING_S)


# --- values and lines -------------------------------------------------------------------------


def yaml_value(value: Any) -> str:
    """``value`` as a plain YAML scalar that reads back as itself."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if e and "." not in mantissa:
            text = f"{mantissa}.0e{exponent}"
        return text
    text = str(value)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./+-]*", text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)


def spec_value(spec: dict[str, Any]) -> str:
    """A search-space entry as one flow mapping: ``{type: float, low: 0.1, high: 10.0, log: true}``."""
    if "choices" in spec:
        return "{choices: [" + ", ".join(yaml_value(c) for c in spec["choices"]) + "]}"
    return "{" + ", ".join(f"{k}: {yaml_value(spec[k])}" for k in ("type", "low", "high", "log") if k in spec) + "}"


def comment(text: str) -> str:
    return re.sub(r"[^ -~]", "?", text)


def line(key: str, value: str, note: str, *, indent: str = "") -> str:
    head = f"{indent}{key}: {value}" if value else f"{indent}{key}:"
    return head.ljust(_COMMENT_COLUMN - 1) + " # " + comment(note) if note else head


# --- the template -----------------------------------------------------------------------------


def block_span(lines: list[str], heading: str) -> tuple[int, int]:
    """``(first, end)`` line indexes of the ```yaml block's content under ``## heading`` in the template."""
    start = lines.index(f"## {heading}")
    opening = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```yaml"))
    closing = next(i for i in range(opening + 1, len(lines)) if lines[i].startswith("```"))
    return opening + 1, closing


def set_key(block: list[str], key: str, new: list[str]) -> list[str]:
    """``block`` with ``key``'s line (commented out or not) and its continuation lines replaced by ``new``."""
    pattern = re.compile(rf"^(# ?)?{re.escape(key)}:")
    for i, text in enumerate(block):
        if pattern.match(text):
            end = i + 1
            while end < len(block) and block[end].startswith(" "):
                end += 1
            return block[:i] + new + block[end:]
    return block + new


def template_comment(block: list[str], key: str) -> str:
    """The comment the template gives ``key`` (without the ``#``), or ``""``."""
    for text in block:
        if re.match(rf"^(# ?)?{re.escape(key)}:", text) and " # " in text:
            return text.split(" # ", 1)[1].strip()
    return ""


def edit_block(text: str, heading: str, settings: dict[str, list[str] | str]) -> str:
    """Set each key of ``settings``: a string is the value (the template's comment kept), a list is whole lines."""
    lines = text.split("\n")
    first, end = block_span(lines, heading)
    block = lines[first:end]
    for key, new in settings.items():
        if isinstance(new, str):
            new = [line(key, new, template_comment(block, key))]
        block = set_key(block, key, new)
    return "\n".join(lines[:first] + block + lines[end:])


def envelope_settings(env: FirstEnvelope) -> dict[str, list[str] | str]:
    return {
        "max_jobs": [line("max_jobs", str(env.max_jobs), "a first campaign: raise it once the first jobs look right")],
        "max_walltime": format_duration(env.max_walltime_s),
        "allowed_flavors": [line("allowed_flavors", f"[{env.flavor}]", "HF Jobs hardware the campaign may request")],
        "max_timeout": format_duration(env.timeout_s),
        "output_repos": [line("output_repos", "[]", "jobs may push to no Hub repo; add globs like me/sweep-* to let them")],
        "max_cost_usd": str(env.max_cost_usd),
    }
