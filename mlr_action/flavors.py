"""Hugging Face Jobs hardware flavors and a conservative built-in price table.

Guarantees: :data:`KNOWN_FLAVORS` lists the flavor names HF Jobs accepts (as
``huggingface_hub.JobHardware`` does), ordered from smallest to largest within
each family, and :data:`BUILTIN_PRICES_USD_PER_HOUR` has a price for every one
of them. The built-in prices are rounded *up* from the public price list, so a
worst-case estimate made from them never undercounts; the HF backend replaces
them with live prices from the hardware catalog when it can fetch them.
"""

from __future__ import annotations

# Ordered by capability: "the next larger allowed flavor" walks this order.
BUILTIN_PRICES_USD_PER_HOUR: dict[str, float] = {
    "cpu-basic": 0.01,
    "cpu-upgrade": 0.03,
    "cpu-xl": 1.00,  # 124 GB of memory; cpu-performance has 256 GB
    "cpu-performance": 1.90,
    "t4-small": 0.40,
    "t4-medium": 0.60,
    "l4x1": 0.80,
    "a10g-small": 1.00,
    "a10g-large": 1.50,
    "l40sx1": 1.80,
    "a10g-largex2": 3.00,
    "l4x4": 3.80,
    "rtx-pro-6000": 3.00,
    "a100-large": 2.50,
    "a10g-largex4": 5.00,
    "h200": 5.00,
    "l40sx4": 8.30,
    "rtx-pro-6000x2": 6.00,
    "a100x4": 10.00,
    "h200x2": 10.00,
    "rtx-pro-6000x4": 12.00,
    "l40sx8": 23.50,
    "a100x8": 20.00,
    "h200x4": 20.00,
    "rtx-pro-6000x8": 24.00,
    "h200x8": 40.00,
}

KNOWN_FLAVORS: tuple[str, ...] = tuple(BUILTIN_PRICES_USD_PER_HOUR)


def price_per_hour(flavor: str, prices: dict[str, float] | None = None) -> float:
    """USD per hour of ``flavor``: the live price when given, else the built-in one."""
    if prices and flavor in prices:
        return prices[flavor]
    return BUILTIN_PRICES_USD_PER_HOUR.get(flavor, max(BUILTIN_PRICES_USD_PER_HOUR.values()))


def suggest_flavor(name: str) -> str | None:
    """The known flavor closest to a misspelled ``name``, if any is close."""
    import difflib

    matches = difflib.get_close_matches(name, KNOWN_FLAVORS, n=1, cutoff=0.6)
    return matches[0] if matches else None
