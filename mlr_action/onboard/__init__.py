"""The onboarding: a first program.md drafted from a training script.

:mod:`.scriptinfo` reads the script without running it (its arguments,
metric lines, frameworks); :mod:`.draft` and its parts (:mod:`.draft_space`,
:mod:`.draft_metric`, :mod:`.draft_text`) write the draft;
:mod:`.draft_report` and :mod:`.onboarding_body` say in words what was found
and what to check (``mlr init``, the onboarding pull request).

Guarantees: nothing of the script is imported or executed; the draft is a
valid program.md or says why not; it authorizes nothing until a person
merges it.

May import: the core and this package; never an adapter, the shell or a
command (the GitHub forge and the CLI import it, not the other way round).
"""
