"""What a job receives and runs (DESIGN.md, "what a job sees").

:mod:`.jobspec` turns a ledger row into the :class:`~mlr_action.core.jobs.JobSpec`
a backend submits; :mod:`.shipped` is the folder of code shipped with it (read
from the authorized commit, never from the work tree; :mod:`.committed` is the
same for a local step: the folder as committed at HEAD); :mod:`.runner` is the
small program that runs inside the job (it sets up the environment, runs the
script and reports); :mod:`.receives` says in words what the job receives,
:mod:`.preflight` checks before approval that a job would find everything it
needs (:mod:`.preflight_hf` asks HF about the token, namespace and flavors,
:mod:`.preflight_report` puts the findings together for ``mlr validate`` and
the pull request check), and :mod:`.wakeup` is the job's wake-up of the next
tick.

Guarantees: the same program, row and commit give the same spec, byte for
byte, on every backend; nothing a job is given comes from outside the
authorized snapshot and the program's envelope.

May import: the core and this package (the shell's ``Snapshot`` only for
annotations); never the words, the adapters, the shell or the commands.
"""
