"""The cluster's store of recent traces: held by the EventHub actor, fed by every process.

Each process's spans leave it in batches (see :mod:`ember.observability.tracing`) as one call
to the hub that nobody waits for; the API reads a trace back with one call. A hub that is
gone drops the batch (traces are a debugging aid, never worth blocking work for) and a restarted
hub starts empty.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ember.actors.names import HUB
from ember.actors.singleton import NamedActor
from ember.errors import ServiceUnavailable
from ember.observability.traces import SpanRecord

__all__ = ["RayTraceStore"]

log = logging.getLogger(__name__)


class RayTraceStore:
    """:class:`~ember.observability.traces.TraceStore` over the EventHub actor (looked up on
    first use, or the ``hub`` handle given)."""

    def __init__(self, hub: Any = None) -> None:
        self._hub = NamedActor(HUB, "the event hub", hub)

    def add(self, spans: Sequence[SpanRecord]) -> None:
        try:
            handle = self._hub.handle()
        except ServiceUnavailable as exc:
            log.debug("%d spans dropped: %s", len(spans), exc.detail)
            return
        handle.add_spans.remote(list(spans))

    async def spans(self, trace_id: str) -> list[SpanRecord]:
        """:raises ServiceUnavailable: the hub did not answer."""
        found: list[SpanRecord] = await self._hub.call("trace", trace_id)
        return found
