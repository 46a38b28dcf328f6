"""The EventHub actor: one per cluster, a shell over :class:`ember.jobs.hub.EventHub`.

Ray restarts it when it dies (see :mod:`ember.actors.builder`); each incarnation has an
``epoch`` of its own. It also keeps the cluster's recent traces
(:class:`~ember.observability.traces.RecentTraces`; see :mod:`ember.actors.trace_store`).
Events the last one buffered but had not stored are gone, so:

- jobs whose first event is older than this incarnation are ``inherited``: their numbering
  resumes past every number the last one may have handed out (see :mod:`ember.jobs.hub`);
- :meth:`EventHubActor.publish_checked` refuses a publisher whose earlier events of the job
  were numbered by another incarnation and are not all stored (a job worker's attempt whose
  events were lost), so the attempt is abandoned and run again whole rather than leaving a
  hole in its stream.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from ember.config import EmberConfig
from ember.jobs.events import SqlEventStore
from ember.jobs.hub import EventHub
from ember.jobs.records import DurationHistogram, EventRecord, HubStats
from ember.observability import configure_logging
from ember.observability.traces import RecentTraces, SpanRecord
from ember.services import Services
from ember.storage.clock import utcnow

__all__ = ["EventHubActor"]


class EventHubActor:
    """Numbers, batches and fans out job events; flushes on a timer it starts itself."""

    def __init__(self, config: EmberConfig) -> None:
        configure_logging("ember-event-hub", config.logging.level, config.logging.format)
        self._database = Services.build(config).database
        self.epoch = uuid.uuid4().hex
        jobs = config.jobs
        store = self._store = SqlEventStore(self._database)
        began = utcnow()

        def inherited(job_id: str) -> bool:
            first = store.first_at(job_id)
            return first is None or first < began

        self._hub = EventHub(
            store,
            ring_size=jobs.event_ring_size,
            flush_interval_s=jobs.event_flush_interval_s,
            inherited=inherited,
        )
        self._flusher: asyncio.Task[None] | None = None
        self._traces = RecentTraces(config.tracing.recent_traces, config.tracing.spans_per_trace)

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

    async def publish_checked(
        self,
        job_id: str,
        events: Sequence[tuple[str, dict[str, Any]]],
        since: tuple[str, int] | None,
    ) -> tuple[str, list[int] | None]:
        """This incarnation's epoch, and the numbers of ``events``.

        ``since`` is the epoch that numbered the publisher's last event of the job, and that
        event's number (``None``: no check, as for an attempt's first event). When another
        incarnation numbered it and it is not stored, events of the publisher may be lost:
        nothing is published and the numbers are ``None``.
        """
        if since is not None and since[0] != self.epoch:
            last = since[1]
            stored = await asyncio.to_thread(self._store.after, job_id, last - 1, 1)
            if not stored or stored[0].seq != last:
                return self.epoch, None
        return self.epoch, await self.publish_many(job_id, events)

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

    async def add_spans(self, spans: Sequence[SpanRecord]) -> None:
        self._traces.add(spans)

    async def trace(self, trace_id: str) -> list[SpanRecord]:
        return self._traces.get(trace_id)
