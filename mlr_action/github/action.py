"""The GitHub Action's entry point: ``python -m mlr_action.github.action`` (see action.yml).

Guarantees:

- Every input is validated before anything else happens (``--check-inputs``
  does only that, with the standard library, before the environment is
  built). All problems are reported at once, each as ``::error::`` with its
  fix and in the step summary; the exit code is then 2 and nothing is spent.
- Tokens (the ``github-token`` input, ``HF_TOKEN``, ``ANTHROPIC_API_KEY``,
  ``MLR_WAKE_TOKEN``) are masked before anything is printed.
- A run that is not allowed to spend (:func:`mlr_action.github.ghenv.spend_blockers`:
  a pull request, a fork, another ref than the default branch; and
  :func:`mlr_action.shell.authority.stale_reasons`: a checkout that is not the tip
  of the default branch) runs as a dry run and says why. ``program.md`` and
  the script are read from git objects at that tip, never from the work tree.
- One ``mlr step`` runs, and with the ``linger`` input the steps that follow
  a job about to end (:mod:`mlr_action.shell.tick`). After each step that may
  spend, ``runs/`` is committed and pushed (:func:`mlr_action.github.gitsync.publish_runs`, idempotent: the github
  forge may already have done it); with ``ledger-branch`` the ledger is read
  from that branch before the step and written to it after.
- The outputs ``state``, ``iter``, ``best-metric``, ``jobs-used`` (and
  ``dry-run``, ``valid``) are always written, empty when unknown; the step
  summary says what happened, the budget and the best so far.
- Exit codes are the CLI's: 0 done, 1 transient (the next tick retries), 2 bad input.
  Every refusal, and any unexpected error, ends in an ``::error::`` with its
  fix, the step summary and an exit code, never a traceback (that only with
  the runner's debug logging), and says truthfully what this run spent.
"""

from __future__ import annotations

import argparse
import os
import sys

from mlr_action.github.inputs import (  # noqa: F401  (re-exported)
    OK, TRANSIENT, BAD_INPUT, ENUMS, DEFAULTS, SECRET_ENV, Problem, ActionError, Inputs, env_name, read_inputs,
    parse_linger, valid_branch_name, credential_problems, report_problems, empty_outputs, mask_secrets, unexpected
)


# --- main -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlr_action.github.action", description=__doc__.splitlines()[0])
    parser.add_argument("--check-inputs", action="store_true", help="validate the inputs and mask tokens, nothing else")
    args = parser.parse_args(argv)
    env = os.environ
    mask_secrets(env)
    inputs, problems = read_inputs(env)
    if problems:
        report_problems(problems, env, title="invalid input")
        empty_outputs(env)
        return BAD_INPUT
    if args.check_inputs:
        return OK
    assert inputs is not None
    if inputs.github_token:  # for the forge, the PR comment and git (when the checkout kept no credentials)
        os.environ["GITHUB_TOKEN"] = inputs.github_token
    try:
        if inputs.command == "validate":
            from mlr_action.github.action_validate import run_validate

            return run_validate(inputs, env)
        from mlr_action.github.action_step import run_step

        return run_step(inputs, env)
    except ActionError as exc:
        report_problems([exc.problem], env, spent=exc.spent)
        empty_outputs(env)
        return exc.exit_code
    except Exception as exc:  # a bug, or an environment nobody foresaw: a message and an exit code, never a traceback
        report_problems([unexpected(exc, env)], env, title="mlr-action stopped on an unexpected error",
                        spent="what was spent, if anything, is in runs/ledger.jsonl")
        empty_outputs(env)
        return TRANSIENT


if __name__ == "__main__":
    # Through the package's own module, so the ActionError that action_step raises is the class main() catches
    # (run as a script, this file is also `__main__`, whose classes are copies).
    from mlr_action.github.action import main as _main

    sys.exit(_main())
