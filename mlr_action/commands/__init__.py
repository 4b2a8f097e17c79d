"""The commands a person runs: the ``mlr`` CLI (:mod:`.cli`, its grammar in
:mod:`.cli_parser`), the Claude Code hook ``mlr guard`` (:mod:`.guard`,
:mod:`.guard_commands`, :mod:`.guard_hf`, :mod:`.guard_shell`,
:mod:`.guard_lexer`), ``mlr reproduce``
(:mod:`.reproduce`, what may run in :mod:`.reproduce_trust`) and the program.md JSON Schema (:mod:`.schema`).

Guarantees: each command parses its arguments, builds the step from the
adapters asked for and reports with the CLI's exit codes (0 done, 1
transient, 2 bad input); bad input gets a message that names the problem
and the fix, before anything is spent.

May import: every layer below (the core, the job contract, the words, the
adapters, the shell); only the action's entry point imports a command.
"""
