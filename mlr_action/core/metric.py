"""Reading a job's result from its output (DESIGN.md section 7).

Guarantees: the metric is read from lines ``name=value`` or ``name: value``
(the key may be quoted, as in a logged dict); the *last* such line wins; a
name that is only part of a longer word (``my_eval_accuracy``,
``eval_accuracy_top5``) does not count. No line means "no metric", never zero;
NaN and infinities are reported as problems, not as results. Terminal colour
codes (ANSI escapes) are ignored, and a decimal comma (``0,91``) is not read
as ``0``.

A line ``hub_url=<url>`` (the last one wins) names where the job pushed its
model. It is kept only when it is an https URL on the Hub: host
``huggingface.co`` or ``hf.co`` (or the host of ``HF_ENDPOINT`` when it is set,
with its scheme and port), no user or password, nothing but printable ASCII
and at most :data:`HUB_URL_CHARS` characters. Anything else is dropped, with
a note saying why (``hub_url_note``), and never recorded as the row's
``hub_url``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf(?:inity)?)"


@dataclass(frozen=True)
class MetricReading:
    value: float | None
    problem: str | None = None
    hub_url: str | None = None
    hub_url_note: str | None = None  # why the job's last hub_url line was not kept


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?<![\w.\-/])['\"]?{re.escape(name)}['\"]?\s*[=:]\s*({_NUMBER})(?![\w.]|,\d)",
        re.IGNORECASE,
    )


ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_HUB_URL = re.compile(r"(?<![\w])hub_url\s*[=:][ \t]*(\S*)")
HUB_HOSTS = ("huggingface.co", "hf.co")
HUB_URL_CHARS = 2000
_URL_CHARS = re.compile(r"[!#-;=?-\[\]_a-z~]+", re.I)  # printable ASCII but space " < > \\ ^ ` { | }


def hub_url_problem(url: str, endpoint: str | None = None) -> str | None:
    """Why ``url`` is not an https URL on the Hub (or on ``endpoint``, default ``$HF_ENDPOINT``); None when it is."""
    if not url:
        return "it is empty"
    if len(url) > HUB_URL_CHARS or not _URL_CHARS.fullmatch(url):
        return "it is not a plain URL (spaces, quotes, brackets or other characters, or too long)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "it is not a URL"
    endpoint = os.environ.get("HF_ENDPOINT", "") if endpoint is None else endpoint
    home = urlsplit(endpoint.rstrip("/")) if endpoint else None
    if parts.username is not None or parts.password is not None:
        return "it carries a user name or password"
    host = (parts.hostname or "").lower()
    if home is not None and home.hostname and (parts.scheme, host, port) == (home.scheme, home.hostname.lower(), home.port):
        return None
    if parts.scheme != "https" or host not in HUB_HOSTS or port not in (None, 443):
        return "it is not an https URL on the Hub (huggingface.co or hf.co)"
    return None


def _hub_url(logs: str) -> tuple[str | None, str | None]:
    """The job's last hub_url when it is on the Hub, else None and a note saying what was dropped and why."""
    urls = _HUB_URL.findall(logs)
    if not urls:
        return None, None
    problem = hub_url_problem(urls[-1])
    if problem is None:
        return urls[-1], None
    shown = urls[-1] if len(urls[-1]) <= 200 else urls[-1][:199] + "…"
    return None, f"hub_url {shown!r} was not recorded: {problem}"


def read_metric(logs: str, name: str) -> MetricReading:
    """The last ``name=value`` in ``logs``, or a reading whose ``problem`` says why there is none."""
    logs = ANSI_ESCAPE.sub("", logs) if "\x1b" in logs else logs
    matches = _pattern(name).findall(logs)
    hub = _hub_url(logs)
    if not matches:
        return MetricReading(None, f"the job printed no `{name}=<number>` line (no metric means error, not zero)", *hub)
    value = float(matches[-1])
    if math.isnan(value):
        return MetricReading(None, f"the job's last `{name}` was NaN (the run diverged?)", *hub)
    if math.isinf(value):
        return MetricReading(None, f"the job's last `{name}` was infinite (the run diverged?)", *hub)
    return MetricReading(value, None, *hub)


def log_tail(logs: str, *, lines: int = 12, chars: int = 800) -> str:
    """The end of a log, short enough to keep in a ledger row."""
    tail = "\n".join(logs.rstrip().splitlines()[-lines:])
    return tail[-chars:]


def format_metric(value: float | None) -> str:
    """A metric for people: at most 4 decimals, or 4 significant digits below 1; never exponents."""
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = 4 if magnitude >= 0 else min(3 - magnitude, 15)
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
