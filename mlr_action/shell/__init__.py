"""The step shell: one reconcile step and what drives it.

:mod:`.step` folds the ledger, asks the core what to do and does it through
the adapters it is given (a backend, a proposer, a forge), recording every
spend before it happens (its parts: :mod:`.step_observe`, :mod:`.step_spend`,
:mod:`.step_publish`, :mod:`.step_result`, :mod:`.steplock`); :mod:`.tick` and :mod:`.linger` take the steps a
tick brings; :mod:`.dryrun` says what a step would do and spends nothing;
:mod:`.authority` reads the merged program.md and script from git, the only
thing that authorizes spend (DESIGN.md section 9).

Guarantees: a crash at any point leaves a state from which the next step
continues correctly; nothing is spent that the merged program does not
authorize or the ledger could not record.

May import: the core, the job contract, the words and the adapters (the
git helpers in :mod:`mlr_action.github` included); never a command or the
action's entry point.
"""
