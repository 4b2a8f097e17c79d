"""Secrets out of text: the step's own tokens in any usual encoding, and anything shaped like a token.

Guarantees:

- Standard library only, and nothing from :mod:`mlr_action`: every module
  (the ledger, program.md validation, reports, git, the forges, the step) can
  use it without importing upward.
- :func:`redact` replaces with ``***`` each *secret value* (the environment
  variables of :data:`SECRET_ENV_VARS`, when longer than 8 characters, so a
  short value cannot mask ordinary words), found:

  - verbatim;
  - as base64 and base64url, with or without padding, at each of the three
    byte alignments, so a value inside a longer encoded blob is caught (the
    ``Authorization: Basic base64("x-access-token:" + token)`` header git
    sends);
  - as hex, in any letter case;
  - with any of its characters written as ``%XX`` or ``\\xXX`` (its UTF-8
    bytes) or ``\\uXXXX`` (percent-encoding, as ``quote()`` or by hand, and
    the escapes of Python and JSON);
  - in any of these forms split across lines: a line break (LF, CRLF or CR,
    blank lines, and the next line's indentation) between any two of its
    characters, as a log wrapped at a column or ``base64`` output wrapped at
    76 has.

  Then it masks every substring shaped like an HF, GitHub or Anthropic token,
  the credential of an ``Authorization: Bearer`` or ``Basic`` header, and the
  password of a URL's ``user:password@``.
- Linear in the text: literal searches with :meth:`str.find` and a few
  regular expressions without nested repetition, so megabytes of job log are
  redacted in tens of milliseconds (benchmarks/redaction.py). The searches for
  the environment's values are built once per set of values.
- Idempotent: ``redact(redact(t)) == redact(t)``.

What it cannot do: a job that transforms a token in a way not listed (XOR,
reversed, every other character) can still print it. The job runs with the
token by design; this module keeps the usual accidents and disguises out of
what the bot writes.
"""

from __future__ import annotations

import base64
import bisect
import functools
import os
import re
from dataclasses import dataclass
from typing import Iterable

MASK = "***"
MIN_SECRET_CHARS = 9  # a shorter value would mask ordinary words
SECRET_ENV_VARS = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "GITHUB_TOKEN",
    "INPUT_GITHUB_TOKEN",
    "GH_TOKEN",
    "ANTHROPIC_API_KEY",
    "MLR_WAKE_TOKEN",  # the job wake-up's GitHub token (mlr_action.job.wakeup)
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
)

# The first character is matched before the look-behind, so the regex engine can skip ahead to it.
_TOKEN_PATTERNS = re.compile(
    r"[hgs](?<![A-Za-z0-9][hgs])(?:"
    r"f_[A-Za-z0-9]{16,}"  # hf_: Hugging Face user/org tokens
    r"|h[pousr]_[A-Za-z0-9]{20,}"  # ghp_ and co: GitHub classic, OAuth, app and refresh tokens
    r"|ithub_pat_[A-Za-z0-9_]{20,}"  # github_pat_: GitHub fine-grained tokens
    r"|k-ant-[A-Za-z0-9_-]{10,}"  # sk-ant-: Anthropic API keys
    r")"
)
_TOKEN_STARTS = ("hf_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "sk-ant-")
_BEARER = re.compile(r"([Bb](?<![A-Za-z0-9_][Bb])[Ee][Aa][Rr][Ee][Rr]\s+)[A-Za-z0-9._~+/=-]{16,}")
_BASIC = re.compile(r"([Aa](?<![A-Za-z0-9_][Aa])[Uu][Tt][Hh][Oo][Rr][Ii][Zz][Aa][Tt][Ii][Oo][Nn]\s*:\s*"
                    r"[Bb][Aa][Ss][Ii][Cc]\s+)[A-Za-z0-9+/=_*-]{8,}")
_URL_PASSWORD = re.compile(r"(://[^/\s:@]{1,256}:)[^/\s@]{6,256}(@)")
_BREAK = re.compile(r"[\r\n][\r\n \t]*")  # a line break, blank lines and the next line's indentation
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}|\\x[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}")


def secret_values(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The secret values in the environment (and ``extra``), longest first, each once."""
    environ = os.environ
    return _values(tuple(environ.get(name, "") for name in SECRET_ENV_VARS) + tuple(extra))


@functools.lru_cache(maxsize=32)
def _values(raw: tuple[str, ...]) -> tuple[str, ...]:
    found = {v for value in raw for v in (value, value.strip()) if len(v) >= MIN_SECRET_CHARS}
    return tuple(sorted(found, key=lambda v: (-len(v), v)))


def redact(text: str, *, extra: Iterable[str] = ()) -> str:
    """``text`` with every secret value (in every form above) and every token-shaped string replaced by ``***``.

    ``extra`` adds values to treat as secrets besides the environment's.
    """
    if not text:
        return text
    values = secret_values(extra)
    if values:
        text = _mask_values(text, _needles(values))
    if any(start in text for start in _TOKEN_STARTS):
        text = _TOKEN_PATTERNS.sub(MASK, text)
    lowered = text.lower()
    if "bearer" in lowered:
        text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    if "basic" in lowered:
        text = _BASIC.sub(lambda m: m.group(1) + MASK, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(2), text)
    return text


def holds_secret(text: str) -> bool:
    """Whether :func:`redact` would change ``text``."""
    return redact(text) != text


# --- the forms of a value ------------------------------------------------------------


@dataclass(frozen=True)
class _Needles:
    verbatim: tuple[str, ...]  # replaced in the text as it is (a value that holds a line break, too)
    exact: tuple[str, ...]  # found in the text with line breaks removed: verbatim and base64 forms
    folded: tuple[str, ...]  # hex, lower case: found in the lower-cased text
    escaped: re.Pattern[str]  # some characters as %XX, \xXX or \uXXXX
    longest_escaped: int  # characters of the longest match of ``escaped``


def _base64_forms(data: bytes) -> set[str]:
    """Every base64 and base64url string that the bytes of ``data`` alone decide, at each alignment."""
    forms = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode()
        start, end = (8 * shift + 5) // 6, (8 * (shift + len(data))) // 6  # characters no other byte touches
        forms.add(encoded[start:end])
        if shift == 0:
            forms.update((encoded, encoded.rstrip("=")))  # the whole value encoded alone, with its last character
    return forms | {f.replace("+", "-").replace("/", "_") for f in forms}


def _any_case(hex_digits: str) -> str:
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in hex_digits)


def _escaped_char(char: str) -> str:
    """A character, or its UTF-8 bytes as ``%XX`` or ``\\xXX``, or its code point as ``\\uXXXX``."""
    data = char.encode("utf-8")
    options = [re.escape(char), "".join("%" + _any_case(f"{b:02x}") for b in data),
               "".join(r"\\x" + _any_case(f"{b:02x}") for b in data)]
    if ord(char) <= 0xFFFF:
        options.append(r"\\u" + _any_case(f"{ord(char):04x}"))
    return "(?:" + "|".join(options) + ")"


@functools.lru_cache(maxsize=32)
def _needles(values: tuple[str, ...]) -> _Needles:
    exact, folded, escaped = set(), set(), []
    for value in values:
        data = value.encode("utf-8")
        exact.add(value)
        exact.update(_base64_forms(data))
        folded.add(data.hex())
        escaped.append("".join(_escaped_char(c) for c in value))
    by_length = lambda items: tuple(sorted(items, key=lambda s: (-len(s), s)))  # noqa: E731
    return _Needles(verbatim=values, exact=by_length(exact), folded=by_length(folded),
                    escaped=re.compile("|".join(sorted(escaped, key=len, reverse=True))),
                    longest_escaped=max(len(value.encode("utf-8")) for value in values) * 6)


# --- finding them ----------------------------------------------------------------------


def _find_all(haystack: str, needle: str, spans: list[tuple[int, int]]) -> None:
    at = haystack.find(needle)
    while at != -1:
        spans.append((at, at + len(needle)))
        at = haystack.find(needle, at + 1)


def _mask_values(text: str, needles: _Needles) -> str:
    for value in needles.verbatim:
        if value in text:
            text = text.replace(value, MASK)
    flat = _BREAK.sub("", text) if "\n" in text or "\r" in text else text
    spans: list[tuple[int, int]] = []
    for needle in needles.exact:
        _find_all(flat, needle, spans)
    lowered = flat.lower()
    if len(lowered) == len(flat):
        for needle in needles.folded:
            _find_all(lowered, needle, spans)
    else:  # a character whose lower case is longer: search case-insensitively instead
        for needle in needles.folded:
            spans += [m.span() for m in re.finditer(re.escape(needle), flat, re.IGNORECASE)]
    spans += _escaped_spans(flat, needles)
    if not spans:
        return text
    return _replace(text, _merge(spans))


def _escaped_spans(flat: str, needles: _Needles) -> list[tuple[int, int]]:
    """Values with some characters escaped, looked for only around the escapes in the text."""
    if "%" not in flat and "\\" not in flat:
        return []
    reach = needles.longest_escaped
    windows: list[tuple[int, int]] = []
    for match in _ESCAPE.finditer(flat):
        low, high = max(0, match.start() - reach), match.end() + reach
        if windows and low <= windows[-1][1]:
            windows[-1] = (windows[-1][0], high)
        else:
            windows.append((low, high))
    spans = []
    for low, high in windows:
        spans += [m.span() for m in needles.escaped.finditer(flat, low, high) if m.end() > m.start()]
    return spans


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _replace_flat(text: str, spans: list[tuple[int, int]]) -> str:
    out, last = [], 0
    for start, end in spans:
        out += [text[last:start], MASK]
        last = end
    out.append(text[last:])
    return "".join(out)


def _replace(text: str, spans: list[tuple[int, int]]) -> str:
    """Mask ``spans`` of the text without line breaks in ``text`` itself (a span may cover line breaks)."""
    # Where each removed break was in the text without breaks, and how many characters were removed up to it.
    where, removed, total = [], [], 0
    for match in _BREAK.finditer(text):
        where.append(match.start() - total)
        total += match.end() - match.start()
        removed.append(total)

    def original(position: int) -> int:
        index = bisect.bisect_right(where, position)
        return position + (removed[index - 1] if index else 0)

    return _replace_flat(text, [(original(start), original(end - 1) + 1) for start, end in spans])
