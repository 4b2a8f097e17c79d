"""Proposers: where the next experiment comes from.

Guarantees: importing this package imports neither optuna nor anthropic; each
proposer module imports its SDK inside the call that needs it.
:func:`make_proposer` turns the ``--proposer`` option into a proposer or raises
:class:`ValueError` with a message that says what to do.
"""

from __future__ import annotations

import importlib
import os

from mlr_action.proposal import Proposer

PROPOSER_NAMES = ("auto", "search", "claude")


def make_proposer(name: str) -> Proposer:
    """``search``, ``claude``, or ``auto`` (claude when ANTHROPIC_API_KEY is set, else search)."""
    if name == "auto":
        name = "claude" if os.environ.get("ANTHROPIC_API_KEY") else "search"
    if name == "search":
        from mlr_action.proposers.search import SearchProposer

        return SearchProposer()
    if name == "claude":
        return _claude()
    raise ValueError(f"unknown proposer {name!r} (use one of: {', '.join(PROPOSER_NAMES)})")


def _claude() -> Proposer:
    try:
        module = importlib.import_module("mlr_action.proposers.claude")
    except ModuleNotFoundError as exc:
        if exc.name == "mlr_action.proposers.claude":
            raise ValueError(
                "the Claude proposer is not available yet (use --proposer search)"
            ) from None
        raise ValueError(
            f"the Claude proposer needs {exc.name}: pip install 'mlr-action[claude]' (or use --proposer search)"
        ) from None
    cls = getattr(module, "ClaudeProposer", None)
    if cls is None:
        raise ValueError("the Claude proposer is not available yet (use --proposer search)")
    return cls()
