"""The adapter to the Anthropic API: the only module that imports ``anthropic``.

Guarantees:

- ``anthropic`` is imported on the first call, never at import or construction,
  so a step that does not propose never pays for it (about a second).
- Every successful response's ``usage`` is metered, including answers that
  fail to parse (a client middleware reads it before the SDK parses), priced
  by :mod:`mlr_action.proposers.pricing`. A response without a readable
  ``usage`` is charged the call's worst-case estimate.
- Errors are translated here, by kind:
  overloaded (529), other 5xx, rate limits (429), 408/409, timeouts and lost
  connections raise :class:`~mlr_action.core.jobs.TransientError` (the
  step exits 1 and the next tick retries); the SDK's own retries are bounded
  (:data:`MAX_RETRIES`, :data:`PROPOSAL_TIMEOUT_S`), and a ``retry-after``
  longer than :data:`MAX_RETRY_WAIT_S` ends the call at once instead of
  sleeping through the tick. A request the API refuses (bad key, unknown
  model, bad request) raises :class:`LlmUnavailable` with the fix. An answer
  that is a refusal, cut off, or not the asked-for JSON comes back as
  :class:`~mlr_action.proposers.llm_answers.Parsed` with ``problems``, never
  as an exception (:mod:`mlr_action.proposers.llm_answers` reads the answers).
- The model is given no tool except the web search server tool (bounded by
  ``max_uses``) in research calls, and no credential. Messages never carry the
  API key: every error text is redacted.
"""

from __future__ import annotations

import email.utils
import json
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

from mlr_action.core.jobs import TransientError
from mlr_action.proposers.llm_answers import Parsed, api_message, as_param, collect, judge, read_problems, unavailable_text
from mlr_action.proposers.pricing import cost_usd, web_searches
from mlr_action.proposers.research import SearchOutcome
from mlr_action.core.redaction import redact
from mlr_action.render.words import shorten

MAX_RETRIES = 2
PROPOSAL_TIMEOUT_S = 120.0
RESEARCH_TIMEOUT_S = 300.0
MAX_RETRY_WAIT_S = 10.0
MAX_CONTINUATIONS = 3  # pause_turn continuations of one research turn
WEB_SEARCH_TOOL = "web_search_20250305"  # the basic web search tool: every current model has it


class LlmUnavailable(Exception):
    """The API refused the request in a way retrying will not fix; ``str`` says what to do."""


class _WaitTooLong(Exception):
    def __init__(self, status: int, seconds: float):
        super().__init__(f"HTTP {status}, retry-after {seconds:.0f}s")
        self.status, self.seconds = status, seconds


@dataclass
class Spend:
    """Tokens, searches and dollars of the calls since the meter was last read."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    web_searches: int = 0
    usd: float = 0.0
    estimated: int = 0  # calls charged their estimate because the response had no usage


def retry_after(headers: Any) -> float | None:
    """Seconds the server asks to wait (``retry-after-ms`` or ``retry-after``), if it says."""
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return float(ms) / 1000
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            return float(email.utils.mktime_tz(parsed) - time.time()) if parsed else None
    except (TypeError, ValueError, OverflowError):
        return None


def _tokens(usage: Any, key: str) -> int:
    value = usage.get(key) if isinstance(usage, dict) else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class ClaudeClient:
    """One model, one lazily built SDK client, one spend meter."""

    def __init__(self, *, model: str, api_key: str, max_retries: int = MAX_RETRIES,
                 timeout_s: float = PROPOSAL_TIMEOUT_S, research_timeout_s: float = RESEARCH_TIMEOUT_S):
        self.model = model
        self._api_key = api_key
        self._max_retries = max_retries
        self._timeout_s, self._research_timeout_s = timeout_s, research_timeout_s
        self._sdk: Any = None
        self._spend = Spend()
        self._estimate = 0.0
        self.last_text = ""

    # -- the meter -----------------------------------------------------------

    def take_spend(self) -> Spend:
        spend, self._spend = self._spend, Spend()
        return spend

    def pending_usd(self) -> float:
        return self._spend.usd

    def _record(self, body: Any) -> None:
        usage = body.get("usage") if isinstance(body, dict) else None
        self._spend.calls += 1
        if not isinstance(usage, dict) or not isinstance(usage.get("output_tokens"), int):
            self._spend.usd += self._estimate
            self._spend.estimated += 1
        else:
            self._spend.input_tokens += _tokens(usage, "input_tokens")
            self._spend.output_tokens += _tokens(usage, "output_tokens")
            self._spend.web_searches += web_searches(usage)
            self._spend.usd += cost_usd(self.model, usage)
        content = body.get("content") if isinstance(body, dict) else None
        blocks = content if isinstance(content, list) else []
        self.last_text = "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str))

    def _observe(self, request: Any, call_next: Callable[[Any], Any]) -> Any:
        """Client middleware, once per HTTP attempt: meter successes, refuse long waits.

        An attempt whose answer never arrived (a timeout, a dropped connection) may have been processed and
        billed: it is charged the call's estimate, as an answer without a readable usage is.
        """
        try:
            response = call_next(request)
        except Exception as exc:
            if _maybe_billed(exc):
                self._record(None)
            raise
        http = response.http_response
        if http.is_success:
            try:
                body = json.loads(http.read())
            except ValueError:
                body = None
            self._record(body)
            return response
        wait = retry_after(http.headers)
        if (http.status_code in (408, 409, 429) or http.status_code >= 500) and wait is not None and wait > MAX_RETRY_WAIT_S:
            http.close()
            raise _WaitTooLong(http.status_code, wait)
        return response

    def _client(self) -> Any:
        if self._sdk is None:
            import anthropic  # the ~1 s import, paid only by a step that proposes

            self._sdk = anthropic.Anthropic(
                api_key=self._api_key, max_retries=self._max_retries,
                timeout=self._timeout_s, middleware=[self._observe],
            )
        return self._sdk

    # -- calls ---------------------------------------------------------------

    def parse(self, *, system: str, user: str, output: type, max_tokens: int, estimate_usd: float) -> Parsed:
        """One structured-output call (``messages.parse``) with ``output`` as the schema."""
        import anthropic

        client, self._estimate, self.last_text = self._client(), estimate_usd, ""
        try:
            with warnings.catch_warnings():  # the SDK re-serializes odd blocks of a malformed answer noisily
                warnings.filterwarnings("ignore", message="Pydantic serializer warnings", category=UserWarning)
                message = client.messages.parse(
                    model=self.model, max_tokens=max_tokens, system=system,
                    messages=[{"role": "user", "content": user}], output_format=output,
                )
        except anthropic.APIResponseValidationError as exc:
            return Parsed(text=self.last_text, problems=[f"the API answer was not a message ({shorten(str(exc), 120)})"])
        except (anthropic.APIError, _WaitTooLong) as exc:
            raise self._translate(exc) from None
        except Exception as exc:  # the SDK could not read the answer: pydantic's error, or a malformed message
            return Parsed(text=self.last_text, problems=read_problems(exc))
        return judge(message, self.last_text)

    def search(self, *, system: str, user: str, max_uses: int, max_tokens: int, estimate_usd: float,
               before_call: Callable[[], str | None] = lambda: None) -> SearchOutcome:
        """A research turn with the web search tool, continued through ``pause_turn``."""
        import anthropic

        client, self._estimate = self._client(), estimate_usd
        outcome, assistant = SearchOutcome(), []
        tool = {"type": WEB_SEARCH_TOOL, "name": "web_search", "max_uses": max_uses}
        for turn in range(1 + MAX_CONTINUATIONS):
            if turn and (why := before_call()):
                outcome.text += f"\n\n(research stopped early: {why})"
                break
            messages = [{"role": "user", "content": user}] + ([{"role": "assistant", "content": assistant}] if assistant else [])
            try:
                message = client.messages.create(
                    model=self.model, max_tokens=max_tokens, system=system, messages=messages,
                    tools=[tool], timeout=self._research_timeout_s,
                )
            except (anthropic.APIError, _WaitTooLong) as exc:
                raise self._translate(exc) from None
            except Exception as exc:  # a malformed answer: research goes on without it
                outcome.errors.append(f"unreadable answer ({type(exc).__name__})")
                break
            blocks = list(getattr(message, "content", None) or [])
            collect(blocks, outcome)
            outcome.stop_reason = str(getattr(message, "stop_reason", "") or "")
            if outcome.stop_reason != "pause_turn":
                break
            outcome.continuations += 1
            assistant = assistant + [as_param(b) for b in blocks]
        return outcome

    def _translate(self, exc: Exception) -> Exception:
        import anthropic

        if isinstance(exc, _WaitTooLong):
            return TransientError(f"the Anthropic API asked to wait {exc.seconds:.0f}s (HTTP {exc.status}); the next tick retries")
        if isinstance(exc, anthropic.APITimeoutError):
            return TransientError(f"the Anthropic API did not answer in time after {self._max_retries} retries")
        if isinstance(exc, anthropic.APIConnectionError):
            return TransientError(f"cannot reach the Anthropic API ({redact(str(exc))})")
        status = getattr(exc, "status_code", None)
        detail = shorten(redact(api_message(exc)), 200)
        if status == 529:
            return TransientError(f"the Anthropic API is overloaded (529) after {self._max_retries} retries: {detail}")
        if status == 429:
            return TransientError(f"rate limited by the Anthropic API (429) after {self._max_retries} retries: {detail}")
        if isinstance(status, int) and (status >= 500 or status in (408, 409)):
            return TransientError(f"Anthropic API error {status} after {self._max_retries} retries: {detail}")
        return LlmUnavailable(unavailable_text(status, detail, self.model))


def _maybe_billed(exc: BaseException) -> bool:
    """Whether a failed attempt may have been processed: a lost or late answer, not a connection never made."""
    import anthropic

    if not isinstance(exc, anthropic.APIConnectionError):  # APITimeoutError is one too
        return False
    seen: set[int] = set()
    cause = exc.__cause__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if type(cause).__name__ in ("ConnectError", "ConnectTimeout"):
            return False
        cause = cause.__cause__ or cause.__context__
    return True


def api_key_from_env() -> str | None:
    """The API key, from the environment only (DESIGN.md section 8)."""
    return os.environ.get("ANTHROPIC_API_KEY") or None
