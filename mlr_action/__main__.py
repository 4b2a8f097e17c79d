"""`python -m mlr_action` is the `mlr` command."""

from mlr_action.cli import main

raise SystemExit(main())
