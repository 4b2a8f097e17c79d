"""program.md: the campaign's task spec and its budget envelope (DESIGN.md section 2).

Guarantees:

- The two YAML blocks are found by their headings as a reviewer sees them on
  GitHub's rendered page (:mod:`mlr_action.core.program_markdown`): the one
  fenced ```yaml block under a ``Budget envelope`` and under a ``Campaign``
  heading (any level, case-insensitive). A second code block of any kind, the
  heading twice, raw HTML under it, a heading in a quote or list, a lookalike
  heading holding a block, or front matter is an error, so the envelope a
  reviewer approved is never ambiguous. Parsing is linear in the file's size.
- Each block means what a reviewer reads (:mod:`mlr_action.core.program_yaml`):
  anchors, aliases, merge keys, explicit tags, directives, YAML 1.1 number
  forms (``0x10``, ``017``, ``1_000``, ``1:00``), ``.inf``/``.nan``,
  ``yes``/``no``/``on``/``off``, ``~``, non-ASCII digits and invisible
  characters are each a problem naming the line, the key and the fix.
- Hostile input is bounded: program.md over :data:`MAX_PROGRAM_BYTES` or
  :data:`MAX_PROGRAM_LINES`, a YAML block over :data:`MAX_BLOCK_CHARS`,
  nesting too deep to read, and duplicate keys are each a problem with its
  fix, never a hang, a crash or a silently chosen value. Limits and the
  bounds of the search space must be finite numbers.
- Tokens are read from the environment only: program.md text that looks like
  a token (or holds the value of ``HF_TOKEN``, ``GITHUB_TOKEN`` or
  ``ANTHROPIC_API_KEY``) is a problem that names the line, never the token,
  and every problem is redacted before it is shown.
- :func:`parse_program` either returns a fully validated :class:`Program` or
  raises :class:`ProgramError` listing *every* problem at once, each naming
  the key and the fix. Unknown keys are errors, so a misspelled limit can never
  silently lift that limit.
- Durations are stored in seconds; every flavor is a known HF Jobs flavor
  (:mod:`mlr_action.core.program_fields`).

This module is the entry to program.md: it reads and checks the text. What a valid
one is lives in :mod:`mlr_action.core.program_model` (:class:`Program`, :class:`Envelope`,
:class:`Campaign`, imported here so the result types of :func:`parse_program` and
:func:`parse_envelope` come from the entry too), where its script and outputs may be in
:mod:`mlr_action.core.program_paths`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mlr_action.core.durations import format_duration
from mlr_action.core.program_fields import shown as _shown
from mlr_action.core.program_model import Campaign, Envelope, FinalEvaluation, ParamSpec, Program
from mlr_action.core.program_paths import script_file_problems, script_path
from mlr_action.core.redaction import holds_secret, redact

MAX_PROGRAM_BYTES = 1_000_000  # a program.md is a few kilobytes; this bounds what a step reads and parses
MAX_PROGRAM_LINES = 50_000  # 20,000 headings with a blank line each fit; reading Markdown costs per line
MAX_BLOCK_CHARS = 64 * 1024  # one settings block
ENVELOPE_HEADING = "budget envelope"
CAMPAIGN_HEADING = "campaign"
PROSE_SECTIONS = ("Goal", "Scope", "Reference artifacts", "Output format", "Keep/discard criteria")


class ProgramError(Exception):
    """program.md cannot be used; ``problems`` lists every reason with its fix."""

    def __init__(self, problems: list[str], path: str = "program.md"):
        problems = [redact(p) for p in problems]  # a value quoted back may be a pasted token
        self.problems = problems
        self.path = path
        super().__init__(f"{path} is not valid:\n" + "\n".join(f"  - {p}" for p in problems))


# --- Markdown and YAML -----------------------------------------------------

_TITLES = {ENVELOPE_HEADING: "Budget envelope", CAMPAIGN_HEADING: "Campaign"}


def _sections(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The code blocks under each settings heading (:mod:`mlr_action.core.program_markdown`) and the prose under each heading."""
    from mlr_action.core.program_markdown import find_settings

    lines = max(text.count("\n"), text.count("\r")) + (not text.endswith(("\n", "\r")))
    if lines > MAX_PROGRAM_LINES:
        raise ProgramError([f"program.md has {lines} lines, over the {MAX_PROGRAM_LINES} it may have (it needs a few "
                            "hundred: see program.template.md)"])
    return find_settings(text, _TITLES)


def _yaml_block(fences: dict[str, Any], heading: str, problems: list[str]) -> dict | None:
    """The mapping in the one ```yaml block under ``heading``, or None with every reason in ``problems``."""
    import yaml

    from mlr_action.core.program_yaml import Refused, load_settings

    title = _TITLES[heading]
    settings = fences.get(heading)
    if settings is None or not settings.headings:
        problems.append(f"missing heading '## {title}' (add it, with a fenced ```yaml block below it)")
        problems.extend(settings.problems if settings is not None else [])
        return None
    if settings.problems:
        problems.extend(settings.problems)
        return None
    if len(settings.headings) > 1:
        problems.append(f"'## {title}' appears {len(settings.headings)} times (lines {_lines(settings.headings)}); "
                        "keep one heading with one ```yaml block, so the settings a reviewer approved are unambiguous")
        return None
    if not settings.blocks:
        problems.append(f"'## {title}' has no fenced ```yaml block (put the settings in one below the heading)")
        return None
    if len(settings.blocks) > 1:
        problems.append(f"'## {title}' has {len(settings.blocks)} code blocks (lines "
                        f"{_lines([b.start for b in settings.blocks])}); keep one ```yaml block under it, so the "
                        "settings a reviewer approved are unambiguous")
        return None
    block = settings.blocks[0]
    if block.kind != "yaml":
        problems.append(f"'## {title}' line {block.start}: the settings are in {block.label}; put them in a fenced "
                        "```yaml block")
        return None
    if not block.closed:
        problems.append(f"'## {title}' line {block.start}: the ```yaml block is never closed, so the rest of the file "
                        "reads as part of it; close it with a ``` line")
        return None
    if len(block.text) > MAX_BLOCK_CHARS:
        problems.append(f"'## {title}' block is {len(block.text)} characters, over the {MAX_BLOCK_CHARS} a settings "
                        "block may hold (it needs a few lines: see program.template.md)")
        return None
    try:
        data = load_settings(block.text, first_line=block.line)
    except Refused as exc:
        problems.extend(f"'## {title}' {p}" for p in exc.problems)
        return None
    except RecursionError:
        problems.append(f"'## {title}' YAML is nested too deeply to read (flatten it: see program.template.md)")
        return None
    except ValueError as exc:  # a number too long to convert, say
        problems.append(f"'## {title}' YAML has a value that cannot be read ({str(exc).split(';')[0]}); fix that value")
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {block.line + mark.line}" if mark else ""
        why = str(getattr(exc, "problem", exc))
        fix = "indent with spaces, not tabs" if "\\t" in why or "\t" in why else "check indentation and colons"
        problems.append(f"'## {title}' YAML does not parse{where}: {why} ({fix})")
        return None
    if not isinstance(data, dict):
        problems.append(f"'## {title}' YAML must be a mapping of key: value lines, not {type(data).__name__}")
        return None
    return data


def _lines(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:-1][:9]))
    return f"{shown} and {numbers[-1]}" if shown else str(numbers[-1])


def _describe(model: type[BaseModel], exc: ValidationError, data: dict) -> list[str]:
    """Turn pydantic's errors into one line each that names the key and the fix."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        kind = err["type"]
        value = err.get("input")
        if kind == "extra_forbidden":
            key = str(err["loc"][-1])
            known = list(model.model_fields) if len(err["loc"]) == 1 else list(
                FinalEvaluation.model_fields if err["loc"][0] == "final" else ParamSpec.model_fields)
            close = difflib.get_close_matches(key, known, n=1)
            fix = f"did you mean {close[0]}?" if close else "allowed keys: " + ", ".join(known)
            if not key.isascii():  # a lookalike letter (Cyrillic а for Latin a) reads as the real key
                loc = loc.replace(key, ascii(key))
                fix += " It has characters that only look like ASCII letters: retype it"
            out.append(f"{_cut(loc)}: unknown key ({fix})")
        elif kind == "missing":
            out.append(f"{loc}: missing (add it; see program.template.md)")
        elif kind == "value_error":
            msg = str(err["msg"]).removeprefix("Value error, ")
            if "is not a duration" in msg or "positive duration" in msg:
                out.append(f"{loc}: {msg}")
            else:
                out.append(f"{loc}: {msg}" if loc else msg)
        else:
            shown = _shown(value) if not isinstance(value, dict) else "a mapping"
            out.append(f"{_cut(loc)}: {err['msg'].lower()} (got {shown})")
    return out


def _cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _secret_lines(text: str) -> list[int]:
    """Lines of ``text`` holding something that looks like a token (see :func:`mlr_action.core.redaction.redact`)."""
    if not holds_secret(text):
        return []
    lines = text.splitlines()
    found = [n for n, line in enumerate(lines, start=1) if holds_secret(line)]
    # A token split across two lines (or one only the whole text shows): name the pair.
    return found or [n for n in range(1, len(lines)) if holds_secret(lines[n - 1] + "\n" + lines[n])] or [1]


def _cross_checks(envelope: Envelope, campaign: Campaign, root: Path | None) -> list[str]:
    problems = []
    if campaign.flavor and campaign.flavor not in envelope.allowed_flavors:
        problems.append(
            f"flavor: {campaign.flavor} is not in allowed_flavors {envelope.allowed_flavors} "
            "(add it there or pick an allowed one)"
        )
    if campaign.timeout and campaign.timeout > envelope.max_timeout:
        problems.append(
            f"timeout: {format_duration(campaign.timeout)} is over max_timeout "
            f"{format_duration(envelope.max_timeout)} (lower timeout or raise max_timeout)"
        )
    if envelope.max_timeout > envelope.max_walltime:
        problems.append(
            f"max_timeout: {format_duration(envelope.max_timeout)} is over max_walltime "
            f"{format_duration(envelope.max_walltime)} (no job of that length could ever run)"
        )
    for glob in envelope.output_repos:
        if "/" not in glob:
            problems.append(f"output_repos: {glob!r} needs an owner, like me/sweep-*")
    problems += _final_checks(envelope, campaign)
    script, script_problems = script_path(campaign.script)
    problems += script_problems
    if root is not None and not script_problems:
        problems += script_file_problems(root, script, campaign.script)
    return problems


def _final_checks(envelope: Envelope, campaign: Campaign) -> list[str]:
    """The final evaluation must fit the envelope it is paid from, and leave the search a job."""
    final, problems = campaign.final, []
    if final is None:
        return problems
    if final.flavor and final.flavor not in envelope.allowed_flavors:
        problems.append(f"final.flavor: {final.flavor} is not in allowed_flavors {envelope.allowed_flavors} "
                        "(add it there or pick an allowed one)")
    if final.timeout and final.timeout > envelope.max_timeout:
        problems.append(f"final.timeout: {format_duration(final.timeout)} is over max_timeout "
                        f"{format_duration(envelope.max_timeout)} (lower it or raise max_timeout)")
    if final.repeats >= envelope.max_jobs:
        problems.append(f"final.repeats: {final.repeats} leaves no job of max_jobs {envelope.max_jobs} for the search "
                        "(the search keeps that many jobs back for the final evaluation): lower repeats or raise "
                        "max_jobs")
    return problems


def parse_envelope(text: str) -> Envelope | None:
    """Only the envelope, for the guard: None when there is no envelope heading."""
    fences, _ = _sections(text)
    if ENVELOPE_HEADING not in fences:
        return None
    problems: list[str] = []
    data = _yaml_block(fences, ENVELOPE_HEADING, problems)
    if data is not None:
        try:
            return Envelope.model_validate(data)
        except ValidationError as exc:
            problems.extend(_describe(Envelope, exc, data))
    raise ProgramError(problems)


def parse_program(text: str, *, root: Path | None = None, path: str = "program.md") -> Program:
    """Validate program.md text; ``root`` (its folder) enables the script check."""
    fences, prose = _sections(text)
    problems: list[str] = []
    secret = _secret_lines(text)
    if secret:
        problems.append(
            f"line {', '.join(map(str, secret[:5]))} holds what looks like a token (HF, GitHub or Anthropic): "
            "delete it and revoke that token, since git history keeps it; the bot reads tokens only from the "
            "environment (HF_TOKEN, ANTHROPIC_API_KEY, GITHUB_TOKEN as repository secrets)"
        )
    env_data = _yaml_block(fences, ENVELOPE_HEADING, problems)
    camp_data = _yaml_block(fences, CAMPAIGN_HEADING, problems)
    envelope = campaign = None
    if env_data is not None:
        try:
            envelope = Envelope.model_validate(env_data)
        except ValidationError as exc:
            problems.extend(_describe(Envelope, exc, env_data))
    if camp_data is not None:
        try:
            campaign = Campaign.model_validate(camp_data)
        except ValidationError as exc:
            problems.extend(_describe(Campaign, exc, camp_data))
    if envelope and campaign:
        problems.extend(_cross_checks(envelope, campaign, root))
    if problems or envelope is None or campaign is None:
        raise ProgramError(problems, path)
    sections = {k: v for k, v in prose.items() if k in PROSE_SECTIONS}
    return Program(envelope=envelope, campaign=campaign, sections=sections, root=str(root or "."))


def load_program(path: Path) -> Program:
    """Read and validate the program.md at ``path``."""
    try:
        if path.stat().st_size > MAX_PROGRAM_BYTES:
            raise ProgramError([f"{path} is {path.stat().st_size} bytes, over the {MAX_PROGRAM_BYTES} a program.md may "
                                "be (it needs a few kilobytes: see program.template.md)"], str(path))
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProgramError([f"{path} does not exist (run `mlr init` to draft one)"], str(path)) from None
    except UnicodeDecodeError as exc:
        raise ProgramError([f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8 "
                            "Markdown (a binary file or another encoding cannot be read)"], str(path)) from None
    except OSError as exc:
        raise ProgramError([f"cannot read {path}: {exc}"], str(path)) from None
    return parse_program(text, root=path.parent, path=str(path))
