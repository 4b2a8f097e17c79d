"""Figure 6: what reading program.md costs as the file grows: ``parse_program`` on files of many headings.

Measured in this process, 5 repeats after one untimed warm-up, the median and
range reported, next to the floor (markdown-it's own block parse of the same
text, which ``parse_program`` cannot beat) and, for small sizes, the
algorithm before issue 10 (every token scanned for every heading, kept here
as ``old_sections`` so the comparison can be re-run):

- a valid program.md after N headings (N = 2,000, 4,000 and 20,000: the
  issue's case), then 20,000 with a line of prose under each;
- 20,000 headings with inline markup (``## *Heading* `N```), which take the
  path that parses a heading's inline text only when it could spell a
  settings heading;
- 49,000 list items (markdown-it's slowest construct per line, just under
  :data:`~mlr_action.core.program.MAX_PROGRAM_LINES`): the worst case that is read;
- 60,000 lines, refused before the Markdown is parsed.

Target: 20,000 headings in well under a second; time linear in the file.

    python benchmarks/program_parse.py [--quick] [--repeats 5]
"""

from __future__ import annotations

import time
from typing import Any, Callable

import _common
from _common import med_range, summary, table

from mlr_action.core.program import ProgramError, parse_program
from programs import program_text

BASE = program_text()


def headings(n: int, *, markup: bool = False, prose: bool = False) -> str:
    title = "*Heading* `{i}`" if markup else "Heading {i}"
    body = "A line of prose.\n" if prose else ""
    return "".join(f"## {title.format(i=i)}\n{body}" for i in range(n)) + BASE


def old_sections(text: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``program._sections`` before issue 10, verbatim: the fences under each heading, found by rescanning all tokens."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    lines = text.splitlines()
    fences: dict[str, list[str]] = {}
    prose: dict[str, str] = {}
    found: list[tuple[int, int, str]] = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map:
            found.append((int(tok.tag[1]), tok.map[0], tokens[i + 1].content.strip()))
    for idx, (level, start, title) in enumerate(found):
        end = next((s for lv, s, _ in found[idx + 1:] if lv <= level), len(lines))
        body = [t.content for t in tokens
                if t.type == "fence" and t.map and start < t.map[0] < end and t.info.strip().lower() in ("yaml", "yml")]
        fences.setdefault(title.lower(), []).extend(body)
        nxt = next((s for _, s, _ in found[idx + 1:]), end)
        prose.setdefault(title, "\n".join(lines[start + 1:nxt]).strip())
    return fences, prose


def floor(text: str) -> None:
    from markdown_it import MarkdownIt

    MarkdownIt("commonmark").disable("inline").parse(text)


def parse(text: str) -> str:
    try:
        parse_program(text)
        return "valid"
    except ProgramError as exc:
        return "refused: " + exc.problems[0][:60]


def timed(fn: Callable[[str], Any], text: str, repeats: int) -> tuple[dict[str, Any], Any]:
    out = fn(text)  # warm-up, untimed
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - started)
    return summary(times), out


def main() -> None:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    repeats = 2 if args.quick else args.repeats
    cases: list[tuple[str, str, bool]] = [  # (name, text, measure the old algorithm too)
        ("the template-sized program.md", BASE, True),
        ("2,000 headings", headings(2_000), True),
        ("4,000 headings", headings(4_000), True),
        ("20,000 headings", headings(20_000), False),
        ("20,000 headings with markup", headings(20_000, markup=True), False),
        ("20,000 headings, a line of prose each", headings(20_000, prose=True), False),
        ("49,000 list items", BASE + "- item\n" * 49_000, False),
        ("60,000 lines (refused)", BASE + "- item\n" * 60_000, False),
    ]
    if args.quick:
        cases = cases[:2]
    results: dict[str, Any] = {"repeats": repeats, "cases": []}
    rows = []
    for name, text, old in cases:
        ours, outcome = timed(parse, text, repeats)
        base, _ = timed(floor, text, repeats)
        before = timed(old_sections, text, max(1, repeats // 2))[0] if old else None
        results["cases"].append({"case": name, "bytes": len(text), "lines": text.count("\n"), "outcome": outcome,
                                 "parse_program_s": ours, "markdown_it_floor_s": base, "old_sections_s": before})
        rows.append([name, f"{len(text):,}", outcome.split(":")[0], med_range(ours, 1000, "{:.0f}"),
                     med_range(base, 1000, "{:.0f}"), med_range(before, 1000, "{:.0f}") if before else "-"])
    print(table(["file", "bytes", "outcome", "parse_program (ms)", "markdown-it floor (ms)", "before issue 10 (ms)"],
                rows))
    _common.write_results("program_parse", results, quick=args.quick)


if __name__ == "__main__":
    main()
