"""The job wake-up: an HF job that ends starts the campaign's next tick by dispatching its workflow.

With a user-provided token in ``MLR_WAKE_TOKEN`` (a fine-grained token for
this one repository with only "Actions: write"), each HF job's launcher
(:func:`mlr_action.job.runner.launcher` with ``wake=True``) runs the script, then,
whatever its exit status, asks GitHub to run the workflow
(``POST /repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches`` on the
default branch), then exits with the script's own status.

Guarantees:

- The token reaches the job only as an HF job *secret* (``MLR_WAKE_TOKEN``),
  never as plain environment, an argument or a label; the bot never writes it
  (it is one of :data:`mlr_action.core.redaction.SECRET_ENV_VARS`). The job's plain
  environment gets the dispatch's address (``MLR_WAKE_URL``) and branch
  (``MLR_WAKE_REF``), which are not secret.
- What is dispatched is always the workflow file the tick ran from
  (``GITHUB_WORKFLOW_REF``) or the one named, on the default branch: a
  dispatched run is an ordinary run of the default branch, so it spends only
  within the merged envelope, like a cron tick.
- The dispatcher (:data:`DISPATCH_PY`) is standard-library Python: it sends a
  ``reason`` input and, when the workflow declares no such input (GitHub
  answers 422), the bare dispatch; it retries a 5xx, a 429 and a network
  failure twice, and prints one line that never holds the token. Nothing it
  does changes the job's exit status.
- Every problem is named with its fix before anything is submitted
  (:func:`wake_for`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

TOKEN_ENV = "MLR_WAKE_TOKEN"
URL_ENV, REF_ENV = "MLR_WAKE_URL", "MLR_WAKE_REF"
DEFAULT_API = "https://api.github.com"
_REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$")
_WORKFLOW = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.ya?ml$")


@dataclass(frozen=True)
class Wake:
    """Where a job that ends dispatches, and the token it does it with (a secret)."""

    url: str  # .../repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches
    ref: str  # the default branch
    token: str

    def env(self) -> dict[str, str]:
        """The job's plain environment: where to dispatch (not secret)."""
        return {URL_ENV: self.url, REF_ENV: self.ref}

    def secrets(self) -> dict[str, str]:
        return {TOKEN_ENV: self.token}


def workflow_of(workflow_ref: str, repository: str) -> str | None:
    """The workflow file's name in ``GITHUB_WORKFLOW_REF`` (``owner/repo/.github/workflows/mlr.yml@refs/heads/main``)."""
    path = workflow_ref.split("@", 1)[0]
    prefix = f"{repository}/.github/workflows/"
    name = path[len(prefix):] if path.startswith(prefix) else ""
    return name if _WORKFLOW.match(name) else None


def wake_for(env: Mapping[str, str], *, workflow: str, ref: str) -> tuple[Wake | None, list[str]]:
    """The wake-up for ``workflow`` on ``ref`` from the environment, or every problem with its fix."""
    problems = []
    token = env.get(TOKEN_ENV, "").strip()
    repository = env.get("GITHUB_REPOSITORY", "").strip()
    api = (env.get("GITHUB_API_URL", "").strip() or DEFAULT_API).rstrip("/")
    if not token:
        problems.append(f"the job wake-up needs a token in {TOKEN_ENV}: add a repository secret {TOKEN_ENV} (a "
                        "fine-grained token for this repository with only 'Actions: write') and pass it to the step "
                        f"with `env: {TOKEN_ENV}: ${{{{ secrets.{TOKEN_ENV} }}}}`")
    if not _REPOSITORY.match(repository):
        problems.append(f"the job wake-up needs GITHUB_REPOSITORY as owner/name (it is {repository!r}); run it in a "
                        "GitHub workflow, or set GITHUB_REPOSITORY")
    if not _WORKFLOW.match(workflow):
        problems.append(f"the job wake-up's workflow {workflow!r} is not a workflow file name; give the file under "
                        ".github/workflows/, such as mlr.yml")
    if not re.match(r"^https?://[^\s/]+", api):
        problems.append(f"GITHUB_API_URL {api!r} is not an http(s) address; unset it for GitHub.com")
    if problems:
        return None, problems
    url = f"{api}/repos/{repository}/actions/workflows/{workflow}/dispatches"
    return Wake(url=url, ref=ref, token=token), []


def for_step(workflow: str, *, backend: str, branch: str | None, env: Mapping[str, str]) -> Wake:
    """The wake-up ``mlr step --wake-workflow`` asks for; ValueError naming every problem and its fix."""
    if backend != "hf" or branch is None:
        raise ValueError("--wake-workflow needs --backend hf and --forge github (the dispatched run spends from the "
                         "default branch, which only GitHub mode reads)")
    wake, problems = wake_for(env, workflow=workflow, ref=branch)
    if wake is None:
        raise ValueError("; ".join(problems))
    return wake


# The launcher runs this with the job's python after the script exits (standard library only; the token is read
# from the environment and never printed).
DISPATCH_PY = r'''
import json, os, sys, time, urllib.error, urllib.request
url, ref, token = os.environ.get("MLR_WAKE_URL", ""), os.environ.get("MLR_WAKE_REF", ""), os.environ.get("MLR_WAKE_TOKEN", "")
reason = "iter %s ended" % os.environ.get("MLR_ITER", "?")
def post(body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": "Bearer " + token, "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "mlr-action-wake-up"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(400).decode("utf-8", "replace")
    except OSError as exc:
        return 0, type(exc).__name__
status, why = 0, "no attempt"
if url and ref and token:
    for attempt in range(3):
        status, why = post({"ref": ref, "inputs": {"reason": reason}})
        if status == 422 and "input" in why.lower():
            status, why = post({"ref": ref})
        if status and status < 500 and status != 429:
            break
        time.sleep(5 * (attempt + 1))
if status == 204:
    print("mlr wake-up sent: the workflow runs the next tick", file=sys.stderr)
else:
    why = " ".join(why.replace(token, "***").split())[:200] if token else why
    print("mlr wake-up failed (HTTP %s %s); the next scheduled tick goes on" % (status or "-", why), file=sys.stderr)
'''
