"""``mlr guard``: a Claude Code PreToolUse hook that holds a Bash command to the budget envelope.

It reads the hook's JSON on stdin (``tool_input.command``, ``cwd``) and acts on
the commands that spend or write, answering like the seed's
``envelope_guard.py``:

- ``hf_jobs.py run`` (the seed's script), ``hf jobs run`` and ``hf jobs uv run``
  (the official HF CLI): the job must use an allowed flavor, a timeout within
  ``max_timeout``, and fit ``max_jobs``, ``max_walltime`` and ``max_cost_usd``.
  Absent flags mean what the tools default to: cpu-basic and 30m, or, for
  ``hf jobs uv run``, the script's ``[tool.hf-jobs]`` table. ``hf jobs scheduled
  run`` and ``hf jobs rerun`` spend an amount no flag states, so they are denied.
- ``hf_repo.py files upload|delete``: the repo must match ``output_repos`` and a
  delete needs ``allow_deletes: true``.

Guarantees:

- No ``program.md`` (in ``cwd``, then ``$CLAUDE_PROJECT_DIR``), or one with no
  envelope heading: defer (no output), so interactive use is untouched.
  Commands that neither spend nor write always defer.
- An envelope that does not validate (unknown keys, bad durations, unknown
  flavors, ...), an unreadable ledger line, a timeout that is not a duration
  or a spend the guard cannot size: deny, naming the problem. Nothing is
  ever read as 0 or "no limit".
- Chained commands (``&&``, ``;``, ``|``, newlines, ``bash -c``) are checked
  sub-command by sub-command, each job counted on top of the ones before it.
  Any breach denies the whole command. It is allowed only when every
  sub-command was checked (or is a ``cd``); otherwise the guard defers, so
  the normal permission rules judge the rest.
- The budget is the bot's own: :func:`program.parse_envelope`,
  :func:`ledger.read_ledger`, :func:`state.fold`, :func:`budget.usage` and
  :func:`budget.budget_problems` with no reserve. So this accounting differs
  from the seed's on purpose: jobs are **distinct** job ids (several rows of
  one job count once), finished jobs are charged their actual ``duration_s``,
  jobs in flight their full timeout; a job with ``--attempts N`` is charged N
  timeouts.

It is a guard rail for an agent that follows the skill, not a sandbox: a spend
made through Python code or a script file is out of its sight.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from mlr_action.budget import Usage
    from mlr_action.program import Envelope

DEFAULT_FLAVOR = "cpu-basic"
DEFAULT_TIMEOUT = "30m"

# --- Messages ---------------------------------------------------------------

STOP = "Stop the loop and report to the user."
BREACH = "Budget envelope exceeded — {problems}. " + STOP
UNSIZED = "Cannot check {label} against the budget envelope — {problem}. " + STOP
WITHIN = "Within budget envelope (job {n}/{max_jobs}, flavor {flavor}, timeout {timeout}{attempts})."
BAD_ENVELOPE = "Autonomous run blocked: {path}'s Budget envelope is not valid: {problems}. Fix program.md's Budget envelope."
UNREADABLE = "Autonomous run blocked: cannot read {path} ({error}). Fix it; nothing was spent."
BAD_LEDGER = "Budget envelope cannot be checked — {error}. " + STOP
NO_DELETES = "Remote deletes are disabled by the budget envelope (allow_deletes: false). Stop and report to the user."
OUT_OF_SCOPE = "repo '{repo}' is out of scope (output_repos {patterns}). Stop and report to the user."
IN_SCOPE = "{op} to '{repo}' is within envelope scope."
EXPLICIT = "pass --flavor and --timeout explicitly"
SCHEDULED = "a scheduled job runs again and again, which the envelope cannot bound (submit one job with hf jobs run)"
RERUN = "a rerun takes its flavor and timeout from an earlier job (submit it with hf jobs run --flavor ... --timeout ...)"
CRASHED = "mlr guard could not check this command ({error}); nothing was spent. " + STOP

# --- What a sub-command does ------------------------------------------------


@dataclass(frozen=True)
class JobRequest:
    """One job a sub-command would submit, or why it cannot be sized (``problem``)."""

    label: str
    flavor: str = DEFAULT_FLAVOR
    timeout_s: int = 0
    attempts: int = 1
    problem: str | None = None


@dataclass(frozen=True)
class RepoWrite:
    op: str  # upload | delete
    repo_id: str


@dataclass(frozen=True)
class ChangeDir:
    path: Path


@dataclass(frozen=True)
class Other:
    """A sub-command the guard has no opinion on."""


Step = JobRequest | RepoWrite | ChangeDir | Other

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
_HF_RUN.update({o: False for o in ("--detach", "--dry-run", "--json", "--quiet", "--ssh", "-d", "-q")})
_SHELLS = {"sh", "bash", "zsh", "dash", "ksh"}
_SEPARATOR = re.compile(r"^[;&|()\n]+$")
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
    from mlr_action.durations import HINT, parse_duration

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


def _script_header(script: str, cwd: Path) -> dict[str, Any]:
    """The ``[tool.hf-jobs]`` table of a ``hf jobs uv run`` script; raises ValueError when unknowable."""
    if script.startswith(("http://", "https://")):
        raise ValueError(f"the script is a URL, whose [tool.hf-jobs] header may set flavor and timeout ({EXPLICIT})")
    path = cwd / Path(script).expanduser()
    if not path.is_file():
        if script.endswith(".py"):
            raise ValueError(f"cannot find {script} to read its [tool.hf-jobs] header ({EXPLICIT})")
        return {}  # a command such as `lighteval`, which carries no header
    try:
        text = path.read_text(encoding="utf-8")
        blocks = [m.group("content") for m in _PEP723.finditer(text) if m.group("type") == "script"]
        if not blocks or "hf-jobs" not in blocks[0]:
            return {}
        import tomllib

        content = "".join(line[2:] if line.startswith("# ") else line[1:] for line in blocks[0].splitlines(True))
        table = tomllib.loads(content).get("tool", {}).get("hf-jobs", {})
    except (OSError, UnicodeDecodeError, ImportError, ValueError) as exc:
        raise ValueError(f"cannot read the [tool.hf-jobs] header of {script}: {exc} ({EXPLICIT})") from None
    return table if isinstance(table, dict) else {}


def _hf_jobs(rest: list[str], cwd: Path) -> Step:
    """``hf jobs ...`` after the ``jobs`` token."""
    if rest[:1] == ["rerun"]:
        return JobRequest("hf jobs rerun", problem=RERUN)
    scheduled = rest[:1] == ["scheduled"]
    rest = rest[1:] if scheduled else rest
    uv = rest[:2] == ["uv", "run"]
    if not (uv or rest[:1] == ["run"]):
        return Other()
    label = "hf jobs " + ("scheduled " if scheduled else "") + ("uv run" if uv else "run")
    values, positionals = _scan(rest[2 if uv else 1 :], _HF_RUN, abbrev=False)
    if values.get("--dry-run") is True:
        return Other()
    if scheduled:
        return JobRequest(label, problem=SCHEDULED)
    flavor, timeout = values.get("--flavor"), values.get("--timeout")
    if uv and positionals and (flavor is None or timeout is None):
        try:
            header = _script_header(positionals[0], cwd)
        except ValueError as exc:
            return JobRequest(label, problem=str(exc))
        flavor = flavor if flavor is not None else header.get("flavor")
        timeout = timeout if timeout is not None else header.get("timeout")
    return _job(
        label,
        DEFAULT_FLAVOR if flavor is None else flavor,
        DEFAULT_TIMEOUT if timeout is None else timeout,
        values.get("--attempts", 1),
    )


def _seed_script(name: str, rest: list[str]) -> Step:
    """The seed's ``hf_jobs.py run`` and ``hf_repo.py files upload|delete``."""
    if name == "hf_jobs.py":
        if rest[:1] != ["run"]:
            return Other()
        values, _ = _scan(rest[1:], _SEED_JOBS, abbrev=True)
        flavor, timeout = values.get("--hardware-flavor", DEFAULT_FLAVOR), values.get("--timeout", DEFAULT_TIMEOUT)
        return _job("hf_jobs.py run", flavor, timeout)
    if rest[:1] != ["files"]:
        return Other()
    values, positionals = _scan(rest[1:], _SEED_REPO, abbrev=True)
    op = positionals[0] if positionals else None
    if op not in ("upload", "delete"):
        return Other()  # list and read only read
    return RepoWrite(op, str(values.get("--repo-id", "")))


def _classify(tokens: list[str], cwd: Path) -> list[Step]:
    words = [t for t in tokens if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", t)] or [""]
    head = Path(words[0]).name
    if head == "cd":
        return [ChangeDir(cwd / Path(words[1]).expanduser() if len(words) > 1 else cwd)]
    if head in _SHELLS:
        for i, word in enumerate(words[1:-1], start=1):
            if re.match(r"^-[a-z]*c[a-z]*$", word):
                return _steps(words[i + 1], cwd)
    if head == "eval":
        return _steps(" ".join(words[1:]), cwd)
    for i, token in enumerate(tokens):
        name = Path(token.lstrip("`(")).name
        if name in ("hf", "huggingface-cli") or token.endswith(".cli.hf"):
            if tokens[i + 1 : i + 2] == ["jobs"]:
                return [_hf_jobs(tokens[i + 2 :], cwd)]
        if name in ("hf_jobs.py", "hf_repo.py"):
            return [_seed_script(name, tokens[i + 1 :])]
    return [Other()]


def _split(command: str) -> list[list[str]]:
    """The sub-commands of a shell command line, as token lists."""
    command = re.sub(r"\\\r?\n", "", command)  # line continuations
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars="();<>|&\n")
        lexer.whitespace_split, lexer.whitespace, lexer.commenters = True, " \t\r", ""
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: read it the way the seed did
        return [part.split() for part in re.split(r"&&|\|\||[;&|\n()]", command)]
    parts: list[list[str]] = [[]]
    for token in tokens:
        if _SEPARATOR.match(token):
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _steps(command: str, cwd: Path) -> list[Step]:
    steps: list[Step] = []
    for tokens in _split(command):
        if not tokens:
            continue
        for step in _classify(tokens, cwd):
            if isinstance(step, ChangeDir):
                cwd = step.path
            steps.append(step)
    return steps


# --- Checks -------------------------------------------------------------------


class _Denied(Exception):
    pass


def _load_envelope(cwd: Path, environ: Mapping[str, str]) -> tuple[Envelope, Path] | None:
    """The envelope and the folder of its program.md; None when there is no envelope."""
    from mlr_action.program import ProgramError, parse_envelope

    dirs = [cwd] + ([Path(environ["CLAUDE_PROJECT_DIR"])] if environ.get("CLAUDE_PROJECT_DIR") else [])
    for folder in dirs:
        path = folder / "program.md"
        if not path.is_file():
            continue
        try:
            envelope = parse_envelope(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise _Denied(UNREADABLE.format(path=path, error=exc)) from None
        except ProgramError as exc:
            raise _Denied(BAD_ENVELOPE.format(path=path, problems="; ".join(exc.problems))) from None
        return (envelope, folder) if envelope is not None else None
    return None


def _used(root: Path) -> Usage:
    from mlr_action.budget import usage
    from mlr_action.ledger import LEDGER_PATH, LedgerError, read_ledger
    from mlr_action.state import fold

    try:
        return usage(fold(read_ledger(root / LEDGER_PATH)))
    except LedgerError as exc:
        raise _Denied(BAD_LEDGER.format(error=exc)) from None


def _check_job(envelope: Envelope, used: Usage, job: JobRequest) -> tuple[str | None, str, Usage]:
    """(denial, allowance, usage with this job added)."""
    from mlr_action.budget import budget_problems
    from mlr_action.durations import format_duration
    from mlr_action.flavors import price_per_hour

    if job.problem:
        return UNSIZED.format(label=job.label, problem=job.problem), "", used
    problems = []
    if job.flavor not in envelope.allowed_flavors:
        problems.append(f"flavor '{job.flavor}' not in allowed_flavors {list(envelope.allowed_flavors)}")
    if job.timeout_s > envelope.max_timeout:
        problems.append(
            f"timeout {format_duration(job.timeout_s)} exceeds max_timeout {format_duration(envelope.max_timeout)}"
        )
    spend_s = job.timeout_s * job.attempts
    problems += budget_problems(envelope, used, flavor=job.flavor, timeout_s=spend_s, reserve=0)
    if problems:
        return BREACH.format(problems="; ".join(problems)), "", used
    allowed = WITHIN.format(
        n=used.jobs + 1, max_jobs=envelope.max_jobs, flavor=job.flavor, timeout=format_duration(job.timeout_s),
        attempts=f" x {job.attempts} attempts" if job.attempts > 1 else "",
    )
    cost = price_per_hour(job.flavor) * spend_s / 3600
    return None, allowed, replace(used, jobs=used.jobs + 1, walltime_s=used.walltime_s + spend_s,
                                  cost_usd=used.cost_usd + cost)


def _check_repo(envelope: Envelope, write: RepoWrite) -> tuple[str | None, str]:
    if write.op == "delete" and not envelope.allow_deletes:
        return NO_DELETES, ""
    # Unlike the seed, an envelope with no output_repos authorizes no writes (as in the bot).
    if not any(fnmatchcase(write.repo_id, glob) for glob in envelope.output_repos):
        return OUT_OF_SCOPE.format(repo=write.repo_id, patterns=list(envelope.output_repos)), ""
    return None, IN_SCOPE.format(op=write.op, repo=write.repo_id)


def _answer(decision: str, reason: str) -> dict:
    return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": decision,
                                   "permissionDecisionReason": reason}}


def decide(hook_input: dict, *, environ: Mapping[str, str] | None = None) -> dict | None:
    """The hook's answer to one PreToolUse event; None means defer (no opinion)."""
    environ = os.environ if environ is None else environ
    tool_input = hook_input.get("tool_input")
    command = tool_input.get("command") if isinstance(tool_input, dict) else None
    if not isinstance(command, str):
        return None
    cwd = Path(str(hook_input.get("cwd") or "."))
    steps = _steps(command, cwd)
    guarded = [s for s in steps if isinstance(s, (JobRequest, RepoWrite))]
    if not guarded:
        return None
    denials, allowances = [], []
    used: Usage | None = None  # read only when a job needs it: writes spend nothing
    try:
        found = _load_envelope(cwd, environ)
        if found is None:
            return None
        envelope, root = found
        for step in guarded:
            if isinstance(step, JobRequest):
                denial, allowance, used = _check_job(envelope, used if used is not None else _used(root), step)
            else:
                denial, allowance = _check_repo(envelope, step)
            if denial:
                denials.append(denial)
            else:
                allowances.append(allowance)
    except _Denied as exc:
        return _answer("deny", str(exc))
    if denials:
        return _answer("deny", " ".join(denials))
    if any(isinstance(s, Other) for s in steps):
        return None
    return _answer("allow", " ".join(allowances))


def main(stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    """Run as the hook: JSON in, a decision (or nothing) out, always exit 0."""
    try:
        hook_input = json.loads(stdin.read())
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return 0
    if not isinstance(hook_input, dict):
        return 0
    try:
        answer = decide(hook_input)
    except Exception as exc:  # a budget guard fails closed
        answer = _answer("deny", CRASHED.format(error=f"{type(exc).__name__}: {exc}"))
    if answer is not None:
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()
    return 0
