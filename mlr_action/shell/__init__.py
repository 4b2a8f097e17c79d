"""The step shell: one reconcile step and what drives it, side effects through adapters."""
