"""program.md: the campaign's task spec and its budget envelope (DESIGN.md section 2).

Guarantees:

- The two YAML blocks are found by their headings as a reviewer sees them on
  GitHub's rendered page (:mod:`mlr_action.core.program_markdown`): the one code
  block under a ``Budget envelope`` heading and under a ``Campaign`` heading
  (any heading level, case-insensitive), up to the next heading of the same
  or a higher level, and it must be a fence whose info string starts with
  ``yaml``/``yml``. A second code block of any kind, the heading twice, raw
  HTML under the heading, a heading in a quote or list, a lookalike heading
  holding a block, or front matter is an error, so the envelope a reviewer
  approved is never ambiguous. Parsing is linear in the file's size.
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
- Durations are stored in seconds; every flavor is a known HF Jobs flavor.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from mlr_action.core.durations import HINT as DURATION_HINT
from mlr_action.core.durations import format_duration, parse_duration
from mlr_action.core.flavors import KNOWN_FLAVORS, suggest_flavor
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


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: a problem quotes the value, not a megabyte of it."""
    text = repr(value) if not isinstance(value, (dict, list)) or len(value) < 20 else f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _duration(value: Any) -> int:
    if not isinstance(value, (str, int, float)) or isinstance(value, str) and len(value) > 40:
        raise ValueError(f"{_shown(value)} is not a duration ({DURATION_HINT})")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


Duration = Annotated[int, BeforeValidator(_duration), Field(json_schema_extra={"examples": ["30m", "2h", "2h30m", 3600]})]


def _flavor(value: Any) -> str:
    if not isinstance(value, str) or value not in KNOWN_FLAVORS:
        hint = suggest_flavor(str(value)[:40])
        fix = f"did you mean {hint}?" if hint else "known flavors: " + ", ".join(KNOWN_FLAVORS)
        raise ValueError(f"{_shown(value)} is not an HF Jobs flavor ({fix})")
    return value


Flavor = Annotated[str, BeforeValidator(_flavor)]

_STRICT = ConfigDict(extra="forbid", frozen=True)


def _checked(pattern: str, fix: str):
    """A validator that lets a string matching ``pattern`` through, and otherwise says ``fix``."""
    compiled = re.compile(pattern)

    def check(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str) or not compiled.fullmatch(value):
            raise ValueError(f"{_shown(value)} {fix}")
        return value

    return check


def _python_version(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"{_shown(value)} is a number; quote it, like python: '3.11' (as a number, 3.10 reads as 3.1)")
    return _checked(r"3\.[0-9]{1,2}(\.[0-9]{1,3})?", "is not a Python version (like '3.11' or '3.12.7')")(value)


Image = Annotated[str, BeforeValidator(_checked(
    r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}",
    "is not a container image (like pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime); no spaces or quotes"))]
Dependency = Annotated[str, BeforeValidator(_checked(
    r"[A-Za-z0-9][^\x00-\x1f\x7f]{0,199}",
    "is not a package requirement (like torch>=2.4 or transformers==4.46.0); index options such as "
    "--index-url go in requirements.txt"))]
PythonVersion = Annotated[str, BeforeValidator(_python_version)]


class Envelope(BaseModel):
    """The budget envelope: the authorization to spend. Every limit is a hard ceiling."""

    model_config = _STRICT

    max_jobs: int = Field(gt=0, description="Total jobs the campaign may submit.")
    max_walltime: Duration = Field(description="Total job wall-clock, e.g. 8h.")
    allowed_flavors: list[Flavor] = Field(min_length=1, description="HF Jobs flavors the campaign may use.")
    max_timeout: Duration = Field(description="Maximum timeout of one job, e.g. 2h.")
    allow_deletes: bool = Field(False, description="May the bot delete Hub repos of discarded runs.")
    output_repos: list[str] = Field(default_factory=list, description="fnmatch globs of Hub repos jobs may push to.")
    max_cost_usd: float | None = Field(None, gt=0, allow_inf_nan=False, description="Dollar ceiling for job hardware.")
    max_parallel: int = Field(1, ge=1, le=16, description="Jobs in flight at once.")
    max_llm_usd: float | None = Field(None, ge=0, allow_inf_nan=False, description="Dollar ceiling for LLM calls.")


class ParamSpec(BaseModel):
    """One search-space dimension: a numeric range or a list of choices."""

    model_config = _STRICT

    type: Literal["float", "int", "categorical"] | None = None
    low: float | None = Field(None, allow_inf_nan=False)
    high: float | None = Field(None, allow_inf_nan=False)
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[str | int | float | bool] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.choices is not None:
            if self.type not in (None, "categorical") or self.low is not None or self.high is not None:
                raise ValueError("give either choices or type/low/high, not both")
            return self
        if self.type not in ("float", "int"):
            raise ValueError("needs type: float or type: int with low and high (or a list of choices)")
        if self.low is None or self.high is None:
            raise ValueError("needs both low and high")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError("log: true needs low > 0")
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError("type: int needs whole-number low and high")
        return self

    @property
    def kind(self) -> str:
        return "categorical" if self.choices is not None else str(self.type)

    def contains(self, value: Any) -> bool:
        """Is ``value`` a legal value of this dimension?"""
        if self.choices is not None:
            return any(type(value) is type(c) and value == c for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not math.isfinite(value):
            return False
        if self.type == "int" and not float(value).is_integer():
            return False
        return self.low <= value <= self.high  # type: ignore[operator]


Scalar = str | int | float | bool
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_METRIC = r"^[A-Za-z_][A-Za-z0-9_./-]*$"
MAX_REPEATS = 50


class FinalEvaluation(BaseModel):
    """The clean final evaluation: the best search config run again after the stop, paid from the reserve.

    Each repeat gets its own seed through ``seed_param`` (the seeds after the search's own, unless ``seeds``
    lists them) and the arguments in ``fixed`` on top of the Campaign's (a test split, more epochs).
    """

    model_config = _STRICT

    repeats: int = Field(3, ge=1, le=MAX_REPEATS, description="How many times the best config runs again.")
    seed_param: str | None = Field(None, description="The argument that carries the seed; each repeat gets its own. "
                                   "Needed when repeats is over 1.")
    seeds: list[int] | None = Field(None, min_length=1, max_length=MAX_REPEATS,
                                    description="The seed of each repeat; by default the repeats seeds after the "
                                    "search's own (fixed's value of seed_param, or 0).")
    fixed: dict[str, Scalar] = Field(default_factory=dict, description="Arguments of the final runs only, over the "
                                     "Campaign's fixed, e.g. split: test or more epochs.")
    metric: str | None = Field(None, pattern=_METRIC, description="The metric the final runs print; the Campaign's "
                               "metric when absent.")
    flavor: Flavor | None = Field(None, description="Flavor of the final runs; the best run's when absent.")
    timeout: Duration | None = Field(None, description="Timeout of each final run; the best run's when absent.")

    @model_validator(mode="before")
    @classmethod
    def _repeats_from_seeds(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("seeds"), list) and "repeats" not in data:
            return {**data, "repeats": len(data["seeds"])}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> FinalEvaluation:
        bad = [n for n in [*self.fixed, *([self.seed_param] if self.seed_param else [])] if not _NAME.match(n)]
        if bad:
            raise ValueError(f"argument names must look like seed or split, not {', '.join(map(repr, bad))}")
        if self.seeds is not None:
            if self.seed_param is None:
                raise ValueError("seeds needs seed_param, the argument that carries the seed (like seed)")
            if len(self.seeds) != self.repeats:
                raise ValueError(f"repeats is {self.repeats} but seeds lists {len(self.seeds)}; give one of them, "
                                 "or make them agree")
            if len(set(self.seeds)) != len(self.seeds):
                raise ValueError("seeds lists a seed twice; each repeat needs its own")
        if self.repeats > 1 and self.seed_param is None:
            raise ValueError(f"repeats is {self.repeats}: each repeat needs its own seed, so name the argument that "
                             "carries it in seed_param (like seed: the script must accept --seed=<n>), or set "
                             "repeats: 1")
        if self.seed_param is not None and self.seed_param in self.fixed:
            raise ValueError(f"{self.seed_param} is both seed_param and in fixed (each repeat gets its own seed: "
                             "remove it from fixed)")
        return self


class Campaign(BaseModel):
    """What to optimise, how the job is run, and the search space."""

    model_config = _STRICT

    metric: str = Field(pattern=_METRIC, description="Name of the metric the job prints.")
    direction: Literal["maximize", "minimize"] = "maximize"
    target: float | None = Field(None, allow_inf_nan=False, description="Stop when the best metric reaches this.")
    patience: int | None = Field(None, ge=1, description="Stop after this many experiments in a row without improvement.")
    min_delta: float = Field(0.0, ge=0, allow_inf_nan=False, description="A result is an improvement (kept, and "
                             "resetting patience) only when it beats the best by more than this.")
    script: str = Field(min_length=1, description="Path of the training script, relative to program.md.")
    params: dict[str, ParamSpec] = Field(
        description="The search space, passed as --name=value; {} runs the script once as it is (a baseline)."
    )
    fixed: dict[str, Scalar] = Field(default_factory=dict, description="Constant arguments, passed as --name=value.")
    flavor: Flavor | None = Field(None, description="Default flavor; the first allowed flavor when absent.")
    timeout: Duration | None = Field(None, description="Default job timeout; max_timeout when absent.")
    name: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="Campaign id used in job labels.")
    seed: int = Field(0, description="Seed of the search proposer.")
    namespace: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$",
        description="HF user or org the jobs run in (--backend hf); the token's own user when absent.",
    )
    image: Image | None = Field(
        None, description="Container image of an HF job (e.g. a PyTorch CUDA image); the uv image when absent. "
                          "Without uv in it, the job installs its dependencies with pip and runs `python`.",
    )
    dependencies: list[Dependency] = Field(
        default_factory=list, max_length=50,
        description="Extra packages for every job, on top of what the campaign folder declares (uv run --with).",
    )
    python: PythonVersion | None = Field(
        None, description="Python version the job runs with, like '3.11' (uv run --python); the image's when absent.",
    )
    final: FinalEvaluation | None = Field(None, description="The clean final evaluation after the stop: the best "
                                          "config run again from the reserve (none when absent).")
    # 10 minutes: a job leaves SCHEDULING within a minute or two when its hardware is free, a cold pull of a large
    # CUDA image included, so only hardware HF cannot give now reaches the limit, and the slot is free again within
    # a tick of it. It also bounds what HF may bill while a job starts ("Starting"), which every job in flight
    # reserves on top of its timeout: 10m keeps that small next to a campaign's walltime (30m would not let a 5m
    # job of a 30m envelope start at all). Raise it for scarce hardware worth waiting (and reserving) for.
    scheduling_timeout: Duration = Field(
        600, description="Cancel a job still waiting to start (SCHEDULING) after this long, e.g. 10m (--backend hf).",
    )

    @model_validator(mode="after")
    def _names(self) -> Campaign:
        bad = [n for n in [*self.params, *self.fixed] if not _NAME.match(n)]
        if bad:
            raise ValueError(f"parameter names must look like lr or batch_size, not {', '.join(map(repr, bad))}")
        both = sorted(set(self.params) & set(self.fixed))
        if both:
            raise ValueError(f"{', '.join(both)} is in both params and fixed (keep it in one)")
        final = self.final
        if final is not None and final.seed_param in self.params:
            raise ValueError(f"final.seed_param: {final.seed_param} is searched (in params); the final evaluation "
                             "gives each repeat its own seed, so keep it in fixed or leave it out of params")
        searched = sorted(set(final.fixed) & set(self.params)) if final is not None else []
        if searched:
            raise ValueError(f"final.fixed: {', '.join(searched)} is searched (in params); the final runs keep the "
                             "best config's value, so set it only in params")
        return self


class Program(BaseModel):
    """A validated program.md."""

    model_config = ConfigDict(frozen=True)

    envelope: Envelope
    campaign: Campaign
    sections: dict[str, str] = Field(default_factory=dict)
    root: str = "."

    @property
    def default_flavor(self) -> str:
        return self.campaign.flavor or self.envelope.allowed_flavors[0]

    @property
    def default_timeout_s(self) -> int:
        return self.campaign.timeout or self.envelope.max_timeout

    @property
    def final_metric(self) -> str:
        """The metric the final evaluation's runs print: the final block's, or the campaign's."""
        final = self.campaign.final
        return (final.metric if final is not None else None) or self.campaign.metric

    @property
    def final_jobs(self) -> int:
        """Jobs of ``max_jobs`` the search keeps back for the final evaluation (its repeats; 0 without one)."""
        return self.campaign.final.repeats if self.campaign.final is not None else 0

    @property
    def fingerprint(self) -> str:
        """Short hash of the envelope and campaign blocks: changes when the approval changes, never on an upgrade.

        It hashes what the blocks mean, not the release reading them: the keys of :data:`_FINGERPRINTED` as the
        first fingerprint did (their defaults too), and a key added since only when it is not at its default.
        So a release that adds a key leaves the fingerprint of a program.md that does not set it as it was, and
        a stopped campaign does not resume for an upgrade (:func:`mlr_action.core.decide.resumption`).
        """
        return _fingerprint(self, _FINGERPRINTED)

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """:attr:`fingerprint`, and the one the releases that hashed every key with its default wrote for it."""
        return self.fingerprint, _fingerprint(self, _FINGERPRINTED_WITH_DEFAULTS)

    def better(self, value: float, than: float | None) -> bool:
        """Is ``value`` strictly better than ``than`` in the campaign's direction?"""
        if than is None:
            return True
        return value > than if self.campaign.direction == "maximize" else value < than

    def improves(self, value: float, best: float | None) -> bool:
        """Does ``value`` beat ``best`` by more than ``min_delta`` (the early-stopping convention)? The first does."""
        if best is None:
            return True
        gain = value - best if self.campaign.direction == "maximize" else best - value
        return gain > self.campaign.min_delta

    def reached_target(self, value: float | None) -> bool:
        target = self.campaign.target
        if value is None or target is None:
            return False
        return value >= target if self.campaign.direction == "maximize" else value <= target


# --- the fingerprint --------------------------------------------------------

# The keys the fingerprint has hashed since it began (ccaebc9 to 236b7bb), defaults included: kept so, since
# ledgers carry those fingerprints. A key not listed counts only when it is not at its default.
_FINGERPRINTED: dict[str, tuple[str, ...]] = {
    "Envelope": ("max_jobs", "max_walltime", "allowed_flavors", "max_timeout", "allow_deletes", "output_repos",
                 "max_cost_usd", "max_parallel", "max_llm_usd"),
    "Campaign": ("metric", "direction", "target", "patience", "script", "params", "fixed", "flavor", "timeout",
                 "name", "seed", "namespace"),
    "ParamSpec": ("type", "low", "high", "log", "step", "choices"),
}
# What the releases with issues 11 and 15 (a05383a to 12c715a) hashed: every key of theirs, its default too.
_FINGERPRINTED_WITH_DEFAULTS: dict[str, tuple[str, ...]] = {
    **_FINGERPRINTED,
    "Campaign": (*_FINGERPRINTED["Campaign"], "min_delta", "image", "dependencies", "python", "final",
                 "scheduling_timeout"),
    "FinalEvaluation": ("repeats", "seed_param", "seeds", "fixed", "metric", "flavor", "timeout"),
}


def _fingerprint(program: Program, always: dict[str, tuple[str, ...]]) -> str:
    import hashlib

    blob = "".join(part.model_dump_json(exclude=_unwritten(part, always) or None)
                   for part in (program.envelope, program.campaign))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _unwritten(model: BaseModel, always: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """pydantic's ``exclude`` for ``model``: every key not in ``always`` that is at its default, at every depth."""
    out: dict[str, Any] = {}
    kept = always.get(type(model).__name__, ())
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if name not in kept and value == field.get_default(call_default_factory=True):
            out[name] = True
        elif isinstance(value, BaseModel):
            out[name] = _unwritten(value, always) or None
        elif isinstance(value, dict):
            out[name] = {k: inner for k, v in value.items() if isinstance(v, BaseModel)
                         and (inner := _unwritten(v, always))} or None
    return {k: v for k, v in out.items() if v}


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
        problems += _script_file_problems(root, script, campaign.script)
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


# --- where `script:` may point (DESIGN.md section 9) ---------------------------------------


def script_path(script: str) -> tuple[str, list[str]]:
    """``script`` as a clean relative path in the campaign folder, and what forbids it (from the text alone).

    Both modes apply these rules: relative, no ``..``, nothing under ``.git/`` (git's own data) or
    ``runs/`` (the ledger and reports: data the bot and the ledger branch write, never code).
    """
    shown = _shown(script)
    if any(ord(c) < 32 or c == "\x7f" for c in script):
        return "", [f"script: {shown} has a control character; name the file with a plain path"]
    if script.startswith("/"):
        return "", [f"script: {script} is outside the repository (an absolute path): give it relative to the "
                    "folder that holds program.md"]
    parts = [p for p in script.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "", [f"script: {script} is outside the repository or goes through `..`: give a path inside the "
                    "folder that holds program.md, without `..`"]
    if not parts:
        return "", [f"script: {shown} names no file; give the training script's path, like train.py"]
    if any(p.casefold() == ".git" for p in parts):
        return "", [f"script: {script} is under .git/, which is git's own data, not a file of the repository"]
    if parts[0] == "runs":
        return "", [f"script: {script} is under runs/, which holds the ledger and reports (data the bot and the "
                    "ledger branch write), never code to run; keep the script outside runs/"]
    return "/".join(parts), []


def _script_file_problems(root: Path, script: str, shown: str) -> list[str]:
    """The work tree's file (local mode): a regular file reached through no symlink."""
    import os
    import stat

    path = Path(root)
    for part in script.split("/"):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return [f"script: {shown} does not exist next to program.md (fix the path)"]
        except OSError as exc:
            return [f"script: cannot read {shown} ({exc.strerror}); fix its permissions"]
        if stat.S_ISLNK(mode):
            inside = Path(os.path.realpath(path)).is_relative_to(Path(root).resolve())
            return [f"script: {shown} is outside the repository (use a path inside it); a symlink is never followed"
                    if not inside else
                    f"script: {shown} goes through the symlink {path.relative_to(root)}; name the file itself (a "
                    "symlink is never followed: the job runs the file committed at that path)"]
    if not stat.S_ISREG(mode):
        return [f"script: {shown} is not a regular file; name the training script itself"]
    return []


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


def output_repo_for(envelope: Envelope, campaign_id: str, iteration: int) -> str:
    """The Hub repo an experiment may push to: the first ``output_repos`` glob made concrete.

    The result always matches that glob, or is "" when no output repo is allowed.
    """
    if not envelope.output_repos:
        return ""
    glob = envelope.output_repos[0]
    concrete = glob.replace("*", f"{campaign_id}-{iteration:03d}", 1).replace("*", "").replace("?", "x")
    concrete = re.sub(r"\[[^\]]*\]", "x", concrete)
    return concrete if fnmatch.fnmatchcase(concrete, glob) else ""
