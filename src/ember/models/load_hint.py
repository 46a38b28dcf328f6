"""What the router knows about hosted models when it orders equal candidates: a snapshot of
the registry's resident models, refreshed in the background so a hint never waits."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection

from ember.models.records import LoadedModel

__all__ = ["ResidencyHint"]

log = logging.getLogger(__name__)


class ResidencyHint:
    """A :data:`~ember.providers.router.LoadHint` over ``loaded()`` (the registry's ``ps``).

    For a ``hosted`` provider it answers ``(loaded, queue_depth)`` from the last snapshot, the
    depth being the calls per host (a model's calls over its hosts, rounded up); a
    snapshot older than ``max_age_s`` is refreshed in a background task on the caller's event
    loop (the answer is the old one meanwhile). A remote provider's models are taken as
    loaded with an empty queue: ember cannot see them, and should not rank them below a local
    model that must still load.
    """

    def __init__(
        self,
        loaded: Callable[[], Awaitable[list[LoadedModel]]],
        hosted: Collection[str],
        *,
        max_age_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loaded = loaded
        self._hosted = frozenset(hosted)
        self._max_age_s = max_age_s
        self._clock = clock
        self._resident: dict[str, int] = {}
        self._taken = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None

    def __call__(self, provider: str, model: str) -> tuple[bool, int]:
        if provider not in self._hosted:
            return True, 0
        self._refresh_if_stale()
        depth = self._resident.get(model)
        return (depth is not None, depth or 0)

    async def refresh(self) -> None:
        """Take a new snapshot now."""
        models = await self._loaded()
        self._resident = {m.name: -(-m.queue_depth // max(1, m.replicas)) for m in models}
        self._taken = self._clock()

    def _refresh_if_stale(self) -> None:
        if self._clock() - self._taken < self._max_age_s:
            return
        if self._refreshing is not None and not self._refreshing.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._refreshing = loop.create_task(self._quiet_refresh())

    async def _quiet_refresh(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:
            log.warning("cannot read which models are loaded: %s", exc)
            self._taken = self._clock()
