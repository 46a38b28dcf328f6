"""A circuit breaker per provider: stop calling a provider that keeps failing, try it again later.

Edges (``failures``, ``open_s`` and ``successes`` come from ``router.breaker_*``)::

    CLOSED    --``failures`` retryable failures in a row-->   OPEN
    OPEN      --``open_s`` passed, on the next allow()-->     HALF_OPEN (one trial call)
    HALF_OPEN --trial succeeded ``successes`` times-->        CLOSED
    HALF_OPEN --trial failed-->                               OPEN (the wait starts again)

While half-open only one call is let through at a time; the others are refused as if open.
The clock is injected (``time.monotonic`` by default), so tests move time by hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    """Where a breaker is."""

    CLOSED = "closed"  # calls pass; failures in a row are counted
    OPEN = "open"  # calls are refused until the open duration has passed
    HALF_OPEN = "half_open"  # one trial call at a time decides: closed again or open again


class CircuitBreaker:
    """The breaker of one provider.

    The router asks :meth:`allow` before every attempt and reports the attempt's end with
    :meth:`record_success` (the provider answered, even with a 4xx: it is up) or
    :meth:`record_failure` (a retryable failure: timeout, unavailable, rate limited).
    Thread-safe.
    """

    def __init__(
        self,
        failures: int = 5,
        open_s: float = 30.0,
        successes: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """:raises ValueError: ``failures`` or ``successes`` below 1, or ``open_s`` not > 0."""
        if failures < 1 or successes < 1 or open_s <= 0:
            raise ValueError("failures and successes must be >= 1 and open_s > 0")
        self._failures_to_open = failures
        self._open_s = open_s
        self._successes_to_close = successes
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._successes = 0
        self._opened_at = 0.0
        self._trial = False

    @property
    def state(self) -> BreakerState:
        """The state now; an open breaker whose wait has passed reads ``half_open``."""
        with self._lock:
            if self._state is BreakerState.OPEN and self._wait_over():
                return BreakerState.HALF_OPEN
            return self._state

    def retry_in_s(self) -> float:
        """Seconds until an open breaker lets a trial through (0 when not open)."""
        with self._lock:
            if self._state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._opened_at + self._open_s - self._clock())

    def allow(self) -> bool:
        """Whether a call may go now. ``True`` while half-open takes the one trial slot."""
        with self._lock:
            if self._state is BreakerState.OPEN:
                if not self._wait_over():
                    return False
                self._state, self._successes, self._trial = BreakerState.HALF_OPEN, 0, False
            if self._state is BreakerState.HALF_OPEN:
                if self._trial:
                    return False
                self._trial = True
            return True

    def record_success(self) -> None:
        """The call got an answer: reset the failure count; a trial counts towards closing."""
        with self._lock:
            self._failures = 0
            if self._state is BreakerState.HALF_OPEN:
                self._trial = False
                self._successes += 1
                if self._successes >= self._successes_to_close:
                    self._state = BreakerState.CLOSED

    def record_failure(self) -> None:
        """The call failed retryably: count it; open on the threshold or a failed trial."""
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or self._failures >= self._failures_to_open:
                self._state = BreakerState.OPEN
                self._opened_at = self._clock()
                self._trial = False

    def release(self) -> None:
        """The call ended with neither (cancelled, or a bug): free the trial slot, if it held it."""
        with self._lock:
            self._trial = False

    def _wait_over(self) -> bool:
        return self._clock() >= self._opened_at + self._open_s
