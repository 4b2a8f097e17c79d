"""What a Claude call costs: the one price table, and the estimate checked before every call.

Guarantees:

- :data:`PRICES` is the only place model prices live (USD per million tokens,
  from Anthropic's published model pages). A model missing from it is priced
  at :data:`UNKNOWN_PRICE`, the most expensive entry, and :func:`price_for`
  says so, so an unknown model can only be over-charged, never under-charged.
- :func:`cost_usd` prices a response's ``usage`` object as the API returns it:
  input, output, cache writes and reads, and web searches
  (:data:`WEB_SEARCH_USD` each).
- :func:`estimate_usd` is the worst case of one call before it is made: the
  prompt at :data:`CHARS_PER_TOKEN` characters a token (fewer characters per
  token than real text has, so more tokens than the API will count), every
  output token up to ``max_tokens``, and every allowed search with its results.
- Pure: no I/O, no SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_MODEL = "claude-sonnet-5-5"
CHARS_PER_TOKEN = 3.0  # English prose runs ~4 characters a token; 3 over-counts on purpose
WEB_SEARCH_USD = 0.01  # $10 per 1,000 searches, on top of the tokens the results add
SEARCH_RESULT_TOKENS = 8_000  # input tokens one search's results may add, for the estimate
LONG_PROMPT_TOKENS = 100_000  # above this, a model with a long-prompt rate charges that rate


@dataclass(frozen=True)
class Price:
    """USD per million tokens. Cache writes (5 min) are 1.25x input, cache reads 0.1x."""

    input: float
    output: float
    long_input: float | None = None  # for prompts over LONG_PROMPT_TOKENS, when the model has a tier
    long_output: float | None = None

    def rates(self, prompt_tokens: int) -> tuple[float, float]:
        if prompt_tokens > LONG_PROMPT_TOKENS and self.long_input is not None:
            return self.long_input, self.long_output or self.output
        return self.input, self.output


PRICES: dict[str, Price] = {
    "claude-fable-5-1": Price(10.0, 50.0),
    "claude-opus-5-5": Price(4.0, 20.0),
    "claude-opus-5": Price(5.0, 25.0),
    "claude-sonnet-5-5": Price(2.0, 10.0),
    "claude-sonnet-5": Price(2.0, 10.0),
    "claude-haiku-5-5": Price(0.10, 0.50, long_input=0.50, long_output=2.50),
    "claude-opus-4-8": Price(5.0, 25.0),
    "claude-opus-4-7": Price(5.0, 25.0),
    "claude-opus-4-6": Price(5.0, 25.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-5-20251101": Price(5.0, 25.0),
    "claude-sonnet-4-6": Price(3.0, 15.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4-5-20250929": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-haiku-4-5-20251001": Price(1.0, 5.0),
}
UNKNOWN_PRICE = Price(
    max(p.input for p in PRICES.values()), max(p.output for p in PRICES.values())
)


def price_for(model: str) -> tuple[Price, str]:
    """The model's price, and a note when it had to be guessed (empty when known)."""
    if model in PRICES:
        return PRICES[model], ""
    note = (
        f"{model} is not in the price table (mlr_action/proposers/pricing.py): priced conservatively "
        f"at ${UNKNOWN_PRICE.input:g}/${UNKNOWN_PRICE.output:g} per million input/output tokens"
    )
    return UNKNOWN_PRICE, note


def _count(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0


def web_searches(usage: dict[str, Any]) -> int:
    server = usage.get("server_tool_use")
    return _count(server, "web_search_requests") if isinstance(server, dict) else 0


def cost_usd(model: str, usage: dict[str, Any]) -> float:
    """The price of one response's ``usage`` (as the API returns it) under ``model``."""
    price, _ = price_for(model)
    fresh = _count(usage, "input_tokens")
    written = _count(usage, "cache_creation_input_tokens")
    read = _count(usage, "cache_read_input_tokens")
    rate_in, rate_out = price.rates(fresh + written + read)
    tokens = fresh * rate_in + written * 1.25 * rate_in + read * 0.1 * rate_in + _count(usage, "output_tokens") * rate_out
    return tokens / 1e6 + web_searches(usage) * WEB_SEARCH_USD


def prompt_tokens(text_chars: int) -> int:
    """An over-estimate of the tokens of a prompt of ``text_chars`` characters."""
    return int(text_chars / CHARS_PER_TOKEN) + 1


def estimate_usd(model: str, *, prompt_chars: int, max_tokens: int, searches: int = 0) -> float:
    """The most one call may cost: the prompt, ``max_tokens`` of output, and ``searches`` with their results."""
    price, _ = price_for(model)
    tokens_in = prompt_tokens(prompt_chars) + searches * SEARCH_RESULT_TOKENS
    rate_in, rate_out = price.rates(tokens_in)
    return (tokens_in * rate_in + max_tokens * rate_out) / 1e6 + searches * WEB_SEARCH_USD
