"""What one simple command does to the budget, for ``mlr guard``.

:func:`classify` reads the words of one command (as :mod:`mlr_action.commands.guard_shell`
produced them) and returns a :class:`JobRequest` (a job, with its flavor,
timeout and attempts, or why it cannot be sized), a :class:`RepoWrite` (an
upload or delete on the Hub) or :class:`Other` (anything else).

- Spends it knows: ``hf jobs run``, ``hf jobs uv run`` (``hf`` or
  ``huggingface-cli``, also through ``uvx``, ``uv run`` or ``python -m
  huggingface_hub.cli.hf``), the seed's ``hf_jobs.py run`` and ``hf_repo.py
  files upload|delete`` (directly, through ``uv run`` or ``python``). Their
  command lines are read as the tools read them, by
  :mod:`mlr_action.commands.guard_hf`. Absent flags mean the tools'
  defaults (cpu-basic, 30m).
- A job whose flavor or timeout is not on the command line where a script
  decides it is sized (a breach still denies) but marked ``implicit``, which
  is never allowed: ``hf jobs uv run`` without both ``--flavor`` and
  ``--timeout`` (the script's ``[tool.hf-jobs]`` header decides, read relative
  to the folder the command runs in), and the seed's ``hf_jobs.py run``
  without both ``--hardware-flavor`` and ``--timeout`` (its defaults live in a
  script the guard does not read).
- Unsized (so denied): ``hf jobs scheduled run|uv run|resume|trigger|reschedule``
  and ``hf jobs rerun`` (no flag bounds what they spend), options before the
  subcommand, a spend behind any other program (``sudo``, ``nohup``, ``env``,
  ``xargs``, ``timeout``, ``watch``, ``uv run --with x``, ...) or in a string
  given to a shell (``bash -c '...'``), and a spend prefixed with a variable
  other than the few in ``_ENV_OK`` (``PYTHONPATH``, ``PATH``, ``HF_ENDPOINT``
  ... change what runs or where the token goes).

It trusts names: a program called ``hf`` is taken to be the HF CLI and one
called ``hf_jobs.py`` the seed's script.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlr_action.commands.guard_hf import OPTIONS_FIRST, JobRequest, Other, RepoWrite, hf_jobs, seed_script

WRAPPED = "it runs through `{head}`, which mlr guard does not model (run it directly, as a plain command)"
ENVIRONMENT = "it sets {names}, which can change what the program runs or where it sends the token (allowed before a spend: {allowed})"


@dataclass(frozen=True)
class ChangeDir:
    path: Path


Step = JobRequest | RepoWrite | ChangeDir | Other

# Programs that run a string as a command (sh -c, su -c, watch, env -S, ...): a spend named in one of their
# words is denied as unsized. Elsewhere a quoted string is data (echo 'hf jobs run', git commit -m ...).
_RUNNERS = {"sh", "bash", "zsh", "dash", "ksh", "fish", "env", "sudo", "doas", "su", "runuser", "watch", "script",
            "flock", "xargs", "parallel", "find", "ssh", "nohup", "timeout", "nice", "setsid", "stdbuf", "strace"}
# Variables that may prefix a spend: none of them changes what runs, where the token goes, or what is spent.
# (PYTHONPATH, PATH, LD_PRELOAD, UV_*, HF_ENDPOINT or HF_EDITOR could.)
_ENV_OK = ("HF_TOKEN", "HF_HUB_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_TELEMETRY",
           "HF_HUB_DISABLE_UPDATE_CHECK", "HF_HUB_DISABLE_EXPERIMENTAL_WARNING", "HF_DEBUG")
# A spend somewhere in text the guard cannot read word by word: such a command is denied, not deferred.
SPEND_HINT = re.compile(r"\bjobs\s+(?:uv\s+run|run|rerun|scheduled)\b|\bhf_jobs\.py\s+run\b"
                         r"|\bhf_repo\.py\b.*?\b(?:upload|delete)\b", re.S)


def _program(words: Sequence[str]) -> tuple[str, list[str]] | None:
    """(name, arguments) of the program ``words`` run, through ``uvx``, ``uv run`` and ``python``.

    None when a launcher has options the guard does not read (``uv run --with x ...``).
    """
    name = words[0].rsplit("/", 1)[-1]
    rest = list(words[1:])
    if name == "uvx" or (name == "uv" and rest[:1] == ["run"]):
        rest = rest[1:] if name == "uv" else rest
        return _program(rest) if rest and not rest[0].startswith("-") else None
    if re.fullmatch(r"python(3(\.\d+)?)?", name):
        if rest[:1] == ["-m"] and len(rest) > 1 and (rest[1].endswith(".cli.hf") or rest[1] == "hf"):
            return "hf", rest[2:]
        return (rest[0].rsplit("/", 1)[-1], rest[1:]) if rest and not rest[0].startswith("-") else None
    return name, rest


def _spend(words: Sequence[str], cwd: Path) -> Step | None:
    """What ``words`` do when their program is one the guard knows; None when it is not."""
    program = _program(words)
    if program is None:
        return None
    name, args = program
    if name in ("hf", "huggingface-cli"):
        if args[:1] == ["jobs"]:
            return hf_jobs(args[1:], cwd)
        if "jobs" in args and args[0].startswith("-"):
            return JobRequest(f"{name} ... jobs", problem=OPTIONS_FIRST)
        return Other()
    if name in ("hf_jobs.py", "hf_repo.py"):
        return seed_script(name, args)
    return None


def _classify(words: tuple[str, ...], cwd: Path) -> Step:
    step = _spend(words, cwd)
    if step is not None:
        return step
    head = words[0]
    # A spend behind a wrapper (sudo, nohup, env, xargs, timeout, ...) or in a string a shell runs:
    # the wrapper may repeat it, add arguments or change its words, so it cannot be sized.
    for i in range(1, len(words)):
        inner = _spend(words[i:], cwd)
        if isinstance(inner, (JobRequest, RepoWrite)):
            return JobRequest(_label(inner), problem=WRAPPED.format(head=head))
    if any(w.rsplit("/", 1)[-1] in _RUNNERS for w in words):
        for word in words[1:]:
            found = SPEND_HINT.search(word)
            if found:
                return JobRequest(found.group(0), problem=WRAPPED.format(head=head))
    return Other()


def _label(step: JobRequest | RepoWrite) -> str:
    return step.label if isinstance(step, JobRequest) else f"hf_repo.py files {step.op}"


def classify(words: tuple[str, ...], assignments: tuple[str, ...], cwd: Path) -> Step:
    """What one simple command (not ``cd``) does, run in ``cwd`` with ``assignments`` before it."""
    step = _classify(words, cwd)
    names = [a.split("=", 1)[0].rstrip("+") for a in assignments]
    unknown = [n for n in names if n not in _ENV_OK]
    if not unknown or not isinstance(step, (JobRequest, RepoWrite)):
        return step
    return JobRequest(_label(step), problem=ENVIRONMENT.format(names=", ".join(unknown), allowed=", ".join(_ENV_OK)))
