"""How big a pool should be for its demand: up at once, down after a cooldown.

Plain Python (no Ray), so any pool can use it: job workers, embedding workers, model hosts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ember.config.pools import PoolConfig

__all__ = ["ScalingPolicy"]


class ScalingPolicy:
    """The size of one pool between ``min_size`` and ``max_size``.

    :meth:`desired` is asked with the pool's size and its demand (queued plus running work
    items). The size the demand needs is ``ceil(demand / target_per_worker)``, clamped to
    ``[min_size, max_size]``:

    - at or above the current size, it is returned at once (scale up, or hold);
    - below it, the pool shrinks to a size ``s`` only once every demand seen over the last
      ``cooldown_s`` seconds needed at most ``s`` workers, and demand has not risen during
      those seconds: any rise restarts the cooldown. Until then the current size is kept.

    The answer is always within ``[min_size, max_size]`` (a current size above ``max_size``
    is cut at once). The policy keeps the state of the cooldown, so one instance serves one
    pool; the caller resizes the pool and passes its real size next time (a pool that lags
    behind the answer is fine). ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        min_size: int,
        max_size: int,
        target_per_worker: float,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """:raises ValueError: ``min_size`` is negative, ``max_size`` is below 1 or below
        ``min_size``, ``target_per_worker`` is not a positive finite number, or
        ``cooldown_s`` is negative or not finite."""
        if min_size < 0:
            raise ValueError(f"min_size must be 0 or more, not {min_size}")
        if max_size < 1:
            raise ValueError(f"max_size must be 1 or more, not {max_size}")
        if max_size < min_size:
            raise ValueError(f"max_size ({max_size}) is below min_size ({min_size})")
        if not (math.isfinite(target_per_worker) and target_per_worker > 0):
            raise ValueError(f"target_per_worker must be above 0, not {target_per_worker}")
        if not (math.isfinite(cooldown_s) and cooldown_s >= 0):
            raise ValueError(f"cooldown_s must be 0 or more, not {cooldown_s}")
        self._min = min_size
        self._max = max_size
        self._per = target_per_worker
        self._cooldown = cooldown_s
        self._clock = clock
        self._since: float | None = None
        self._last_demand = 0
        self._needs: list[tuple[float, int]] = []

    @classmethod
    def of(cls, pool: PoolConfig, clock: Callable[[], float] = time.monotonic) -> ScalingPolicy:
        """The policy of ``pool``'s sizes, target and cooldown."""
        return cls(pool.min_size, pool.max_size, pool.target_per_worker, pool.cooldown_s, clock)

    @property
    def min_size(self) -> int:
        return self._min

    @property
    def max_size(self) -> int:
        return self._max

    @property
    def target_per_worker(self) -> float:
        return self._per

    @property
    def cooldown_s(self) -> float:
        return self._cooldown

    def desired(self, current: int, demand: int) -> int:
        """The size the pool should have now; see the class docstring.

        :raises ValueError: ``current`` or ``demand`` is negative.
        """
        if current < 0:
            raise ValueError(f"current must be 0 or more, not {current}")
        if demand < 0:
            raise ValueError(f"demand must be 0 or more, not {demand}")
        need = max(self._min, min(self._max, math.ceil(round(demand / self._per, 9))))
        current = min(current, self._max)
        if need >= current:
            self._since = None
            self._needs.clear()
            return need
        now = self._clock()
        if self._since is None or demand > self._last_demand:
            self._since = now
            self._needs.clear()
        self._last_demand = demand
        if not self._needs or self._needs[-1][1] != need:
            self._needs.append((now, need))
        start = now - self._cooldown
        if start < self._since:
            return current
        while len(self._needs) > 1 and self._needs[1][0] <= start:
            self._needs.pop(0)
        return min(current, self._needs[0][1])
