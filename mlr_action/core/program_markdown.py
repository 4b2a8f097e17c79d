"""Where program.md keeps its settings: the code blocks under its settings headings, as a reviewer sees them.

Guarantees:

- The file is read with a CommonMark parser (markdown-it), the grammar
  GitHub renders with (its GFM extensions change inline text and tables,
  never where a heading or a code block is), in one pass over its block tokens (block
  quotes and lists nested so deep that markdown-it would stop reading are a
  problem of the first settings section): the work is
  linear in the file (a file of 20,000 headings costs what 20,000 lines
  cost). Inline markup is parsed only for the few headings whose letters can
  spell a settings heading.
- A heading is a settings heading when its text as rendered (emphasis, code
  spans, entities and runs of spaces resolved, case ignored) is one of the
  titles (:mod:`mlr_action.core.program_headings`); ATX and setext headings
  alike. Its section runs to the next heading of the same or a higher level,
  and every code block in it counts: fenced with backticks or tildes whatever
  its info string, indented, inside a list item or a block quote.
- What is approved is what a reviewer sees on the rendered page, so each of
  these is a problem of that section (never a block silently skipped or
  silently taken): more than one code block, or the heading more than once;
  the one block not a fence whose info string starts with ``yaml``/``yml``
  (an indented block, a ```` ```text ```` block, a ```` ``` ```` block with no
  language); a fence never closed (the rest of the file reads as code); the
  heading inside a block quote or a list; raw HTML in the section (a
  comment, a ``<details>``, a ``<pre>``: it can hide, fold or imitate the
  settings); the heading or its block inside an HTML element opened earlier
  (``<details>`` folds it away); a heading that reads almost like a settings
  heading (a lookalike letter, a typo, trailing text) and holds a code block.
  YAML front matter, which GitHub shows as a table of settings the bot does
  not read, is a problem of the first settings section.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from mlr_action.core.program_headings import matcher, near_title, settings_key

_VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())
_OPTIONAL_END = frozenset("p li dt dd tr td th option colgroup caption thead tbody tfoot rt rp optgroup".split())
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)(?:\s[^<>]*?)?(/?)>")  # no "<" inside: linear on any text
_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
_DEEPEST = 16  # containers open at once; markdown-it stops reading at 20 (maxNesting), GitHub does not


@dataclass(frozen=True)
class Block:
    """One code block: its text and where it is."""

    text: str
    line: int  # 1-based line in the file of its first content line
    start: int  # 1-based line where it begins (the opening fence)
    kind: str  # "yaml": a fence whose info string starts with yaml/yml; "fence": any other fence; "indented"
    info: str
    closed: bool = True

    @property
    def label(self) -> str:
        if self.kind == "indented":
            return "an indented code block"
        return f"a code block marked {self.info.split()[0][:40]!r}" if self.info else "a code block with no language"


@dataclass
class Settings:
    """What lies under one settings heading: its code blocks, the lines of its headings, its problems."""

    title: str
    headings: list[int] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _kinds: set[str] = field(default_factory=set)

    def note(self, kind: str, problem: str) -> None:
        """Keep the first problem of each kind: a file of 100,000 HTML lines is one problem, not 100,000."""
        if kind not in self._kinds:
            self._kinds.add(kind)
            self.problems.append(problem)


@dataclass
class _Open:
    level: int
    key: str | None  # a settings title, or None
    raw: str
    line: int
    near_checked: bool = False


def find_settings(text: str, titles: dict[str, str]) -> tuple[dict[str, Settings], dict[str, str]]:
    """({key: Settings} for each settings heading present, {heading as written: its prose}).

    ``titles`` maps each key (a lower-case title) to its title as shown in messages.
    """
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").disable("inline").parse(text)
    return _index(tokens, re.split(r"\r\n|\r|\n", text), titles)  # the line breaks markdown-it knows


def _index(tokens: list, lines: list[str], titles: dict[str, str]) -> tuple[dict[str, Settings], dict[str, str]]:
    """The one pass over the block tokens: each token is read once, in order."""
    state = _Pass(titles)
    after_heading = None
    for tok in tokens:
        if tok.nesting == 1 and tok.level >= _DEEPEST and state.deep is None and tok.map:
            state.deep = tok.map[0] + 1
        if tok.type == "heading_open":
            after_heading = tok
        elif after_heading is not None:  # the inline token that holds the heading's text
            state.heading(after_heading, tok.content)
            after_heading = None
        elif tok.type in ("fence", "code_block") and tok.map:
            state.block(_block(tok))
        elif tok.type == "html_block" and tok.map:
            state.html_block(tok.content, tok.map[0] + 1)
        elif tok.type == "inline" and tok.map:
            _html(tok.content, tok.map[0] + 1, state.html_open, inline=True)
    return state.finish(lines)


class _Pass:
    """What the pass has seen so far: the open headings, the open HTML elements, each settings section."""

    def __init__(self, titles: dict[str, str]):
        self.titles = titles
        self.found: dict[str, Settings] = {}
        self.stack: list[_Open] = []  # the headings whose sections are open, outermost first
        self.html_open: list[tuple[str, int]] = []  # raw HTML elements opened and not yet closed: (tag, line)
        self.starts: list[tuple[int, int, str]] = []  # (heading line, first line after it, title) for the prose
        self.near = {key: matcher(key) for key in titles}
        self.deep: int | None = None  # the first line nested past _DEEPEST

    def _open_settings(self) -> list[Settings]:
        return [self.found[key] for key in dict.fromkeys(o.key for o in self.stack if o.key)]

    def heading(self, tok, raw: str) -> None:
        level, line = int(tok.tag[1]), tok.map[0] + 1
        while self.stack and self.stack[-1].level >= level:
            self.stack.pop()
        key = settings_key(raw, self.titles)
        self.stack.append(_Open(level, key, raw.strip(), line))
        self.starts.append((tok.map[0], tok.map[1], raw.strip()))
        if key is not None:
            settings = self.found.setdefault(key, Settings(title=self.titles[key]))
            settings.headings.append(line)
            if tok.level > 0:
                settings.note("nested", f"line {line}: the '{_shown(settings)}' heading is inside a block quote or a "
                                        "list; a settings heading stands on its own at the top level (move it out)")
            if self.html_open:
                settings.note("folded heading", self._folded(f"the '{_shown(settings)}' heading", line))
        _html(raw, line, self.html_open, inline=True)

    def block(self, block: Block) -> None:
        for settings in self._open_settings():
            settings.blocks.append(block)
            if self.html_open:
                settings.note("folded block", self._folded(f"the code block under '{_shown(settings)}'", block.start))
        for o in self.stack:
            if not o.key and not o.near_checked:
                o.near_checked = True
                _near_miss(o, self.near, self.titles, self.found)

    def html_block(self, text: str, line: int) -> None:
        for settings in self._open_settings():
            settings.note("html", f"line {line}: raw HTML under '{_shown(settings)}' can hide, fold or imitate the "
                                  "settings on the rendered page; remove it (or move it under another heading)")
        _html(text, line, self.html_open, inline=False)

    def _folded(self, what: str, line: int) -> str:
        tag, opened = self.html_open[-1]
        return (f"line {line}: {what} is inside an HTML <{tag}> element opened on line {opened}, which can fold or "
                "hide it on the rendered page; close the element before the heading, or remove it")

    def finish(self, lines: list[str]) -> tuple[dict[str, Settings], dict[str, str]]:
        _front_matter(lines, self.found, self.titles)
        if self.deep is not None and self.found:
            self.found[next(k for k in self.titles if k in self.found)].note(
                "deep", f"line {self.deep}: block quotes or lists are nested {_DEEPEST} deep there; deeper than that "
                        "the bot stops reading while GitHub still shows it, so flatten them")
        prose: dict[str, str] = {}
        for i, (_, after, title) in enumerate(self.starts):
            end = self.starts[i + 1][0] if i + 1 < len(self.starts) else len(lines)
            prose.setdefault(title, "\n".join(lines[after:end]).strip())
        return self.found, prose


def _block(tok) -> Block:
    if tok.type == "code_block":
        return Block(tok.content, tok.map[0] + 1, tok.map[0] + 1, "indented", "")
    info = tok.info.strip()
    kind = "yaml" if info.lower().startswith(("yaml", "yml")) else "fence"
    closed = tok.content.count("\n") == tok.map[1] - tok.map[0] - 2
    return Block(tok.content, tok.map[0] + 2, tok.map[0] + 1, kind, info, closed)


def _html(text: str, line: int, html_open: list[tuple[str, int]], *, inline: bool) -> None:
    """Follow raw HTML elements opened and closed in ``text`` (comments and code spans are not HTML)."""
    if "<" not in text:
        return
    text = _COMMENT.sub("", _without_code_spans(text) if inline else text)
    for match in _TAG.finditer(text):
        closing, name, self_closed = match.group(1), match.group(2).lower(), match.group(3)
        if name in _VOID or name in _OPTIONAL_END or self_closed:
            continue
        if not closing:
            html_open.append((name, line + text.count("\n", 0, match.start())))
            continue
        for i in range(len(html_open) - 1, -1, -1):
            if html_open[i][0] == name:
                del html_open[i:]
                break


def _without_code_spans(text: str) -> str:
    """``text`` minus its code spans (a backtick run up to the next run of the same length), in linear time."""
    from collections import defaultdict, deque

    runs = [(m.start(), m.end()) for m in re.finditer(r"`+", text)]
    if len(runs) < 2:
        return text
    by_length: dict[int, deque[int]] = defaultdict(deque)
    for index, (start, end) in enumerate(runs):
        by_length[end - start].append(index)
    kept, pos, i = [], 0, 0
    while i < len(runs):
        start, end = runs[i]
        same = by_length[end - start]
        while same and same[0] <= i:
            same.popleft()
        if not same:
            i += 1
            continue
        j = same.popleft()
        kept.append(text[pos:start])
        pos, i = runs[j][1], j + 1
    kept.append(text[pos:])
    return "".join(kept)


def _front_matter(lines: list[str], found: dict[str, Settings], titles: dict[str, str]) -> None:
    if not lines or lines[0].lstrip("\ufeff").rstrip() != "---" or not found:
        return
    if any(line.rstrip() in ("---", "...") for line in lines[1:]):
        first = next(k for k in titles if k in found)
        found[first].note(
            "front matter", "line 1: the file starts with a --- line, so GitHub shows what follows up to the next --- "
            "as YAML front matter (a table of settings the bot does not read); delete it, the settings go in the "
            "```yaml blocks")


def _near_miss(o: _Open, near: dict[str, difflib.SequenceMatcher], titles: dict[str, str],
               found: dict[str, Settings]) -> None:
    """A heading with a code block under it that reads almost like a settings heading is a problem of that setting."""
    key = near_title(o.raw, near)
    if key is None:
        return
    lookalike = " (it has characters that only look like ASCII letters)" if not o.raw.isascii() else ""
    settings = found.setdefault(key, Settings(title=titles[key]))
    settings.note(
        "near miss", f"line {o.line}: the heading {_quoted(o.raw)} holds a code block and reads like "
        f"'{titles[key]}' but is not that heading{lookalike}; name it exactly '{titles[key]}', or rename it so "
        "it cannot be taken for the settings")


def _shown(settings: Settings) -> str:
    return f"## {settings.title}"


def _quoted(text: str, limit: int = 60) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return ascii(text) if not text.isascii() else repr(text)
