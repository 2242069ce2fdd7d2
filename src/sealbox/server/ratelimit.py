"""Per-principal rate limits (a token bucket per caller), and a throttle for repeated events.

Both live in this process.  Each replica limits what it serves; with several
replicas a caller can get up to the number of replicas times the rate, which
bounds abuse without a shared store on the hot path.  Pending-request caps,
which must hold across replicas, live in the database instead (see the
access-request route).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["EventThrottle", "RateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.rate, self.burst, self._clock, self._max = rate, burst, clock, max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, key: str) -> float:
        """Take one token for ``key``; return 0 if allowed, else seconds until one is free."""
        now = self._clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.burst), updated=now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[key] = bucket  # most recently used last
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


@dataclass
class _Held:
    admitted_at: float
    suppressed: int = 0


class EventThrottle:
    """At most one event per key per ``interval``; the ones held back are counted.

    Made for audit events a caller can provoke at will (refused requests): a
    flood writes one event per key per interval, and the next admitted event
    says how many were left out.  The table keeps the ``max_keys`` most recently
    seen keys; a key evicted with a count pending loses that count, which
    understates a flood but never lets one grow the table.
    """

    def __init__(self, interval: float, *, max_keys: int = 10_000) -> None:
        self.interval, self._max = interval, max_keys
        self._held: OrderedDict[tuple[str, ...], _Held] = OrderedDict()

    def admit(self, key: tuple[str, ...], now: float) -> int | None:
        """None to hold this event back; else how many were held back before it."""
        held = self._held.pop(key, None)
        if held is not None and now - held.admitted_at < self.interval:
            held.suppressed += 1
            self._held[key] = held  # most recently seen last
            return None
        self._held[key] = _Held(admitted_at=now)
        while len(self._held) > self._max:
            self._held.popitem(last=False)
        return held.suppressed if held is not None else 0
