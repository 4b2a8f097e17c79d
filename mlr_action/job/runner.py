"""How a job's Python runs and gets its dependencies: one rule for HF and for the local backend (pure).

The job's dependencies come from the first of these the campaign folder has
(:func:`recipe`):

1. a PEP 723 header in the script (``# /// script`` ... ``# ///``): ``uv run``
   reads it;
2. ``requirements.txt`` at the top of the campaign folder: ``uv run
   --with-requirements requirements.txt``;
3. ``pyproject.toml`` there with a ``[project]`` table: its
   ``dependencies``, each as ``uv run --with`` (the project itself is never
   built or installed, so a flat training repository needs no packaging);
4. nothing: the standard library (and the image's own packages).

The Campaign keys add to it: ``dependencies`` (extra packages, ``--with``
each), ``python`` (``--python``) and ``image`` (the container image; when it
has no ``uv``, the job installs the same list with pip into the image's
``python`` and runs it with that). ``uv run`` always gets ``--no-project``,
so no ``pyproject.toml`` around the folder changes what is installed.

Guarantees: the same folder and Campaign block give the same :class:`Recipe`
and the same commands; every word of a command is one argv element (the HF
launcher quotes each for bash, and the job's args arrive as ``"$@"``, never
through a shell). The HF launcher's last line is ``mlr-launcher: exit=<status>``
(:data:`SENTINEL`), printed after the script exits: a log read that reaches
it has the whole log.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from mlr_action.job.shipped import ShippedFolder
from mlr_action.job.wakeup import DISPATCH_PY

HEADER, REQUIREMENTS, PYPROJECT, NOTHING = "script header", "requirements.txt", "pyproject.toml", "none"
UV_IMAGE = "ghcr.io/astral-sh/uv:python3.12-bookworm"  # huggingface_hub's DEFAULT_UV_IMAGE
MOUNT = "/mlr/code"  # where an HF job finds the shipped folder, read-only
SENTINEL = "mlr-launcher: exit="  # the launcher's last line, with the script's exit status: the log is whole
# PEP 723's reference regular expression for an inline metadata block.
_BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")


@dataclass(frozen=True)
class Recipe:
    """Where a job's dependencies come from, and what the Campaign block adds."""

    source: str  # HEADER, REQUIREMENTS, PYPROJECT or NOTHING
    packages: tuple[str, ...] = ()  # what the source declares (for pip, and for mlr validate)
    extra: tuple[str, ...] = ()  # the Campaign block's `dependencies`
    python: str | None = None
    image: str | None = None
    ignored: tuple[str, ...] = ()  # other declarations in the folder that this source outranks
    problems: tuple[str, ...] = ()  # a declaration that cannot be read

    def uv_args(self) -> list[str]:
        """What follows ``uv run`` and comes before the script."""
        args = ["--no-project"]
        if self.source == REQUIREMENTS:
            args += ["--with-requirements", REQUIREMENTS]
        elif self.source == PYPROJECT:
            args += [word for package in self.packages for word in ("--with", package)]
        args += [word for package in self.extra for word in ("--with", package)]
        return args + (["--python", self.python] if self.python else [])

    def pip_args(self) -> list[str]:
        """What ``python -m pip install`` gets in an image without uv; empty when there is nothing to install."""
        first = ["-r", REQUIREMENTS] if self.source == REQUIREMENTS else list(self.packages)
        return first + list(self.extra)

    def describe(self) -> str:
        """One sentence for ``mlr validate`` and the pull request check."""
        said = {
            HEADER: f"the script's PEP 723 header ({_count(self.packages)})",
            REQUIREMENTS: "requirements.txt",
            PYPROJECT: f"pyproject.toml's [project] dependencies ({_count(self.packages)})",
            NOTHING: "none declared (the standard library only, and what the image has)",
        }[self.source]
        if self.extra:
            said += f", plus `dependencies:` {', '.join(self.extra)}"
        if self.python:
            said += f"; Python {self.python}"
        if self.ignored:
            said += f" ({', '.join(self.ignored)} ignored: the first of header, requirements.txt, pyproject.toml wins)"
        return said


def _count(packages: tuple[str, ...]) -> str:
    return f"{len(packages)} package{'s' * (len(packages) != 1)}" if packages else "no packages"


def header(source: str) -> tuple[dict[str, Any] | None, str | None]:
    """The script's PEP 723 ``script`` block as TOML data (None when absent), and why it cannot be read."""
    blocks = [m for m in _BLOCK.finditer(source) if m.group("type") == "script"]
    if not blocks:
        return None, None
    if len(blocks) > 1:
        return {}, "the script has two `# /// script` blocks; PEP 723 allows one"
    text = "".join(line[2:] if line.startswith("# ") else line[1:]
                   for line in blocks[0].group("content").splitlines(keepends=True))
    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as exc:
        return {}, f"the script's PEP 723 header is not valid TOML ({exc})"


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def recipe(folder: ShippedFolder, script: str, campaign: Any) -> Recipe:
    """The recipe for ``script`` (relative to the folder) in ``folder``, with the Campaign block's keys."""
    common = {"extra": tuple(campaign.dependencies or ()), "python": campaign.python, "image": campaign.image}
    present = [name for name in (REQUIREMENTS, PYPROJECT) if folder.get(name) is not None]
    data, problem = header(folder.text(script) or "")
    if data is not None:
        packages = _strings(data.get("dependencies", []))
        problems = [problem] if problem else []
        if packages is None:
            problems.append("the script's PEP 723 header has `dependencies` that is not a list of strings")
        return Recipe(HEADER, packages or (), ignored=tuple(present), problems=tuple(problems), **common)
    if REQUIREMENTS in present:
        lines = [ln.split("#", 1)[0].strip() for ln in (folder.text(REQUIREMENTS) or "").splitlines()]
        return Recipe(REQUIREMENTS, tuple(ln for ln in lines if ln), ignored=tuple(present[1:]), **common)
    if PYPROJECT in present:
        try:
            project = tomllib.loads(folder.text(PYPROJECT) or "").get("project")
        except tomllib.TOMLDecodeError as exc:
            return Recipe(NOTHING, problems=(f"pyproject.toml is not valid TOML ({exc})",), **common)
        if isinstance(project, dict):
            packages = _strings(project.get("dependencies", []))
            if packages is None:
                return Recipe(NOTHING, problems=("pyproject.toml's [project] dependencies is not a list of strings",),
                              **common)
            return Recipe(PYPROJECT, packages, **common)
    return Recipe(NOTHING, **common)


# -- commands --------------------------------------------------------------------------------------------


def code_repo(namespace: str, campaign: str) -> str:
    """The private Hub repo an HF job's folder is shipped through (shown to the reviewer before approval)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", f"mlr-code-{campaign}")[:96].rstrip("-.") or "mlr-code"
    return f"{namespace}/{name}"


def uv_command(plan: Recipe, script: str, args: list[str], *, uv: str = "uv") -> list[str]:
    return [uv, "run", *plan.uv_args(), script, *args]


def launcher(plan: Recipe, script: str, *, mount: str = MOUNT, wake: bool = False) -> str:
    """The bash program an HF job runs: copy the read-only folder to a writable one, go there, run the script.

    The job's args follow as ``"$@"``. With uv in the image: ``uv run``; else pip, then the image's python.
    The script runs as a child that gets the job's TERM and INT; when it has exited, the launcher prints
    :data:`SENTINEL` with its exit status as the log's last line (what proves a log read whole, see
    :mod:`mlr_action.backends._hf_logs`) and exits with that status. With ``wake`` (:mod:`mlr_action.job.wakeup`),
    the workflow is dispatched first, whatever the script's exit status.
    """
    q = shlex.quote
    steps = [
        "set -e",
        'd="$(mktemp -d)"',
        f'cp -R {q(mount)}/. "$d"',
        'chmod -R u+w "$d"',
        'cd "$d"',
    ]
    run = [f'if command -v uv >/dev/null 2>&1; then exec uv run {" ".join(map(q, plan.uv_args()))} {q(script)} "$@"; fi']
    pip = plan.pip_args()
    if pip:
        run.append("python -m pip install --quiet --disable-pip-version-check " + " ".join(map(q, pip)) + " || exit $?")
    run.append(f'exec python {q(script)} "$@"')
    dispatch = [
        "if command -v python3 >/dev/null 2>&1; then py=python3; elif command -v python >/dev/null 2>&1; then py=python; "
        'else py=""; fi',
        f'if [ -n "$py" ]; then "$py" -c {q(DISPATCH_PY)}; '
        f'elif command -v uv >/dev/null 2>&1; then uv run --no-project python -c {q(DISPATCH_PY)}; fi',
    ]
    return "\n".join(steps + [
        "mlr_job() {", *(f"  {line}" for line in run), "}",
        "set +e",
        # The trap is set before the script starts, so a TERM that comes before ``child`` is known is kept and
        # passed on as soon as it is (the launcher never dies of it while the script runs on). A trapped signal
        # cuts ``wait`` short with 128+n: the script's own status is then waited for again, however fast it exited.
        'child=""; pending=""; signalled=""',
        """trap 'signalled=1; if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; else pending=1; fi' TERM INT""",
        'mlr_job "$@" &',
        "child=$!",
        'if [ -n "$pending" ]; then kill -TERM "$child" 2>/dev/null; fi',
        'wait "$child"; status=$?',
        'while [ -n "$signalled" ] && [ "$status" -gt 128 ]; do',
        '  signalled=""; wait "$child"; again=$?; [ "$again" -eq 127 ] && break; status=$again',
        'done',
        *(dispatch if wake else []),
        f'echo "{SENTINEL}$status"',
        'exit "$status"',
    ])


def prints_sentinel(command: list[str]) -> bool:
    """Whether a job's command is a launcher that prints :data:`SENTINEL` last (jobs submitted before do not)."""
    words = [str(word) for word in command]
    launcher_words = words[:words.index("mlr-job")] if "mlr-job" in words else words  # never the job's args
    return any(SENTINEL in word for word in launcher_words)
