"""The HF hardware catalog as the hf backend uses it, the sealed cache that spares a request per tick, and the account.

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
- :class:`CatalogLookups` is the backend's side of both: ``prices()`` are
  live USD per hour, the catalog read at most once an hour (when it cannot
  be read they are None and ``prices_note`` says why, so the step prices
  from the built-in table and says so); ``flavor_memory()`` gives the same
  catalog's memory; ``use_cache`` and ``cache`` take and give the sealed
  cache, so a tick with nothing to do asks HF only for the campaign's jobs;
  ``account()`` and ``flavors()`` are what the preflight asks (whoami, and the
  live catalog's flavors).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Callable

from mlr_action.backends._hf_calls import MESSAGES, HfCalls
from mlr_action.core.flavors import FlavorMemory
from mlr_action.core.jobs import BackendError

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


def prices_per_hour(hardware: list[Any]) -> dict[str, float]:
    """USD per hour by flavor from the hardware catalog (which prices per ``unit_label``)."""
    return prices_of(read_catalog(hardware))


# -- the backend's lookups: the catalog, the account, and what a tick need not ask again --------------


class CatalogLookups(HfCalls):
    """The catalog and account half of :class:`mlr_action.backends.hf.HfBackend` (kept by the step in runs/)."""

    prices_note: str | None
    clock: Callable[[], datetime]
    token: Callable[[], str]
    _whoami: str | None
    _hardware: list[Hardware] | None
    _hardware_read_at: datetime | None
    _cache_changed: bool
    _token: str | None
    _token_lookup: Callable[[], str | None]

    def prices(self) -> dict[str, float] | None:
        """Live USD per hour by flavor (the catalog, read at most hourly); None, with ``prices_note``, when unknown."""
        hardware = self._catalog()
        if hardware is None:
            return None
        prices = prices_of(hardware)
        self.prices_note = None if prices else MESSAGES["prices-fallback"].format(why="the catalog listed no prices")
        return prices or None

    def flavor_memory(self) -> dict[str, FlavorMemory] | None:
        """RAM and GPU memory per accelerator by flavor, from the catalog :meth:`prices` read; None before or without it."""
        return memory_of_catalog(self._hardware) if self._hardware is not None else None

    def use_cache(self, data: Any) -> None:
        """Take the namespace and a catalog under an hour old from ``data``, when this token sealed it; else nothing."""
        token = self._token or os.environ.get("HF_TOKEN") or self._token_lookup()
        cached = unseal(data, token=token, endpoint=self.api.endpoint) if token else None
        if cached is None:
            return
        if cached.namespace and self._namespace is None:
            self._namespace = self._whoami = cached.namespace
        if cached.hardware is not None and self._fresh(cached.read_at):
            self._hardware, self._hardware_read_at = cached.hardware, cached.read_at

    def cache(self) -> dict[str, Any] | None:
        """What to keep for the next tick, sealed; None when nothing new was looked up."""
        if not self._cache_changed:
            return None
        return seal(token=self.token(), endpoint=self.api.endpoint, namespace=self._whoami,
                    hardware=self._hardware, read_at=self._hardware_read_at)

    def _fresh(self, read_at: datetime | None) -> bool:
        age = (self.clock() - read_at).total_seconds() if read_at is not None else -1.0
        return 0 <= age < MAX_AGE_S

    def _catalog(self) -> list[Hardware] | None:
        if self._hardware is not None and self._fresh(self._hardware_read_at):
            return self._hardware
        try:
            items = self._call("reading the hardware catalog", self.api.list_jobs_hardware, namespaced=False)
        except BackendError as exc:
            self.prices_note = MESSAGES["prices-fallback"].format(why=str(exc).rstrip("."))
            return None
        self._hardware, self._hardware_read_at = read_catalog(items), self.clock()
        self._cache_changed = True
        return self._hardware

    # -- preflight (mlr validate --backend hf, the pull request check) -------------

    def account(self) -> tuple[str, list[str]]:
        """The token's user and the organizations it belongs to (whoami)."""
        self.token()
        me = self._call("checking the token (whoami)", lambda: self.api.whoami(cache=True), namespaced=False)
        return str(me["name"]), [str(o.get("name")) for o in me.get("orgs") or [] if isinstance(o, dict)]

    def flavors(self) -> list[str]:
        """The flavors of the live hardware catalog."""
        hardware = self._call("reading the hardware catalog", self.api.list_jobs_hardware, namespaced=False)
        return [str(item.name) for item in hardware]
