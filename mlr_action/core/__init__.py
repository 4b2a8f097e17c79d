"""The pure core: what the campaign is, what happened, and what to do next.

It parses program.md (:mod:`.program`, the entry, with its Markdown and YAML
readers; what a valid one is in :mod:`.program_model`), reads and appends the
ledger (:mod:`.ledger`, through :mod:`.safepath`), folds it into a state
(:mod:`.state`), counts the budget (:mod:`.budget`), records what the backend
observed (:mod:`.reconcile`), decides the next action (:mod:`.decide`,
:mod:`.recovery`, :mod:`.cleanup`, :mod:`.observe`) and admits each proposal
(:mod:`.admission`), plans the final evaluation (:mod:`.final`, what it found
in :mod:`.final_outcome`) and reads a job's metric (:mod:`.metric`). :mod:`.jobs` holds the types that cross the
seam to a job backend (``JobSpec`` in, ``JobView`` out, the backend errors
and the ``JobBackend`` protocol); the backends implement it, the core never
imports a backend.

Guarantees: nothing here starts a process, opens a socket or reads the
clock behind the caller's back (time is passed in); the only files touched
are the ledger and the paths a caller hands over, written without following
links. Every text a job or a person controls goes through
:mod:`.redaction` and :mod:`.markup` before it is shown.

May import: the standard library, pydantic and PyYAML, and the core itself;
never anything else of mlr_action (tests/test_layers.py checks it, even for
annotations).
"""
