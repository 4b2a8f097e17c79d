"""Proposers: where the next experiment comes from.

Guarantees: importing this package imports neither optuna nor anthropic; each
proposer module imports its SDK inside the call that needs it.
:func:`make_proposer` turns the ``--proposer`` option into a proposer or raises
:class:`ValueError` with a message that says what to do.
"""

from __future__ import annotations

import importlib.util
import os

from mlr_action.core.proposal import Proposer

PROPOSER_NAMES = ("auto", "search", "claude")


def make_proposer(name: str, model: str | None = None) -> Proposer:
    """``search``, ``claude``, or ``auto`` (claude when ANTHROPIC_API_KEY is set, else search).

    ``model`` picks the Claude model (``--model``); the search proposer ignores it.
    """
    if name == "auto":
        name = "claude" if os.environ.get("ANTHROPIC_API_KEY") else "search"
    if name == "search":
        from mlr_action.proposers.search import SearchProposer

        return SearchProposer()
    if name == "claude":
        return _claude(model)
    raise ValueError(f"unknown proposer {name!r} (use one of: {', '.join(PROPOSER_NAMES)})")


def _claude(model: str | None) -> Proposer:
    if importlib.util.find_spec("anthropic") is None:  # finding it is cheap; importing it is not
        raise ValueError(
            "the Claude proposer needs the anthropic package: pip install 'mlr-action[claude]' (or use --proposer search)"
        )
    from mlr_action.proposers.claude import ClaudeProposer

    return ClaudeProposer(model=model)
