"""mlr-action: autonomous, budget-bounded ML experiment campaigns from a git repository."""

__version__ = "0.1.0"
