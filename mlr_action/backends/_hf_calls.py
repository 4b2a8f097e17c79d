"""Every request the hf backend makes, and what it tells the user when one fails.

Guarantees:

- :meth:`HfCalls._call` runs an ``HfApi`` call under the backend's HTTP
  policy (:func:`mlr_action.backends._hf_http.applied`) and turns every SDK
  and HTTP failure into a :class:`BackendError` that says what to do:
  401/403 name the token permission needed, 402 where to add credits, 404
  the namespace to fix (all :class:`PermanentError`); 408, 429, 5xx and
  network failures are :class:`TransientError` (after the bounded retries of
  :mod:`mlr_action.backends._hf_http`). A write whose answer was lost says
  the next step looks the job up by its labels before it submits again.
- A 404 the caller expects (a job that is gone) is :class:`Missing`, never
  an error; a :class:`LogIncomplete` passes through as it is.
- The messages live in :data:`MESSAGES`, read as a set; none carries a
  token (they name the endpoint, the namespace and the action only).
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import httpx2
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

from mlr_action.backends import _hf_http
from mlr_action.backends._hf_code import Missing
from mlr_action.core.jobs import BackendError, LogIncomplete, PermanentError, TransientError

T = TypeVar("T")

TOKEN_SCOPE = ("a token with write access (a classic 'write' token, or a fine-grained token with "
               "'Start and manage Jobs on your behalf' and write access to the output repos) for namespace {ns}")
MESSAGES = {
    "no-token": ("no Hugging Face token: set HF_TOKEN to " + TOKEN_SCOPE.format(ns="your user or org")
                 + " (create one at https://huggingface.co/settings/tokens); this job was not submitted"),
    401: "HF rejected the token (401) while {action}: HF_TOKEN is invalid or expired; set it to " + TOKEN_SCOPE,
    403: "HF refused {action} (403): the token lacks permission; it needs " + TOKEN_SCOPE,
    402: ("HF refused {action} (402 Payment Required): namespace {ns} has no credits or payment method; add one at "
          "https://huggingface.co/settings/billing (for an org: its Settings > Billing), then run the step again; "
          "this job was not submitted"),
    404: ("HF has no namespace {ns} (404 while {action}): set `namespace:` in program.md's Campaign block to your "
          "user or org name, or remove it to use the token's own user"),
    "not-found": "HF answered 404 while {action}: check that HF_ENDPOINT ({endpoint}) is the Hugging Face Hub",
    "bad-request": "HF refused {action} ({status}): {detail}; fix program.md (flavor, timeout) or the script and try again",
    "unknown-outcome": ("{action}: the request may have reached HF but its answer was lost ({detail}); the next step "
                        "looks for the job by its labels before submitting again"),
    "network": "could not reach HF at {endpoint} while {action} ({detail}); the next tick retries",
    "prices-fallback": ("live HF prices could not be read ({why}); costs use the built-in price table, rounded up"),
}


class HfCalls:
    """The request half of :class:`mlr_action.backends.hf.HfBackend`: its ``api``, ``policy`` and namespace."""

    api: Any  # huggingface_hub.HfApi
    policy: _hf_http.Policy
    _namespace: str | None

    def _call(self, action: str, fn: Callable[[], T], *, missing: bool = False, writes: bool = False,
              namespaced: bool = True) -> T:
        """``fn()``, with every SDK and HTTP failure turned into a BackendError that says what to do."""
        try:
            with _hf_http.applied(self.policy):
                return fn()
        except LogIncomplete:
            raise
        except TransientError as exc:
            raise TransientError(f"{action}: {exc}") from exc
        except LocalTokenNotFoundError:
            raise PermanentError(MESSAGES["no-token"]) from None
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if missing and status == 404:
                raise Missing() from None
            raise self._http_error(action, status, exc, namespaced=namespaced) from exc
        except httpx2.HTTPError as exc:  # timeouts and dropped connections the transport did not retry
            detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
            message = MESSAGES["unknown-outcome"] if writes else MESSAGES["network"]
            raise TransientError(message.format(endpoint=self.api.endpoint, action=action, detail=detail)) from exc

    def _http_error(self, action: str, status: int, exc: HfHubHTTPError, *, namespaced: bool) -> BackendError:
        ns = self._namespace or "(the token's user)"
        if status == 404 and not namespaced:
            return PermanentError(MESSAGES["not-found"].format(action=action, endpoint=self.api.endpoint))
        if status in (401, 402, 403, 404):
            return PermanentError(MESSAGES[status].format(action=action, ns=ns))
        if status == 429 or status >= 500 or status == 408:
            return TransientError(f"HF answered {status} while {action}; the next tick retries")
        detail = (getattr(exc, "server_message", None) or str(exc).strip().splitlines()[0])[:300]
        return PermanentError(MESSAGES["bad-request"].format(action=action, status=status, detail=detail))
