"""``mlr guard``: a Claude Code PreToolUse hook that holds a Bash command to the budget envelope.

It reads the hook's JSON on stdin (``tool_input.command``, ``cwd``) and answers
``allow``, ``deny`` or nothing (defer: Claude Code's own permission rules
decide), like the seed's ``envelope_guard.py``. It allows only what it fully
reads. The attacker it is built against is the command itself: one an agent
composed, perhaps steered by a web page it read.

How a command is read (each step fails closed):

1. :func:`mlr_action.commands.guard_shell.read` splits it into simple commands joined by
   ``&&``, ``;``, newlines and ``|``, with every word's value as bash would
   pass it (quotes, backslashes, ``~``). Any other construct — ``$`` in any
   form, backquotes, redirections, here-docs, process substitution, globs,
   braces, subshells, functions, ``&``, ``||``, ``!``, comments, line
   continuations, keywords (``if``, ``for``, ``time``, ...), builtins other
   than ``cd`` and a few that change nothing (``eval``, ``exec``, ``source``,
   ``command``, ``export``, ``pushd``, ...) — makes the command unread: it is
   denied when a spend shows anywhere in its text and an envelope applies,
   and deferred otherwise. Never allowed.
2. ``cd`` is followed as bash does it (:func:`mlr_action.commands.guard_shell.change_dir`):
   bare ``cd`` is ``$HOME``, ``cd -`` the folder before this command's last
   cd, ``..`` is logical, a quoted ``~`` is a folder named ``~``. A cd whose
   landing is not certain (``CDPATH``, ``-P``, a missing folder, an unknown
   ``OLDPWD``, a cd inside a pipeline) makes the command unread.
3. :func:`mlr_action.commands.guard_commands.classify` says what each simple command
   does: a job (flavor, timeout, attempts), a Hub upload or delete, or
   something else. See that module for the commands it knows and the spends
   it refuses to size (a spend behind ``sudo``/``env``/``xargs``/``nohup``/a
   shell string, scheduled jobs, reruns, options before the subcommand).

How it answers:

- The envelope is that of **every** ``program.md`` in sight: the hook's
  ``cwd``, each folder the command cds into, and ``$CLAUDE_PROJECT_DIR``. A
  job must fit all of them, so a cd cannot lead to a looser envelope, nor
  out of one. None of them has an envelope heading: defer, so interactive
  use is untouched.
- An envelope that does not validate, an unreadable ledger line, a spend it
  cannot size, or any breach: deny, naming the problem. Nothing is ever read
  as 0 or "no limit".
- Allow only when every sub-command was read, every job and write fits, and
  the rest are ``cd``s; a job whose flavor or timeout is left to a script
  (``hf jobs uv run`` and the seed's ``hf_jobs.py run`` without both flags),
  or any other program in the command, leaves it to the permission rules
  (defer).
- The budget is the bot's own: :func:`program.parse_envelope`,
  :func:`ledger.read_ledger`, :func:`state.fold`, :func:`budget.usage` and
  :func:`budget.budget_problems` with no reserve. So this accounting differs
  from the seed's on purpose: jobs are **distinct** job ids (several rows of
  one job count once), finished jobs are charged their actual ``duration_s``,
  jobs in flight their full timeout; a job with ``--attempts N`` is charged N
  timeouts. The jobs of one command add up.

It is a guard rail for an agent that follows the skill, not a sandbox: it
trusts that a program named ``hf`` is the HF CLI, and a spend made through
Python code, a script file, the user's shell aliases or functions, or a
program.md the agent edited is out of its sight.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mlr_action.commands.guard_commands import SPEND_HINT, ChangeDir, Step, classify
from mlr_action.commands.guard_hf import JobRequest, Other, RepoWrite

if TYPE_CHECKING:
    from mlr_action.core.budget import Usage
    from mlr_action.core.program import Envelope

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
CRASHED = "mlr guard could not check this command ({error}); nothing was spent. " + STOP
UNREAD = ("mlr guard cannot check this command: it uses {problem}, which the guard does not read. Write the "
          "spend as a plain command (words, quotes, cd, &&, ;, |, no $, backquotes, redirections or globs); "
          "nothing was spent.")
IN_FOLDER = "{path}: {message}"

# --- Reading the command ----------------------------------------------------


def _plan(command: str, cwd: str, environ: Mapping[str, str]) -> list[tuple[Step, str]]:
    """Each sub-command's step with the folder it runs in; raises Unmodelled."""
    from mlr_action.commands.guard_shell import change_dir, read

    home, oldpwd = environ.get("HOME"), None
    steps: list[tuple[Step, str]] = []
    for pipeline in read(command, home=home):
        for simple in pipeline:
            if simple.words[0] == "cd":
                cwd, oldpwd = change_dir(simple.words[1:], cwd=cwd, oldpwd=oldpwd, home=home,
                                         cdpath=environ.get("CDPATH")), cwd
                steps.append((ChangeDir(Path(cwd)), cwd))
            else:
                steps.append((classify(simple.words, simple.assignments, Path(cwd)), cwd))
    return steps


# --- Checks -------------------------------------------------------------------


class _Denied(Exception):
    pass


def _envelopes(folders: Sequence[str]) -> list[tuple[Envelope, Path]]:
    """Each distinct envelope in ``folders``' program.md files, with its folder; folders without one add none."""
    from mlr_action.core.program import ProgramError, parse_envelope

    found: dict[str, tuple[Envelope, Path]] = {}
    for folder in folders:
        path = Path(folder) / "program.md"
        if not path.is_file() or os.path.realpath(path) in found:
            continue
        try:
            envelope = parse_envelope(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise _Denied(UNREADABLE.format(path=path, error=exc)) from None
        except ProgramError as exc:
            raise _Denied(BAD_ENVELOPE.format(path=path, problems="; ".join(exc.problems))) from None
        if envelope is not None:
            found[os.path.realpath(path)] = (envelope, Path(folder))
    return list(found.values())


def _used(root: Path) -> Usage:
    from mlr_action.core.budget import usage
    from mlr_action.core.ledger import LEDGER_PATH, LedgerError, read_ledger
    from mlr_action.core.state import fold

    try:
        return usage(fold(read_ledger(root / LEDGER_PATH)))
    except LedgerError as exc:
        raise _Denied(BAD_LEDGER.format(error=exc)) from None


def _check_job(envelope: Envelope, used: Usage, job: JobRequest) -> tuple[str | None, str, Usage]:
    """(denial, allowance, usage with this job added)."""
    from mlr_action.core.budget import budget_problems
    from mlr_action.core.durations import format_duration
    from mlr_action.core.flavors import price_per_hour

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


def _check(envelopes: list[tuple[Envelope, Path]], steps: list[JobRequest | RepoWrite]) -> tuple[list[str], list[str]]:
    """(denials, allowances) of ``steps`` against every envelope, each job counted on top of the ones before."""
    denials, allowances = [], []
    for envelope, root in envelopes:
        used: Usage | None = None  # read only when a job needs it: writes spend nothing
        for step in steps:
            if isinstance(step, JobRequest):
                denial, allowance, used = _check_job(envelope, used if used is not None else _used(root), step)
            else:
                denial, allowance = _check_repo(envelope, step)
            if len(envelopes) > 1:  # say which program.md each answer is about
                denial = denial and IN_FOLDER.format(path=root / "program.md", message=denial)
                allowance = IN_FOLDER.format(path=root / "program.md", message=allowance)
            if denial:
                denials.append(denial)
            else:
                allowances.append(allowance)
    return denials, allowances


def _unread(command: str, problem: str, folders: Sequence[str]) -> dict | None:
    """A command the guard cannot read: deny when a spend shows in it and an envelope applies, else defer."""
    if not SPEND_HINT.search(re.sub(r"[\\'\"]", "", command)):
        return None
    try:
        if not _envelopes(folders):
            return None
    except _Denied as exc:
        return _answer("deny", str(exc))
    return _answer("deny", UNREAD.format(problem=problem))


def decide(hook_input: dict, *, environ: Mapping[str, str] | None = None) -> dict | None:
    """The hook's answer to one PreToolUse event; None means defer (no opinion)."""
    from mlr_action.commands.guard_lexer import Unmodelled

    environ = os.environ if environ is None else environ
    tool_input = hook_input.get("tool_input")
    command = tool_input.get("command") if isinstance(tool_input, dict) else None
    if not isinstance(command, str):
        return None
    cwd = os.path.abspath(str(hook_input.get("cwd") or "."))
    project = [environ["CLAUDE_PROJECT_DIR"]] if environ.get("CLAUDE_PROJECT_DIR") else []
    try:
        steps = _plan(command, cwd, environ)
    except Unmodelled as exc:
        return _unread(command, str(exc), [cwd, *project])
    guarded = [s for s, _ in steps if isinstance(s, (JobRequest, RepoWrite))]
    if not guarded:
        return None
    # Every folder the command runs in: a cd can lead to a looser program.md, or to none.
    try:
        envelopes = _envelopes([cwd, *(folder for _, folder in steps), *project])
        if not envelopes:
            return None
        denials, allowances = _check(envelopes, guarded)
    except _Denied as exc:
        return _answer("deny", str(exc))
    if denials:
        return _answer("deny", " ".join(denials))
    if any(isinstance(s, Other) or (isinstance(s, JobRequest) and s.implicit) for s, _ in steps):
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
