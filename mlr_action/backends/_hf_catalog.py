"""The HF hardware catalog as the hf backend uses it, and the sealed cache that spares a request per tick.

Guarantees:

- :func:`read_catalog` turns ``HfApi.list_jobs_hardware()`` (``JobHardwareInfo``:
  ``unit_cost_usd`` per ``unit_label``, ``ram`` like ``"46 GB"``, an
  ``accelerator`` with the *total* ``vram`` and its ``quantity``) into
  :class:`Hardware` rows: USD per hour, RAM, and GPU memory *per accelerator*
  (the total divided by the count, which never overstates what one process
  gets). A field it cannot read is None, and the built-in table stands in
  for that flavor's memory (:func:`mlr_action.core.flavors.memory_of`).
- :func:`seal` and :func:`unseal` keep what the backend looked up (the
  namespace the token's user is, the catalog and when it was read) in
  ``runs/``, where a fresh checkout of the campaign still has it, but where
  anyone who can push may edit it. So it is sealed with an HMAC keyed by the
  HF token: an edited, forged or foreign cache (another token, another
  endpoint) does not unseal and is read again from HF, so a cached price can
  never lower a charge. The token itself is never written; the key is a hash
  of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from mlr_action.core.flavors import FlavorMemory

UNITS_PER_HOUR = {"second": 3600.0, "minute": 60.0, "hour": 1.0}
CACHE_VERSION = 1
MAX_AGE_S = 3600.0  # the price list is read again once an hour
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(TB|TiB|GB|GiB|MB|MiB)\s*$", re.IGNORECASE)
_GB = {"tb": 1000.0, "tib": 1024.0, "gb": 1.0, "gib": 1.0, "mb": 0.001, "mib": 1 / 1024}


@dataclass(frozen=True)
class Hardware:
    name: str
    usd_per_hour: float | None = None
    ram_gb: float | None = None
    gpu_gb: float | None = None  # per accelerator; 0 with none
    gpus: int | None = None

    @property
    def memory(self) -> FlavorMemory | None:
        if self.ram_gb is None or self.gpu_gb is None or self.gpus is None:
            return None
        return FlavorMemory(ram_gb=self.ram_gb, gpu_gb=self.gpu_gb, gpus=self.gpus)


def size_gb(text: Any) -> float | None:
    """``"46 GB"`` -> 46.0; None for anything else."""
    match = _SIZE.match(str(text)) if isinstance(text, (str, int, float)) else None
    return float(match.group(1)) * _GB[match.group(2).lower()] if match else None


def read_catalog(items: list[Any]) -> list[Hardware]:
    return [_hardware(item) for item in items if isinstance(getattr(item, "name", None), str)]


def _hardware(item: Any) -> Hardware:
    factor = UNITS_PER_HOUR.get(str(getattr(item, "unit_label", "")).lower())
    cost = getattr(item, "unit_cost_usd", None)
    price = round(float(cost) * factor, 6) if factor is not None and _number(cost) and cost >= 0 else None
    accelerator = getattr(item, "accelerator", None)
    if accelerator is None:
        gpu_gb, gpus = 0.0, 0
    else:
        total, count = size_gb(getattr(accelerator, "vram", None)), str(getattr(accelerator, "quantity", ""))
        gpus = int(count) if count.isdigit() and int(count) > 0 else None
        gpu_gb = total / gpus if total is not None and gpus else None
    return Hardware(name=str(item.name), usd_per_hour=price, ram_gb=size_gb(getattr(item, "ram", None)),
                    gpu_gb=gpu_gb, gpus=gpus)


def prices_of(hardware: list[Hardware]) -> dict[str, float]:
    return {h.name: h.usd_per_hour for h in hardware if h.usd_per_hour is not None}


def memory_of_catalog(hardware: list[Hardware]) -> dict[str, FlavorMemory]:
    return {h.name: h.memory for h in hardware if h.memory is not None}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and value != float("inf")


# -- the sealed cache ------------------------------------------------------------


def _key(token: str) -> bytes:
    return hashlib.sha256(b"mlr-action hf cache key\x00" + token.encode()).digest()


def _mac(body: dict[str, Any], token: str) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hmac.new(_key(token), text.encode(), hashlib.sha256).hexdigest()


def seal(*, token: str, endpoint: str, namespace: str | None, hardware: list[Hardware] | None,
         read_at: datetime | None) -> dict[str, Any]:
    body = {
        "v": CACHE_VERSION, "endpoint": endpoint, "namespace": namespace,
        "hardware": None if hardware is None else [asdict(h) for h in hardware],
        "hardware_read_at": read_at.isoformat() if read_at else None,
    }
    return {**body, "mac": _mac(body, token)}


@dataclass(frozen=True)
class Cached:
    namespace: str | None
    hardware: list[Hardware] | None
    read_at: datetime | None


def unseal(data: Any, *, token: str, endpoint: str) -> Cached | None:
    """What ``data`` holds, when it is a cache this token sealed for this endpoint; None otherwise."""
    if not isinstance(data, dict) or data.get("v") != CACHE_VERSION or data.get("endpoint") != endpoint:
        return None
    body = {k: v for k, v in data.items() if k != "mac"}
    try:
        if not hmac.compare_digest(str(data.get("mac", "")), _mac(body, token)):
            return None
        hardware = None if body["hardware"] is None else [Hardware(**h) for h in body["hardware"]]
        read_at = datetime.fromisoformat(body["hardware_read_at"]) if body["hardware_read_at"] else None
    except (KeyError, TypeError, ValueError):
        return None
    namespace = body.get("namespace") if isinstance(body.get("namespace"), str) else None
    return Cached(namespace=namespace, hardware=hardware, read_at=read_at)
