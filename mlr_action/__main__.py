"""`python -m mlr_action` is the `mlr` command."""

from mlr_action.commands.cli import main

raise SystemExit(main())
