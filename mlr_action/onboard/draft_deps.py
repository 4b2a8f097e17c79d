"""The dependencies a draft declares: the script's third-party imports, as the distributions that install them.

Guarantees: reads, never runs or installs anything. The campaign folder is
read as a job would receive it (:func:`mlr_action.job.shipped.from_work_tree`)
and the script's imports, and those of the local modules it imports, with
the preflight's own reader (:func:`mlr_action.job.preflight.third_party`), so a
drafted program.md passes the preflight's dependency check: the standard
library, the folder's own modules and optional imports (inside ``try`` /
``except ImportError``) are left out, and each import name becomes the
distribution that installs it through the preflight's alias table
(``sklearn`` -> ``scikit-learn``). When the folder declares its dependencies
already (a PEP 723 header, ``requirements.txt``, ``pyproject.toml``), that
declaration applies (:mod:`mlr_action.job.runner`) and nothing is drafted.

No ``image:`` is drafted, deep-learning scripts included: the packages are
declared instead. An image does not replace them: local jobs ignore
``image`` and install the declared packages, and in an image without uv the
job pip-installs the same list into the image's Python, where an unpinned
package the image lacks may pull another version of its framework. The
default uv image installs torch from PyPI, whose Linux wheels carry CUDA, so
the declared packages run on a GPU flavor as they are; :func:`image_note`
says how to use a prebuilt image instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mlr_action.core.markup import code

MAX_PACKAGES = 50  # what the Campaign block's `dependencies` holds
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
EXAMPLE_IMAGE = "pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime"


@dataclass(frozen=True)
class Drafted:
    """One drafted package and where the script imports it."""

    package: str  # as `dependencies:` lists it
    module: str  # the import name
    path: str  # the file that imports it first
    line: int


@dataclass(frozen=True)
class DraftedDependencies:
    packages: tuple[Drafted, ...] = ()
    applies: str | None = None  # the folder's own declaration, which applies (nothing drafted)
    problem: str | None = None  # why the folder could not be read (nothing drafted)

    @property
    def names(self) -> list[str]:
        return [d.package for d in self.packages]


def draft_dependencies(root: Path, script: str) -> DraftedDependencies:
    """What ``dependencies:`` should list for ``script`` in the campaign folder ``root`` (see the module doc)."""
    from mlr_action.job.preflight import distribution, third_party
    from mlr_action.job.runner import NOTHING, recipe
    from mlr_action.job.shipped import ShipError, from_work_tree

    try:
        folder = from_work_tree(root)
    except ShipError as exc:
        return DraftedDependencies(problem=str(exc))
    if folder.get(script) is None:
        return DraftedDependencies()
    declared = recipe(folder, script, _NoKeys()).source
    if declared != NOTHING:
        return DraftedDependencies(applies=declared)
    found: dict[str, Drafted] = {}
    for module, (path, line) in third_party(folder, script).items():
        package = distribution(module)
        key = re.sub(r"[-_.]+", "-", package).lower()
        if _NAME.fullmatch(package) and key not in found:
            found[key] = Drafted(package, module, path, line)
    return DraftedDependencies(tuple(found[key] for key in sorted(found)))


class _NoKeys:
    """A Campaign block that adds nothing: which declaration the folder itself makes."""

    dependencies: tuple[str, ...] = ()
    python = None
    image = None


def notes(deps: DraftedDependencies, frameworks: dict[str, int]) -> list[str]:
    """What the user should check about the drafted dependencies."""
    if deps.problem:
        return [f"the campaign folder could not be read as a job receives it ({deps.problem}), so no dependency was "
                "drafted: declare them (requirements.txt, or `dependencies:`) before merging"]
    out = []
    if len(deps.packages) > MAX_PACKAGES:
        out.append(f"the code imports {len(deps.packages)} packages; `dependencies:` holds {MAX_PACKAGES}: list them "
                   "in requirements.txt instead")
    if deps.packages:
        out.append("`dependencies:` lists the packages the code imports, unpinned: pin the versions you train with "
                   "(like `torch==2.6.0`) so every job installs the same, or list them in requirements.txt")
    if deps.packages and frameworks:
        out.append(image_note(frameworks))
    return out


def image_note(frameworks: dict[str, int]) -> str:
    names = ", ".join(code(name) for name in frameworks)
    return (f"each job installs {names} from PyPI (the default uv image; its Linux wheels bring CUDA), which takes "
            f"minutes of each job's time. A prebuilt image saves them (`image: {EXAMPLE_IMAGE}`), but keep "
            "`dependencies:` and pin it to the versions the image has: local jobs ignore `image`, and in an image "
            "without uv each job pip-installs the list into the image's Python, where an unpinned package can "
            "replace the image's framework")
