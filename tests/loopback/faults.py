"""The one fault injector the loopback servers share: faults drawn at random, reproducibly.

``Chaos(rate, seed=, kinds=)`` fails about ``rate`` of the requests it is asked about with one of
``kinds`` (what a kind means is the server's: an HTTP status such as ``"429"``, ``"drop"``: no
answer and nothing done, ``"lost"``: done and the answer lost, ``"slow"``: answered after the
client gave up). The same seed draws the same faults in the same order, so a failing run can be
replayed; ``injected`` counts the faults drawn, so a test can prove some were. Thread-safe: the
servers answer on several threads.
"""

from __future__ import annotations

import random
import threading


class Chaos:
    def __init__(self, rate: float, *, seed: int = 0, kinds: tuple[str, ...]) -> None:
        if not 0 <= rate <= 1 or not kinds:
            raise ValueError("chaos needs a rate between 0 and 1 and at least one kind of fault")
        self.rate, self.kinds = rate, kinds
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.injected = 0

    def draw(self) -> str | None:
        """The kind of fault for this request, or None (no fault)."""
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            self.injected += 1
            return self._rng.choice(self.kinds)


class Chaotic:
    """What a loopback server mixes in to take its random faults from a :class:`Chaos`: ``set_chaos`` (rate 0:
    off), ``draw_fault`` (the kind for this request, or None) and ``injected`` (how many so far, over every
    ``set_chaos``: a test turns chaos off to let the campaign finish, then counts)."""

    _chaos: Chaos | None = None
    _injected_before = 0

    def set_chaos(self, rate: float, *, seed: int, kinds: tuple[str, ...]) -> None:
        self._injected_before = self.injected
        self._chaos = Chaos(rate, seed=seed, kinds=kinds) if rate else None

    def draw_fault(self) -> str | None:
        return self._chaos.draw() if self._chaos else None

    @property
    def injected(self) -> int:
        """Faults chaos injected."""
        return self._injected_before + (self._chaos.injected if self._chaos else 0)
