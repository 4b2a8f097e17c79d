"""The YAML of a settings block, read so that every value means what a reviewer reads.

Guarantees (each refusal names the line in program.md, the key and the fix):

- Only plain YAML is read: anchors and aliases (``&a``, ``*a``), merge keys
  (``<<``), explicit tags (``!!int``, ``!!binary``, ``!foo``, ``! x``) and
  directives (``%TAG``, ``%YAML``) are refused. Aliases are never expanded
  (each becomes an empty placeholder while the block is checked), so a
  "billion laughs" costs what its text costs.
- A plain value that PyYAML would read differently from how a person reads
  it is refused: YAML 1.1 numbers in another base or form (``0x10``,
  ``0b101``, ``017`` octal, ``0o17``, ``1_000``, ``1:00`` base 60), the
  special floats (``.inf``, ``-.inf``, ``.nan``), the YAML 1.1 booleans
  ``yes``/``no``/``on``/``off`` (only ``true`` and ``false`` are booleans
  here; quote the word to mean the word) and ``~`` for null (write ``null``).
  Decimal numbers (``12``, ``-3``, ``0.5``, ``1.0e-5``, ``1e3``) are read as
  written.
- A backslash escape in a double-quoted value other than ``\\\\``, ``\\"``,
  ``\\n`` and ``\\t`` (``"\\x31\\x32"`` is ``12``) is refused.
- A digit that is not ASCII (``٣``, ``１``) anywhere in a value or key is
  refused: Python's ``int()`` and ``re``'s ``\\d`` read it as a number.
- An invisible character that can make a line read differently from what it
  holds (bidirectional controls, zero-width characters, any Unicode format
  character) or a line break that only YAML sees (U+2028, U+2029, U+0085) is
  refused anywhere in the block, comments included.
- A key set twice is refused (never a silently chosen value).
- The work is linear in the block's size; nesting is bounded by
  :data:`MAX_YAML_DEPTH` before PyYAML sees the text.

Raises :class:`Refused` (a list of problems), or what PyYAML and Python raise
on text that is not YAML (:class:`yaml.YAMLError`, :class:`RecursionError`,
:class:`ValueError` for a number too long to convert); :mod:`mlr_action.core.program`
words those.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

MAX_YAML_DEPTH = 64  # brackets open at once; PyYAML's scanner slows down quadratically with flow depth
MAX_SHOWN = 5  # refusals listed per block (one per line); the rest are counted

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
# Numbers as a person writes them, which PyYAML reads as that number (or as the same text, for 1e3).
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*|[0-9]*\.[0-9]*)(?:[eE][-+]?[0-9]+)?")
# Read as text by PyYAML but as numbers by YAML 1.2 readers (editors, linters, other tools).
_YAML12_NUMBER = re.compile(r"[-+]?0(?:o[0-7]+|x[0-9a-fA-F]+|b[01]+)")
_LINE_BREAKS = "\u2028\u2029\x85"
_PLAIN_ESCAPES = '\\"nt'  # \\, \", \n, \t read as they are written; \x31, \u0031, \N, a line continuation do not


class Refused(Exception):
    """The block parses but must not be used; ``problems`` says why, line by line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def load_settings(block: str, *, first_line: int = 1) -> Any:
    """The block's value, read with ``yaml.SafeLoader`` minus everything listed in the module docstring.

    ``first_line`` is the line of program.md the block's first line is on, for the messages.
    """
    problems = _invisible(block, first_line)
    if problems:
        raise Refused(_capped(problems))
    if _bracket_depth(block) > MAX_YAML_DEPTH:
        raise RecursionError
    loader = _loader_class()(block)
    loader.first_line, loader.block = first_line, block
    try:
        node = loader.get_single_node()
        found = loader.refusals + (_check_tree(node, first_line, loader) if node is not None else [])
        problems = _one_per_line(found)
        if problems:
            raise Refused(_capped(problems))
        return loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def _capped(problems: list[str]) -> list[str]:
    more = len(problems) - MAX_SHOWN
    return problems[:MAX_SHOWN] + ([f"... and {more} more lines like these"] if more > 0 else [])


def _one_per_line(found: list[tuple[int, str]]) -> list[str]:
    """The first problem of each line, in line order: one bad line reads as one problem."""
    seen: set[int] = set()
    kept = []
    for line, text in sorted(found, key=lambda item: item[0]):
        if line not in seen:
            seen.add(line)
            kept.append(text)
    return kept


def _invisible(block: str, first_line: int) -> list[str]:
    problems = []
    for number, line in enumerate(block.split("\n"), start=first_line):
        bad = next((c for c in line if c in _LINE_BREAKS or unicodedata.category(c) == "Cf"), None)
        if bad is not None:
            problems.append(f"line {number}: {_char(bad)} is invisible on the page but changes how the line is "
                            "read (it can reorder or split what a reviewer sees); delete it")
    return problems


def _char(c: str) -> str:
    return f"U+{ord(c):04X} ({unicodedata.name(c, 'unnamed character')})"


def _bracket_depth(block: str) -> int:
    """The most ``[`` and ``{`` open at once (quotes ignored: an over-count only refuses earlier)."""
    depth = deepest = 0
    for char in block:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
    return deepest


_LOADER: type | None = None


def _loader_class() -> type:
    """A ``SafeLoader`` that records anchors, aliases, tags and directives instead of honouring them."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml
    from yaml.events import AliasEvent
    from yaml.nodes import ScalarNode

    class Loader(yaml.SafeLoader):
        first_line = 1

        def __init__(self, stream: str):
            super().__init__(stream)
            self.refusals: list[tuple[int, str]] = []

        def _refuse(self, mark: Any, what: str) -> None:
            line = self.first_line + mark.line
            self.refusals.append((line, f"line {line}: {what}"))

        def fetch_anchor(self) -> None:
            super().fetch_anchor()
            token = self.tokens[-1]
            self._refuse(token.start_mark, f"`&{_cut(token.value)}` is a YAML anchor: anchors and aliases let one "
                                           "line set values elsewhere, so write each value out")

        def fetch_alias(self) -> None:
            super().fetch_alias()
            token = self.tokens[-1]
            self._refuse(token.start_mark, f"`*{_cut(token.value)}` is a YAML alias: it repeats a value set "
                                           "elsewhere, so write the value out")

        def fetch_tag(self) -> None:
            super().fetch_tag()
            token = self.tokens[-1]
            handle, suffix = token.value
            verbatim = handle is None and suffix != "!"
            shown = _cut(f"!<{suffix}>" if verbatim else (handle or "") + suffix) if handle or verbatim else "!"
            self._refuse(token.start_mark, f"`{shown}` is an explicit YAML tag, which changes how the value is read; "
                                           "delete it (quote the value if you mean text)")

        def fetch_directive(self) -> None:
            super().fetch_directive()
            token = self.tokens[-1]
            self._refuse(token.start_mark, f"`%{_cut(token.name)}` is a YAML directive, which changes how the "
                                           "block is read; delete that line")

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(AliasEvent):  # refused above; never the anchored node, so nothing is shared
                event = self.get_event()
                return ScalarNode(_NULL, "", event.start_mark, event.end_mark)
            self.peek_event().anchor = None  # refused above; never registered, so never reused
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            lines: dict[str, int] = {}
            for key, _ in node.value:
                if isinstance(key, ScalarNode):
                    if key.value in lines:
                        line = self.first_line + key.start_mark.line
                        raise Refused([f"line {line}: sets {_cut(key.value)} twice (lines {lines[key.value]} and "
                                       f"{line}); keep one, so the approved value is unambiguous"])
                    lines[key.value] = self.first_line + key.start_mark.line
            return super().construct_mapping(node, deep=deep)

    _LOADER = Loader
    return Loader


def _check_tree(root: Any, first_line: int, loader: Any) -> list[tuple[int, str]]:
    """Every scalar checked once (the tree has no shared nodes: aliases were replaced)."""
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    problems: list[tuple[int, str]] = []
    stack: list[tuple[Any, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, MappingNode):
            for key, value in reversed(node.value):
                name = key.value if isinstance(key, ScalarNode) else "?"
                child = f"{path}.{name}" if path else str(name)
                if isinstance(key, ScalarNode) and key.tag == _MERGE:
                    line = first_line + key.start_mark.line
                    problems.append((line, f"line {line} ({_cut(path) or 'top level'}): `<<` is a YAML merge key, "
                                           "which copies keys from elsewhere; write the keys out"))
                    continue
                stack.append((value, child))
                if isinstance(key, ScalarNode):
                    problems.extend(_check_scalar(key, child, first_line, loader))
                else:
                    stack.append((key, child))
        elif isinstance(node, SequenceNode):
            stack.extend((item, f"{path}.{i}" if path else str(i)) for i, item in reversed(list(enumerate(node.value))))
        elif isinstance(node, ScalarNode):
            problems.extend(_check_scalar(node, path, first_line, loader))
    return problems


def _check_scalar(node: Any, path: str, first_line: int, loader: Any) -> list[tuple[int, str]]:
    line, value = first_line + node.start_mark.line, node.value
    where = f"line {line}" + (f" ({_cut(path)})" if path else "")
    digit = next((c for c in value if c.isdecimal() and not c.isascii()), None)
    if digit is not None:
        return [(line, f"{where}: `{_cut(value)}` has the digit {_char(digit)}, which Python reads as "
                       f"{unicodedata.decimal(digit)}; write digits with 0-9 (or spell the text differently)")]
    if node.style == '"':
        raw = loader.block[node.start_mark.index:node.end_mark.index]
        escape = next((m.group(0) for m in re.finditer(r"\\(.)", raw, re.S) if m.group(1) not in _PLAIN_ESCAPES), None)
        if escape is not None:
            shown = "a backslash at the end of a line" if escape == "\\\n" else f"`{_cut(escape)}`"
            return [(line, f"{where}: {shown} in double quotes is an escape that stands for other characters than "
                           "the ones written; write the characters themselves (in single quotes if need be)")]
    if node.style is not None:  # single-quoted or a block scalar: text, read as written
        return []
    reads_as = _misread(node, loader)
    return [(line, f"{where}: `{_cut(value)}` {reads_as}")] if reads_as else []


def _misread(node: Any, loader: Any) -> str | None:
    """How a plain scalar is misread, with the fix; None when it means what it says."""
    value, tag = node.value, node.tag
    quote = f"or quote it ('{_cut(value)}') to mean the text"
    if tag == _BOOL and value.lower() not in ("true", "false"):
        truth = "true" if value.lower() in ("yes", "on") else "false"
        return f"is read as {truth} (a YAML 1.1 boolean); write {truth}, {quote}"
    if tag == _NULL and value == "~":
        return "is read as null (not set); write null, or delete the line"
    if tag in (_INT, _FLOAT) and not _DECIMAL.fullmatch(value):
        if value.lstrip("+-").lower() in (".inf", ".nan"):
            what = "infinity" if "inf" in value.lower() else "not-a-number"
            return f"is read as {what}; write a finite number, {quote}"
        try:
            number = loader.construct_object(node)
        except ValueError:
            number = None
        form = ("YAML 1.1 base 60" if ":" in value else "YAML 1.1 drops the underscores" if "_" in value
                else "hexadecimal" if "x" in value.lower() else "binary" if "b" in value.lower()
                else "octal, for the leading 0")
        shown = f"{number!r}" if number is not None and len(repr(number)) <= 40 else "another number"
        return f"is read as {shown} ({form}); write the number in plain decimal, {quote}"
    if tag == _STR and _YAML12_NUMBER.fullmatch(value):
        return f"is text here but a number to YAML 1.2 readers; write the number in plain decimal, {quote}"
    return None


def _cut(text: str, limit: int = 40) -> str:
    text = str(text).replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"
