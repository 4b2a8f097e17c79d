"""Hugging Face Jobs hardware flavors: a conservative built-in price table and the memory of each.

Guarantees: :data:`KNOWN_FLAVORS` lists the flavor names HF Jobs accepts (as
``huggingface_hub.JobHardware`` does), ordered from smallest to largest within
each family, and :data:`BUILTIN_PRICES_USD_PER_HOUR` has a price for every one
of them. The built-in prices are rounded *up* from the public price list, so a
worst-case estimate made from them never undercounts; the HF backend replaces
them with live prices from the hardware catalog when it can fetch them.

:data:`BUILTIN_MEMORY` gives every known flavor its RAM and the memory of
*one* of its accelerators (what a single training process can use; a flavor
with four 24 GB GPUs does not give one process more than 24 GB), from the
public price list (https://huggingface.co/docs/hub/jobs-pricing). It is the
fallback of the live hardware catalog, which the HF backend reads when it can
(:func:`memory_of`).
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class FlavorMemory:
    """The memory one job gets on a flavor: RAM, and GPU memory per accelerator (0 without one)."""

    ram_gb: float
    gpu_gb: float = 0.0
    gpus: int = 0


def _gpu(ram_gb: float, total_gpu_gb: float, gpus: int) -> FlavorMemory:
    return FlavorMemory(ram_gb=ram_gb, gpu_gb=total_gpu_gb / gpus, gpus=gpus)


# RAM, total GPU memory and accelerator count, as https://huggingface.co/docs/hub/jobs-pricing lists them.
BUILTIN_MEMORY: dict[str, FlavorMemory] = {
    "cpu-basic": FlavorMemory(16), "cpu-upgrade": FlavorMemory(32),
    "cpu-xl": FlavorMemory(124), "cpu-performance": FlavorMemory(256),
    "t4-small": _gpu(15, 16, 1), "t4-medium": _gpu(30, 16, 1),
    "l4x1": _gpu(30, 24, 1), "l4x4": _gpu(186, 96, 4),
    "a10g-small": _gpu(15, 24, 1), "a10g-large": _gpu(46, 24, 1),
    "a10g-largex2": _gpu(92, 48, 2), "a10g-largex4": _gpu(184, 96, 4),
    "l40sx1": _gpu(62, 48, 1), "l40sx4": _gpu(382, 192, 4), "l40sx8": _gpu(1534, 384, 8),
    "a100-large": _gpu(142, 80, 1), "a100x4": _gpu(568, 320, 4), "a100x8": _gpu(1136, 640, 8),
    "h200": _gpu(256, 141, 1), "h200x2": _gpu(512, 282, 2), "h200x4": _gpu(1024, 564, 4), "h200x8": _gpu(2048, 1128, 8),
    "rtx-pro-6000": _gpu(256, 96, 1), "rtx-pro-6000x2": _gpu(512, 192, 2),
    "rtx-pro-6000x4": _gpu(1024, 384, 4), "rtx-pro-6000x8": _gpu(2048, 768, 8),
}


def memory_of(flavor: str, live: dict[str, FlavorMemory] | None = None) -> FlavorMemory | None:
    """The memory of ``flavor``: the live catalog's when it has the flavor, else the built-in table's, else None."""
    if live and flavor in live:
        return live[flavor]
    return BUILTIN_MEMORY.get(flavor)


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
