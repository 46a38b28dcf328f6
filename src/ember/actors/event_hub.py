"""The EventHub actor: one per cluster, a shell over :class:`ember.jobs.hub.EventHub`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ember.config import EmberConfig
from ember.jobs.events import SqlEventStore
from ember.jobs.hub import EventHub
from ember.jobs.records import DurationHistogram, EventRecord, HubStats
from ember.services import Services

__all__ = ["EventHubActor"]


class EventHubActor:
    """Numbers, batches and fans out job events; flushes on a timer it starts itself."""

    def __init__(self, config: EmberConfig) -> None:
        self._database = Services.build(config).database
        jobs = config.jobs
        self._hub = EventHub(
            SqlEventStore(self._database),
            ring_size=jobs.event_ring_size,
            flush_interval_s=jobs.event_flush_interval_s,
        )
        self._flusher: asyncio.Task[None] | None = None

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._hub.run_flusher())

    async def publish(self, job_id: str, type_: str, data: dict[str, Any]) -> int:
        self._ensure_flusher()
        return await self._hub.publish(job_id, type_, data)

    async def publish_many(
        self, job_id: str, events: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[int]:
        self._ensure_flusher()
        return await self._hub.publish_many(job_id, events)

    async def wait(
        self, job_id: str, after: int, timeout_s: float, limit: int = 1000
    ) -> list[EventRecord] | None:
        self._ensure_flusher()
        return await self._hub.wait(job_id, after, timeout_s, limit)

    async def flush(self) -> int:
        return await self._hub.flush()

    async def stats(self, job_id: str | None = None) -> HubStats:
        return self._hub.stats(job_id)

    async def durations(self) -> dict[tuple[str, str], DurationHistogram]:
        return dict(self._hub.durations)
