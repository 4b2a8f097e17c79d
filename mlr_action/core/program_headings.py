"""What a Markdown heading says: the settings title it renders as, or the one it nearly reads like.

Guarantees:

- :func:`settings_key` compares a heading's text as rendered (emphasis, code spans, entities, images' alt
  text and runs of spaces resolved, case ignored) with the titles; inline markup is parsed only when the
  heading holds a markup character and its letters could spell a title, so a file of 20,000 plain
  headings costs a dictionary look-up each.
- :func:`near_title` names the title a heading reads almost like (a typo, a lookalike letter, trailing
  text such as a colon: difflib's ratio at least 0.8 and a length within three characters), or None;
  a heading far from every title in length costs no comparison.
"""

from __future__ import annotations

import difflib
import re

_MARKUP = re.compile(r"[\\`*_&<\[!~]")
_NEAR = 0.8  # a heading this close to a settings title (difflib's ratio) ...
_NEAR_LENGTH = 3  # ... and at most this many characters longer or shorter reads like it (a typo, a lookalike, a colon)


def near_title(raw: str, near: dict[str, difflib.SequenceMatcher]) -> str | None:
    """The settings title (a key of ``near``, each with its :func:`matcher`) ``raw`` reads almost like, or None."""
    text = _rendered(raw)
    for key, compare in near.items():
        if abs(len(text) - len(key)) > _NEAR_LENGTH:
            continue
        compare.set_seq1(text)
        if compare.quick_ratio() >= _NEAR and compare.ratio() >= _NEAR:
            return key
    return None


def matcher(key: str) -> difflib.SequenceMatcher:
    """A matcher set to the title ``key``, made once per pass (difflib caches what it learns of its second text)."""
    compare = difflib.SequenceMatcher(None, autojunk=False)
    compare.set_seq2(key)
    return compare


def settings_key(raw: str, titles: dict[str, str]) -> str | None:
    """The settings title ``raw`` renders as, or None; inline markup is parsed only when it could matter."""
    if not _MARKUP.search(raw):
        name = " ".join(raw.split()).casefold()
        return name if name in titles else None
    return next((k for k in titles if _could_be(raw, k) and _rendered(raw) == k), None)


def _could_be(raw: str, key: str) -> bool:
    """Can ``raw`` render as ``key``? A cheap test: entities aside, rendering only drops characters."""
    if "&" in raw:
        return True
    letters = iter(c for c in raw.casefold() if c.isalnum())
    return all(c in letters for c in key if c.isalnum())


def _rendered(raw: str) -> str:
    """The heading's text as a reader sees it: lower-case, runs of spaces as one space."""
    text = raw
    if _MARKUP.search(raw):
        from markdown_it import MarkdownIt

        parts: list[str] = []
        stack = list(reversed(MarkdownIt("commonmark").parseInline(raw)[0].children or []))
        while stack:
            tok = stack.pop()
            if tok.type in ("text", "code_inline"):
                parts.append(tok.content)
            elif tok.type == "image":
                stack.extend(reversed(tok.children or []))
        text = "".join(parts)
    return " ".join(text.split()).casefold()
