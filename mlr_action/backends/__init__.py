"""Job backends, chosen by name.

Guarantees: importing this package imports no SDK (``huggingface_hub`` is
imported only by ``mlr_action.backends.hf``, and only when ``make_backend("hf")``
is called); :func:`make_backend` imports just the backend asked for.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from mlr_action.core.jobs import (
    CAMPAIGN_LABEL,
    ITER_LABEL,
    TERMINAL_STAGES,
    BackendError,
    JobBackend,
    JobSpec,
    JobStage,
    JobView,
    PermanentError,
    TransientError,
    labels_for,
)

BACKENDS = ("local", "hf", "memory")

__all__ = [
    "BACKENDS",
    "CAMPAIGN_LABEL",
    "ITER_LABEL",
    "TERMINAL_STAGES",
    "BackendError",
    "JobBackend",
    "JobSpec",
    "JobStage",
    "JobView",
    "PermanentError",
    "TransientError",
    "labels_for",
    "make_backend",
]


def make_backend(name: str, *, root: Path, namespace: str | None = None, uv: str | None = "auto",
                 wake: object = None) -> JobBackend:
    """The backend called ``name``; ``root`` is the campaign's repository root (used by ``local``),
    ``namespace`` the HF user or org jobs run in (``hf``; None: the token's own user), ``uv`` what runs local
    jobs (``auto``: uv when it is on PATH; None: this Python)."""
    if name == "local":
        from mlr_action.backends.local import LocalBackend

        return LocalBackend(root, uv=uv)
    if name == "memory":
        from mlr_action.backends.memory import InMemoryBackend

        return InMemoryBackend()
    if name == "hf":
        return _make_hf(namespace, wake)
    raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")


def _make_hf(namespace: str | None, wake: object = None) -> JobBackend:
    """``mlr_action.backends.hf.HfBackend(namespace=...)``; it reads HF_TOKEN and HF_ENDPOINT from the environment.

    huggingface_hub adds telemetry to its user agent, and for it fetches a registry of AI coding agents from the Hub
    once a day per machine (``/api/agent-harnesses``, up to 3 s). A fresh runner has no copy, so every tick would make
    that request too. The bot is not a coding agent: the telemetry is off unless the environment turns it on (read
    when huggingface_hub is imported, which is here).
    """
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        hf = importlib.import_module("mlr_action.backends.hf")
    except ModuleNotFoundError as exc:
        if exc.name == "huggingface_hub":
            raise PermanentError("the hf backend needs huggingface_hub: pip install 'mlr-action[hf]'") from exc
        if exc.name != "mlr_action.backends.hf":
            raise
        raise PermanentError(
            "the hf backend is not available yet in this version of mlr-action; use --backend local"
        ) from exc
    return hf.HfBackend(namespace=namespace, wake=wake)
