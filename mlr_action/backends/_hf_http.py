"""The HTTP policy of the hf backend: timeouts and bounded retries for every HfApi call.

huggingface_hub sends every request through one shared ``httpx2.Client`` with
no timeout, and retries some calls itself for as long as a ``Retry-After``
says. A cron step must not hang or sleep for an hour, so :func:`install`
replaces that client (``huggingface_hub.set_client_factory``, once per
process) with one whose transport keeps the rules of the :class:`Policy` in
force for the call (:func:`applied`; each backend applies its own). The
client is otherwise the SDK's own: its request hooks (offline mode, request
ids, debug logging), its redirects, and no timeout of the client's own, so
httpx's 5-second default never cuts a request the policy allows:

- Every request has a timeout (``timeout_s``, or the SDK's own when shorter;
  connecting gets at most 10 s); a read of a job's log also has a deadline
  for the whole read (``log_deadline_s``, kept by :mod:`._hf_logs`).
- Rate limits (429) are honoured: the request is sent again after the
  ``Retry-After`` it names, when that wait is at most ``max_retry_after_s``;
  a longer wait is not waited for. A 429 means the request was refused before
  it did anything, so this holds for a submit too.
- Idempotent reads (GET, HEAD) are retried after a short backoff on 408, 5xx
  and network errors; a request that never reached the server (connect
  errors) is retried whatever its method.
- A write (POST, DELETE) that may have reached the server is never sent
  twice: a timeout, a dropped connection or a 5xx is the caller's to resolve
  (for a submit: look the job up by its labels on the next tick).
- When the retries run out, :class:`TransientError` is raised from the
  transport itself, so the SDK's own retry loop never adds minutes of sleep.

The messages name the method and path only: a URL of the Jobs API carries no
secret, and request headers (where the token is) are never shown.
"""

from __future__ import annotations

import contextlib
import email.utils
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Iterator

import httpx2

from mlr_action.core.jobs import TransientError

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Policy:
    timeout_s: float = 30.0
    retries: int = 2  # extra attempts of a request that may be retried
    backoff_s: float = 1.0  # first wait between attempts; doubles each time
    max_retry_after_s: float = 10.0  # the longest Retry-After waited for within one step
    log_deadline_s: float = 60.0  # the longest one read of a job's log takes, keep-alives or not (_hf_logs)
    sleep: Callable[[float], None] = time.sleep


_POLICY: ContextVar[Policy] = ContextVar("mlr_hf_http_policy", default=Policy())
_installed = False


@contextlib.contextmanager
def applied(policy: Policy) -> Iterator[None]:
    """Requests made inside this block follow ``policy``."""
    token = _POLICY.set(policy)
    try:
        yield
    finally:
        _POLICY.reset(token)


class PolicyTransport(httpx2.BaseTransport):
    """Wraps the SDK's transport with the rules of this module."""

    def __init__(self, inner: httpx2.BaseTransport | None = None) -> None:
        self.inner = inner or httpx2.HTTPTransport()

    @property
    def policy(self) -> Policy:
        return _POLICY.get()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.extensions["timeout"] = _timeouts(request.extensions.get("timeout") or {}, self.policy)
        attempt = 0
        while True:
            try:
                response = self.inner.handle_request(request)
            except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
                wait = self._backoff(attempt)  # nothing reached the server: safe for any method
                if wait is None:
                    raise TransientError(f"could not connect to {_where(request)} ({exc}); the next tick retries") from exc
            except httpx2.TransportError as exc:
                if request.method not in SAFE_METHODS:
                    raise  # the adapter says what it means for its call (an unknown outcome for a submit)
                wait = self._backoff(attempt)
                if wait is None:
                    raise TransientError(
                        f"{_where(request)} failed {attempt + 1} times ({type(exc).__name__}: {exc}); the next tick retries"
                    ) from exc
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                wait = self._wait_for(request, response, attempt)
                response.close()
            attempt += 1
            self.policy.sleep(wait)

    def close(self) -> None:
        self.inner.close()

    def _backoff(self, attempt: int) -> float | None:
        if attempt >= self.policy.retries:
            return None
        return self.policy.backoff_s * 2**attempt

    def _wait_for(self, request: httpx2.Request, response: httpx2.Response, attempt: int) -> float:
        """How long to wait before sending ``request`` again; raises when it must not be sent again now."""
        status = response.status_code
        if status == 429:
            after = retry_after_s(response.headers.get("Retry-After"))
            if after is not None and after > self.policy.max_retry_after_s:
                response.close()
                raise TransientError(
                    f"HF rate-limited {_where(request)} (429) and asks to wait {after:.0f}s, longer than a step "
                    f"waits ({self.policy.max_retry_after_s:.0f}s); the next tick retries"
                )
            wait = self._backoff(attempt) if after is None else (after if attempt < self.policy.retries else None)
        else:
            wait = self._backoff(attempt) if request.method in SAFE_METHODS else None
        if wait is None:
            response.close()
            raise TransientError(_gave_up(request, response, attempt + 1))
        return wait


def _where(request: httpx2.Request) -> str:
    return f"{request.method} {request.url.path}"


def _gave_up(request: httpx2.Request, response: httpx2.Response, attempts: int) -> str:
    status = f"{response.status_code} {response.reason_phrase}".strip()
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if request.method not in SAFE_METHODS:
        return (f"HF answered {status} to {_where(request)}; whether it took effect is unknown, so it is not sent "
                "again now: the next tick checks and retries")
    return f"HF answered {status} to {_where(request)}{tries}; the next tick retries"


def retry_after_s(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _timeouts(given: dict[str, float | None], policy: Policy) -> dict[str, float | None]:
    """The SDK's per-request timeouts, capped by the policy's."""
    caps = {"connect": min(10.0, policy.timeout_s), "read": policy.timeout_s, "write": policy.timeout_s,
            "pool": policy.timeout_s}
    return {key: cap if given.get(key) is None else min(cap, given[key]) for key, cap in caps.items()}


def install() -> None:
    """Route every huggingface_hub request in this process through :class:`PolicyTransport` (once)."""
    global _installed
    if _installed:
        return
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils._http import hf_request_event_hook  # what default_client_factory() installs

    def client() -> httpx2.Client:
        # A client given its own transport ignores HTTPS_PROXY and NO_PROXY; mount them again.
        mounts = {pattern: PolicyTransport(httpx2.HTTPTransport(proxy=proxy)) for pattern, proxy in _env_proxies().items()}
        return httpx2.Client(transport=PolicyTransport(), mounts=mounts, event_hooks={"request": [hf_request_event_hook]},
                             follow_redirects=True, timeout=None)  # the policy sets every request's timeout (_timeouts)

    set_client_factory(client)
    _installed = True


def _env_proxies() -> dict[str, str | None]:
    try:
        from httpx2._utils import get_environment_proxies
    except ImportError:  # a later httpx2 moved it: no proxy support rather than no client
        return {}
    return get_environment_proxies()
