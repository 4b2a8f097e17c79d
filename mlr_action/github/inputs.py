"""The action's inputs and its refusals, read from the runner's environment (no side effect but
the runner's log commands): every value checked against action.yml's contract before anything runs.

Guarantees: :func:`read_inputs` returns either :class:`Inputs` or every :class:`Problem`, each naming the
input and the fix; exit codes are :data:`OK`, :data:`TRANSIENT` (the next run retries) and
:data:`BAD_INPUT` (a person must act); secrets are masked before anything is logged
(:func:`mask_secrets`). Imported by the entry point :mod:`mlr_action.github.action` and by the
commands it runs, never the other way round.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NamedTuple

from mlr_action.github import ghenv
from mlr_action.core.spent import NOTHING_SPENT

OK, TRANSIENT, BAD_INPUT = 0, 1, 2

ENUMS = {
    "command": ("step", "validate"),
    "backend": ("hf", "local"),
    "proposer": ("auto", "search", "claude"),
    "forge": ("github", "none"),
    "wake-up": ("auto", "true", "false"),
}
DEFAULTS = {"command": "step", "program": "program.md", "working-directory": ".", "backend": "hf",
            "proposer": "auto", "model": "", "forge": "github", "github-token": "", "dry-run": "false",
            "ledger-branch": "", "linger": "10m", "wake-up": "auto"}
SECRET_ENV = ("INPUT_GITHUB_TOKEN", "GITHUB_TOKEN", "HF_TOKEN", "ANTHROPIC_API_KEY", "MLR_WAKE_TOKEN")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")


class Problem(NamedTuple):
    """Something the user must change: what is wrong, and the fix."""

    what: str
    fix: str

    def text(self) -> str:
        return f"{self.what}. Fix: {self.fix}"


class ActionError(Exception):
    """A refusal: ``problem`` says what and the fix, ``spent`` what this run spent before it (truthfully)."""

    def __init__(self, problem: Problem, exit_code: int = BAD_INPUT, *, spent: str = NOTHING_SPENT):
        super().__init__(problem.text())
        self.problem, self.exit_code, self.spent = problem, exit_code, spent


@dataclass(frozen=True)
class Inputs:
    command: str
    program: str
    working_directory: str
    backend: str
    proposer: str
    model: str
    forge: str
    github_token: str
    dry_run: bool
    ledger_branch: str
    linger_s: int = 0  # follow a job due within this many seconds (mlr_action.shell.linger); 0: never
    wake_up: str = "false"  # auto, true, false (mlr_action.job.wakeup)


def env_name(name: str) -> str:
    """The environment variable action.yml passes an input through: ``dry-run`` is ``INPUT_DRY_RUN``."""
    return "INPUT_" + name.upper().replace("-", "_")


# --- inputs ---------------------------------------------------------------------------


def read_inputs(env: Mapping[str, str]) -> tuple[Inputs | None, list[Problem]]:
    raw = {name: (env.get(env_name(name)) or default).strip() for name, default in DEFAULTS.items()}
    problems = []
    for name, allowed in ENUMS.items():
        value = raw[name].lower()
        raw[name] = value
        if value not in allowed:
            problems.append(Problem(f"input {name}: {raw[name]!r} is not one of {', '.join(allowed)}",
                                    f"set `{name}:` to one of {', '.join(allowed)} (default {DEFAULTS[name]})"))
    dry = raw["dry-run"].lower()
    if dry not in ("true", "false"):
        problems.append(Problem(f"input dry-run: {raw['dry-run']!r} is not a boolean", "set `dry-run:` to true or false"))
    problems += _path_problems("program", raw["program"], "working-directory")
    problems += _path_problems("working-directory", raw["working-directory"], "the repository root")
    if raw["model"] and not _MODEL.match(raw["model"]):
        problems.append(Problem(f"input model: {raw['model']!r} is not a model name",
                                "set `model:` to a Claude model id, or leave it empty for the proposer's default"))
    if raw["ledger-branch"] and not valid_branch_name(raw["ledger-branch"]):
        problems.append(Problem(f"input ledger-branch: {raw['ledger-branch']!r} is not a valid branch name",
                                "use a plain branch name such as mlr-ledger (no spaces, `..`, `~^:?*[\\`)"))
    linger_s, problem = parse_linger(raw["linger"])
    problems += [problem] if problem else []
    if raw["wake-up"] == "true" and raw["backend"] != "hf":
        problems.append(Problem(f"input wake-up: true needs backend hf (backend is {raw['backend']})",
                                "set `backend: hf`, or `wake-up: auto` (on only with backend hf and MLR_WAKE_TOKEN)"))
    problems += _event_problems(env)
    workspace = Path(env.get("GITHUB_WORKSPACE") or ".")
    folder = workspace / raw["working-directory"]
    if not problems and not folder.is_dir():
        problems.append(Problem(f"input working-directory: {raw['working-directory']} is not a folder of the checkout",
                                "check out the repository first (actions/checkout) and give the folder that holds "
                                "program.md, relative to the repository root"))
    elif not problems and not folder.resolve().is_relative_to(workspace.resolve()):
        problems.append(Problem(f"input working-directory: {raw['working-directory']} resolves to {folder.resolve()}, "
                                "outside the checkout (through a symlink)",
                                "give a real folder of the repository; a symlink out of it is never followed"))
    if problems:
        return None, problems
    return Inputs(command=raw["command"], program=raw["program"], working_directory=raw["working-directory"],
                  backend=raw["backend"], proposer=raw["proposer"], model=raw["model"], forge=raw["forge"],
                  github_token=raw["github-token"], dry_run=dry == "true", ledger_branch=raw["ledger-branch"],
                  linger_s=linger_s, wake_up=raw["wake-up"]), []


def parse_linger(value: str) -> tuple[int, Problem | None]:
    """The linger input in seconds (:func:`mlr_action.shell.linger.parse_linger`), or the problem with its fix."""
    from mlr_action.shell.linger import parse_linger as seconds_of

    try:
        return seconds_of(value), None
    except ValueError as exc:
        return 0, Problem(f"input linger: {exc}", "set `linger:` to a duration such as 10m (or 0 to never linger), "
                          "under the job's `timeout-minutes` with about 5 minutes to spare")


def _path_problems(name: str, value: str, relative_to: str) -> list[Problem]:
    parts = Path(value).parts
    if not value or Path(value).is_absolute() or ".." in parts or "\n" in value:
        return [Problem(f"input {name}: {value!r} is not a path inside the repository",
                        f"give `{name}:` relative to {relative_to}, without `..`")]
    if any(part.casefold() == ".git" for part in parts):
        return [Problem(f"input {name}: {value} is under .git/, git's own data",
                        f"give `{name}:` as a folder or file of the repository itself")]
    if name == "program" and parts[0] == "runs":
        return [Problem(f"input program: {value} is under runs/, which holds the ledger and reports (data the bot "
                        "and the ledger branch write)", "keep program.md outside runs/, next to the training script")]
    return []


def _event_problems(env: Mapping[str, str]) -> list[Problem]:
    """The event file the runner wrote must be a JSON object: a run that cannot tell its event never guesses."""
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return []
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else f"not JSON: {str(exc)[:80]}"
        event, detail = None, why
    else:
        detail = "not a JSON object"
    if isinstance(event, dict):
        return []
    return [Problem(f"GITHUB_EVENT_PATH {path} cannot be read as the workflow's event ({detail})",
                    "run mlr-action as a step of a GitHub Actions workflow, which writes that file; by hand, point "
                    "GITHUB_EVENT_PATH at a JSON object or unset it")]


def valid_branch_name(name: str) -> bool:
    """git's rules for a branch name (git check-ref-format --branch), without running git."""
    if not name or name.startswith(("-", "/")) or name.endswith(("/", ".", ".lock")) or name == "@":
        return False
    if ".." in name or "@{" in name or "//" in name or re.search(r"[\x00-\x20\x7f~^:?*\[\\]", name):
        return False
    return not any(part.startswith(".") or part.endswith(".lock") for part in name.split("/"))


def credential_problems(inputs: Inputs, env: Mapping[str, str], *, may_spend: bool, program_exists: bool) -> list[Problem]:
    """Secrets a spending step needs; asked for only when the run may spend and program.md exists."""
    problems = []
    if inputs.forge == "github" and not inputs.github_token:
        problems.append(Problem("forge github needs a token and github-token is empty",
                                "leave `github-token:` at its default (`${{ github.token }}`), or set `forge: none`"))
    if not may_spend or not program_exists:
        return problems
    if inputs.backend == "hf" and not env.get("HF_TOKEN", "").strip():
        problems.append(Problem("backend hf needs HF_TOKEN and it is empty",
                                "add a repository secret HF_TOKEN (a Hugging Face token with Jobs access) and pass "
                                "it to this step: `env: HF_TOKEN: ${{ secrets.HF_TOKEN }}`"))
    if inputs.wake_up == "true" and not env.get("MLR_WAKE_TOKEN", "").strip():
        problems.append(Problem("wake-up is true and MLR_WAKE_TOKEN is empty",
                                "add a repository secret MLR_WAKE_TOKEN (a fine-grained token for this repository with "
                                "only 'Actions: write') and pass it with `env: MLR_WAKE_TOKEN: ${{ secrets.MLR_WAKE_TOKEN }}`, "
                                "or set `wake-up: auto`"))
    if inputs.proposer == "claude" and not env.get("ANTHROPIC_API_KEY", "").strip():
        problems.append(Problem("proposer claude needs ANTHROPIC_API_KEY and it is empty",
                                "add a repository secret ANTHROPIC_API_KEY and pass it with "
                                "`env: ANTHROPIC_API_KEY: ${{ secrets.ANTHROPIC_API_KEY }}`, or use `proposer: auto`"))
    return problems


# --- reporting ------------------------------------------------------------------------


def report_problems(problems: list[Problem], env: Mapping[str, str], *, title: str = "mlr-action",
                    spent: str = NOTHING_SPENT) -> None:
    """Each problem as ``::error::`` with its fix, and in the step summary under what this run spent."""
    for problem in problems:
        ghenv.emit("error", problem.text(), title=title)
    lines = [f"### ❌ {title}: {spent}", ""]
    lines += [f"- **{p.what}.** Fix: {p.fix}" for p in problems]
    ghenv.append_summary("\n".join(lines), env)


def empty_outputs(env: Mapping[str, str], **known: str) -> None:
    outputs = {"state": "", "iter": "", "best-metric": "", "jobs-used": "", "dry-run": "", "valid": ""}
    ghenv.set_outputs({**outputs, **known}, env)


def mask_secrets(env: Mapping[str, str]) -> None:
    for name in SECRET_ENV:
        ghenv.mask(env.get(name))


def unexpected(exc: BaseException, env: Mapping[str, str]) -> Problem:
    """An exception nobody turned into a refusal; the traceback only with the runner's debug logging on."""
    from mlr_action.core.redaction import redact

    if env.get("RUNNER_DEBUG") == "1":
        import traceback

        traceback.print_exc()
    return Problem(f"unexpected error: {type(exc).__name__}: {redact(str(exc))}",
                   "re-run the workflow; if it happens again, re-run it with debug logging on (it prints the "
                   "traceback) and report it")
