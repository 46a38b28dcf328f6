"""Per-principal token buckets.

Each key (a principal's name) has a bucket of at most ``burst`` tokens that refills at
``rate_per_s``; a request takes one token or is refused with the time until one is there.
Memory stays bounded: a bucket untouched for ``burst / rate_per_s`` seconds is full, the same
as no bucket, so it is dropped; beyond ``max_buckets`` the least recently used go first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ember.errors import RateLimited

__all__ = ["RateLimiter"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by principal; thread-safe.

    :param rate_per_s: tokens added per second; ``0`` turns limiting off.
    :param burst: bucket size, the most requests allowed at once.
    :param clock: monotonic seconds (tests pass a fake).
    :param max_buckets: most buckets held at once.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = 10_000,
    ) -> None:
        if rate_per_s < 0 or burst < 1 or max_buckets < 1:
            raise ValueError("rate_per_s must be >= 0, burst and max_buckets >= 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether requests are limited at all."""
        return self._rate > 0

    def __len__(self) -> int:
        """Buckets held now."""
        return len(self._buckets)

    def check(self, key: str) -> None:
        """Take one token from ``key``'s bucket.

        :raises RateLimited: the bucket is empty; ``retry_after_s`` is the wait for a token.
        """
        if not self.enabled:
            return
        with self._lock:
            now = self._clock()
            self._drop_idle(now)
            bucket = self._buckets.pop(key, None)
            if bucket is None:
                tokens = self._burst
            else:
                tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            self._buckets[key] = _Bucket(tokens, now)
            if len(self._buckets) > self._max_buckets:
                self._buckets.popitem(last=False)
        if not allowed:
            raise RateLimited(
                f"{key!r} is over its rate limit of {self._rate:g} requests/s "
                f"(burst {self._burst:g})",
                retry_after_s=(1 - tokens) / self._rate,
            )

    def _drop_idle(self, now: float) -> None:
        refill_s = self._burst / self._rate
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now - oldest.updated < refill_s:
                return
            self._buckets.popitem(last=False)
