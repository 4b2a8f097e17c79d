"""Text from outside, shown in Markdown and never rendered: the one escaping helper every writer uses.

What a job prints (log tails, error texts, ``hub_url``, adopted configs),
what an LLM answers (hypotheses, reasons, research notes and the web pages
they quote) and whatever the ledger branch holds reach summary.md, the
dashboard, stop reports, escalations, research notes and the step summary
only through these functions.

Guarantees (GitHub-flavoured Markdown, as github.com and markdown-it render it):

- :func:`code` shows text as one inline code span. Inside it nothing renders:
  no link, autolink or bare URL, image, HTML or HTML comment, emphasis,
  heading, ``@mention`` or ``#123`` reference (GitHub links none of them in
  code). Line breaks become spaces; the backtick fence is longer than any run
  of backticks in the text, with a space of padding where the text starts or
  ends with a backtick, so the text cannot close the span.
- :func:`block` shows many lines as a fenced code block, its fence longer
  than any run of backticks in the text, so the text cannot close it.
- :func:`plain` keeps a word that cannot render as it is (an id, a flavor, a
  timestamp) and shows anything else as :func:`code`.
- :func:`cell` makes any of these one table cell: ``|`` becomes ``\\|``,
  which GFM never splits on, even inside a code span (where it shows ``|``).
- What these functions return never holds ``<!--``: text shown by the bot can
  never pass for one of its hidden markers (``<!-- mlr-action:... -->``),
  which its controls and reports look for in issue bodies.
- :func:`visible` writes every character a reader could not see or that
  would move the text (controls, bidi overrides, zero-width and line
  separators) as a ``\\uXXXX`` escape, for review comments where what a value
  *is* matters more than how it looks; :func:`literal` is such a value, cut to
  a length, as :func:`code`.
- :func:`unlinked` is for plain-text places GitHub still scans for
  references (commit messages): ``@name``, ``#123`` and ``GH-123`` get a
  space after their sign, so they neither mention anyone nor link or close
  an issue.
"""

from __future__ import annotations

import re

_BACKTICKS = re.compile(r"`+")
# Nothing GitHub renders, links or mentions (an underscore inside a word never emphasizes) ...
_PLAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._:+-]{0,98}[A-Za-z0-9])?")
_LINKY = re.compile(r"(?i)www\.|gh-\d")  # ... except these
_COMMENT = "<!--"
_DEFUSED = "<\u200b!--"  # a zero-width space: shows the same, is not a comment or a marker
_REFERENCE = re.compile(r"(?i)(@(?=[A-Za-z0-9])|#(?=\d)|\bgh-(?=\d))")


def _defuse(text: str) -> str:
    return text.replace(_COMMENT, _DEFUSED)


def code(text: str | None) -> str:
    """``text`` on one line as an inline code span sized to its content; ``""`` for empty text."""
    one_line = " ".join(_defuse(str(text or "")).split())
    if not one_line:
        return ""
    fence = "`" * (1 + max((len(run) for run in _BACKTICKS.findall(one_line)), default=0))
    pad = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    return f"{fence}{pad}{one_line}{pad}{fence}"


def block(text: str | None, info: str = "text") -> str:
    """``text`` as a fenced code block (no trailing newline); a fence longer than any backtick run inside."""
    body = _defuse(str(text or "")).replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    fence = "`" * max(3, 1 + max((len(run) for run in _BACKTICKS.findall(body)), default=0))
    return f"{fence}{info}\n{body}\n{fence}"


def plain(text: str | None) -> str:
    """A word that cannot render, as it is; anything else as :func:`code`."""
    value = str(text or "")
    if _PLAIN.fullmatch(value) and not _LINKY.search(value):
        return value
    return code(value)


def cell(text: str | None) -> str:
    """One table cell: one line, ``|`` escaped, never empty (an empty cell would shift nothing, but reads oddly)."""
    one_line = " ".join(_defuse(str(text or "")).split())
    return one_line.replace("|", "\\|") or " "


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every non-printable character written as an escape (``\\n``, ``\\t``, ``\\u202e``)."""
    return "".join(c if c.isprintable() or (keep_newlines and c == "\n") else _escaped(c) for c in text)


def literal(value: object, limit: int = 100) -> str:
    """``value`` exactly as it is, invisible characters escaped, cut to ``limit``, as a code span (never empty)."""
    text = visible(str(value))
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return code(text) or "` `"


def _escaped(char: str) -> str:
    named = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
    return named.get(char) or (f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")


def unlinked(text: str) -> str:
    """Plain text in which GitHub finds no ``@mention``, ``#123`` or ``GH-123`` reference."""
    return _REFERENCE.sub(lambda m: m.group(1) + " ", text)
