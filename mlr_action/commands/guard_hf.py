"""The HF tools' command lines, read as the tools read them, for ``mlr guard``.

:func:`hf_jobs` reads ``hf jobs ...`` (after ``jobs``) and :func:`seed_script`
the seed's ``hf_jobs.py`` and ``hf_repo.py``; each returns a
:class:`JobRequest` (a job, with its flavor, timeout and attempts, or why it
cannot be sized), a :class:`RepoWrite` (an upload or delete on the Hub) or
:class:`Other`. Guarantees:

- Options are read as the tools read them: click for ``hf`` (the last value
  wins, options after the image count, nothing after ``--``), argparse with
  unique prefixes for the seed's scripts. Absent flags mean the tools'
  defaults (:data:`DEFAULT_FLAVOR`, :data:`DEFAULT_TIMEOUT`).
- A job whose flavor or timeout a script decides is sized but marked
  ``implicit``: ``hf jobs uv run`` without both ``--flavor`` and
  ``--timeout`` (the script's ``[tool.hf-jobs]`` header decides, read
  relative to the folder the command runs in; a header that cannot be read is
  a problem), and ``hf_jobs.py run`` without both ``--hardware-flavor`` and
  ``--timeout``.
- Scheduled jobs, reruns, resumed schedules and options before the
  subcommand are a :class:`JobRequest` with a ``problem`` (unsized), as is a
  timeout that is not a duration or attempts that are not a whole number.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DEFAULT_FLAVOR = "cpu-basic"
DEFAULT_TIMEOUT = "30m"

EXPLICIT = "pass --flavor and --timeout explicitly"
SCHEDULED = "a scheduled job runs again and again, which the envelope cannot bound (submit one job with hf jobs run)"
RERUN = "a rerun takes its flavor and timeout from an earlier job (submit it with hf jobs run --flavor ... --timeout ...)"
OPTIONS_FIRST = "options before the subcommand, which mlr guard does not read (put them after it)"
RESUMED = "a scheduled job runs with the flavor and timeout it was created with, which the envelope cannot bound"


@dataclass(frozen=True)
class JobRequest:
    """One job a sub-command would submit, or why it cannot be sized (``problem``)."""

    label: str
    flavor: str = DEFAULT_FLAVOR
    timeout_s: int = 0
    attempts: int = 1
    problem: str | None = None
    implicit: bool = False  # flavor or timeout left to a script (its header or defaults): never "allow"


@dataclass(frozen=True)
class RepoWrite:
    op: str  # upload | delete
    repo_id: str


@dataclass(frozen=True)
class Other:
    """A sub-command the guard has no opinion on."""


HfStep = JobRequest | RepoWrite | Other

# Options of each parser, True when the option takes a value. The seed's scripts
# use argparse (which accepts unique prefixes); the HF CLI uses click (which does not).
# The HF CLI's are those of `hf jobs run` and `hf jobs uv run` in huggingface_hub 2.4 (cli/jobs.py).
_SEED_JOBS = {o: True for o in ("--script", "--script-url", "--dep", "--python", "--script-arg", "--image",
                                "--hardware-flavor", "--timeout", "--env", "--secret", "--namespace")}
_SEED_JOBS.update({"--script-inline": False, "--no-wait": False, "--help": False})
_SEED_REPO = {o: True for o in ("--repo-id", "--repo-type", "--revision", "--path", "--content-file",
                                "--patterns", "--commit-message")}
_SEED_REPO.update({"--create-pr": False, "--help": False})
_HF_RUN = {o: True for o in ("--attempts", "--env", "--env-file", "--expose", "--expose-public", "--flavor",
                             "--format", "--image", "--label", "--name", "--namespace", "--network-alias",
                             "--network-group", "--python", "--resource-group-id", "--secrets", "--secrets-file",
                             "--timeout", "--token", "--volume", "--with", "-e", "-l", "-p", "-s", "-v")}
_HF_RUN.update({o: False for o in ("--detach", "--dry-run", "--help", "--json", "--quiet", "--ssh", "-d", "-q")})
_PEP723 = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")


def _scan(args: list[str], options: Mapping[str, bool], *, abbrev: bool) -> tuple[dict[str, Any], list[str]]:
    """Option values (the last one wins, as in argparse and click) and positionals, up to ``--``."""
    values: dict[str, Any] = {}
    positionals: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if token == "--":
            break
        if not token.startswith("-") or token == "-":
            positionals.append(token)
            continue
        name, eq, attached = token.partition("=") if token.startswith("--") else (token[:2], "", token[2:])
        if name not in options and abbrev:
            matches = [o for o in options if o.startswith(name) and name.startswith("--")]
            name = matches[0] if len(matches) == 1 else name
        if name not in options:
            continue  # the tool rejects it, or passes it to the job: either way no option of ours
        if not options[name]:
            values[name] = True
        elif eq or attached:
            values[name] = attached
        elif i < len(args):
            values[name] = args[i]
            i += 1
    return values, positionals


def _job(label: str, flavor: Any, timeout: Any, attempts: Any = 1) -> JobRequest:
    from mlr_action.core.durations import HINT, parse_duration

    try:
        timeout_s = parse_duration(timeout)
    except ValueError:
        return JobRequest(label, problem=f"--timeout {timeout!r} is not a duration ({HINT})")
    try:
        count = int(attempts)
    except (TypeError, ValueError):
        count = 0
    if count < 1:
        return JobRequest(label, problem=f"--attempts {attempts!r} is not a whole number of at least 1")
    return JobRequest(label, str(flavor), timeout_s, count)


def _toml() -> Any:
    """The TOML reader: tomllib from Python 3.11, the tomli backport on 3.10 (as huggingface_hub does)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    return tomllib


def _script_header(script: str, cwd: Path) -> dict[str, Any]:
    """The ``[tool.hf-jobs]`` table of a ``hf jobs uv run`` script; raises ValueError when unknowable."""
    if script.startswith(("http://", "https://")):
        raise ValueError(f"the script is a URL, whose [tool.hf-jobs] header may set flavor and timeout ({EXPLICIT})")
    path = cwd / script  # the shell expanded any ~ already; a quoted one is a folder named ~
    if not path.is_file():
        if script.endswith(".py"):
            raise ValueError(f"cannot find {script} to read its [tool.hf-jobs] header ({EXPLICIT})")
        return {}  # a command such as `lighteval`, which carries no header
    try:
        text = path.read_text(encoding="utf-8")
        blocks = [m.group("content") for m in _PEP723.finditer(text) if m.group("type") == "script"]
        if not blocks or "hf-jobs" not in blocks[0]:
            return {}
        content = "".join(line[2:] if line.startswith("# ") else line[1:] for line in blocks[0].splitlines(True))
        table = _toml().loads(content).get("tool", {}).get("hf-jobs", {})
    except (OSError, UnicodeDecodeError, ImportError, ValueError) as exc:
        raise ValueError(f"cannot read the [tool.hf-jobs] header of {script}: {exc} ({EXPLICIT})") from None
    return table if isinstance(table, dict) else {}


def hf_jobs(rest: list[str], cwd: Path) -> HfStep:
    """``hf jobs ...`` after the ``jobs`` token."""
    if rest[:1] and rest[0].startswith("-"):
        return Other() if rest[0] in ("-h", "--help") else JobRequest("hf jobs", problem=OPTIONS_FIRST)
    if rest[:1] == ["rerun"]:
        return JobRequest("hf jobs rerun", problem=RERUN)
    scheduled = rest[:1] == ["scheduled"]
    rest = rest[1:] if scheduled else rest
    if rest[:1] and rest[0].startswith("-") and rest[0] not in ("-h", "--help"):
        return JobRequest("hf jobs scheduled", problem=OPTIONS_FIRST)
    if scheduled and rest[:1] in (["resume"], ["trigger"], ["reschedule"]):
        return JobRequest(f"hf jobs scheduled {rest[0]}", problem=RESUMED)
    uv = rest[:1] == ["uv"]
    if uv and rest[1:2] != ["run"]:
        return Other() if rest[1:2] in ([], ["-h"], ["--help"]) else JobRequest("hf jobs uv", problem=OPTIONS_FIRST)
    if not (uv or rest[:1] == ["run"]):
        return Other()
    label = "hf jobs " + ("scheduled " if scheduled else "") + ("uv run" if uv else "run")
    values, positionals = _scan(rest[2 if uv else 1 :], _HF_RUN, abbrev=False)
    if values.get("--dry-run") is True or values.get("--help") is True:
        return Other()
    if scheduled:
        return JobRequest(label, problem=SCHEDULED)
    flavor, timeout = values.get("--flavor"), values.get("--timeout")
    implicit = uv and (flavor is None or timeout is None)
    if implicit and positionals:
        try:
            header = _script_header(positionals[0], cwd)
        except ValueError as exc:
            return JobRequest(label, problem=str(exc))
        flavor = flavor if flavor is not None else header.get("flavor")
        timeout = timeout if timeout is not None else header.get("timeout")
    job = _job(
        label,
        DEFAULT_FLAVOR if flavor is None else flavor,
        DEFAULT_TIMEOUT if timeout is None else timeout,
        values.get("--attempts", 1),
    )
    return replace(job, implicit=implicit)


def seed_script(name: str, rest: list[str]) -> HfStep:
    """The seed's ``hf_jobs.py run`` and ``hf_repo.py files upload|delete``."""
    if rest[:1] and rest[0].startswith("-") and rest[0] not in ("-h", "--help") and ({"run", "files"} & set(rest)):
        return JobRequest(f"{name} ...", problem=OPTIONS_FIRST)
    if name == "hf_jobs.py":
        if rest[:1] != ["run"]:
            return Other()
        values, _ = _scan(rest[1:], _SEED_JOBS, abbrev=True)
        flavor, timeout = values.get("--hardware-flavor"), values.get("--timeout")
        job = _job("hf_jobs.py run", DEFAULT_FLAVOR if flavor is None else flavor,
                   DEFAULT_TIMEOUT if timeout is None else timeout)
        return replace(job, implicit=flavor is None or timeout is None)
    if rest[:1] != ["files"]:
        return Other()
    values, positionals = _scan(rest[1:], _SEED_REPO, abbrev=True)
    op = positionals[0] if positionals else None
    if op not in ("upload", "delete"):
        return Other()  # list and read only read
    return RepoWrite(op, str(values.get("--repo-id", "")))
