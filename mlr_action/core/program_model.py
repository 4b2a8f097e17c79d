"""What a validated program.md is: the budget envelope, the campaign and its search space (DESIGN.md section 2).

Guarantees:

- Every block is strict (:data:`~mlr_action.core.program_fields.STRICT`): an unknown key is an error, so a
  misspelled limit can never silently lift that limit, and a model once built never changes.
- Limits are hard ceilings and finite: the bounds of the search space, ``max_cost_usd`` and ``max_llm_usd``
  are finite numbers; a dimension of the space is a consistent range or a list of choices
  (:meth:`ParamSpec.contains` says whether a value is one of its points).
- The final evaluation asks for what it can run: one seed per repeat, named by ``seed_param``, never a
  searched parameter; its fixed arguments never override a searched one.
- :attr:`Program.fingerprint` changes when the approval changes, never on an upgrade
  (:mod:`mlr_action.core.program_fingerprint`).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlr_action.core.program_fields import STRICT, Dependency, Duration, Flavor, Image, PythonVersion
from mlr_action.core.program_fingerprint import FINGERPRINTED, FINGERPRINTED_WITH_DEFAULTS, fingerprint_of


class Envelope(BaseModel):
    """The budget envelope: the authorization to spend. Every limit is a hard ceiling."""

    model_config = STRICT

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

    model_config = STRICT

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

    model_config = STRICT

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

    model_config = STRICT

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

        It hashes what the blocks mean, not the release reading them: the keys of
        :data:`~mlr_action.core.program_fingerprint.FINGERPRINTED` as the first fingerprint did (their defaults
        too), and a key added since only when it is not at its default. So a release that adds a key leaves the
        fingerprint of a program.md that does not set it as it was, and a stopped campaign does not resume for an
        upgrade (:func:`mlr_action.core.decide.resumption`).
        """
        return fingerprint_of((self.envelope, self.campaign), FINGERPRINTED)

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """:attr:`fingerprint`, and the one the releases that hashed every key with its default wrote for it."""
        return self.fingerprint, fingerprint_of((self.envelope, self.campaign), FINGERPRINTED_WITH_DEFAULTS)

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
