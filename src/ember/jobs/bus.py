"""How the API reaches the running job system: publish events, wait for them, nudge the
dispatcher, forward a cancel. In a cluster these are calls to the EventHub and JobDispatcher
actors (``ember.actors``); :class:`LocalJobBus` does the same in one process."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Protocol

from ember.jobs.dispatcher import Dispatcher
from ember.jobs.hub import DurationHistogram, EventHub
from ember.jobs.records import EventRecord

__all__ = ["JobBus", "LocalJobBus", "Telemetry"]


@dataclass(frozen=True)
class Telemetry:
    """What the running job system reports for the metrics endpoint."""

    durations: dict[tuple[str, str], DurationHistogram]
    """Attempt durations by (kind, outcome)."""
    renewals: int
    """Lease renewals made by all workers since the job system started."""


class JobBus(Protocol):
    """The live side of the job system, as the API sees it."""

    async def publish(self, job_id: str, type_: str, data: dict[str, Any]) -> int:
        """Publish an event of the job; returns its sequence number."""
        ...

    async def wait(self, job_id: str, after: int, timeout_s: float) -> list[EventRecord] | None:
        """See :meth:`ember.jobs.hub.EventHub.wait`."""
        ...

    async def submitted(self, job_id: str) -> None:
        """A job was queued: let the dispatcher look now rather than at its next poll."""
        ...

    async def cancel(self, job_id: str) -> None:
        """A running job is now ``cancelling``: tell its worker at once (best effort; the
        worker also learns it at its next lease renewal)."""
        ...

    async def telemetry(self) -> Telemetry:
        """Durations and lease renewals, for ``/metrics``."""
        ...


class LocalJobBus:
    """A hub and a dispatcher in this process, the dispatcher ticking every ``poll_s``."""

    def __init__(self, hub: EventHub, dispatcher: Dispatcher, poll_s: float = 0.2) -> None:
        self.hub = hub
        self.dispatcher = dispatcher
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def publish(self, job_id: str, type_: str, data: dict[str, Any]) -> int:
        return await self.hub.publish(job_id, type_, data)

    async def wait(self, job_id: str, after: int, timeout_s: float) -> list[EventRecord] | None:
        return await self.hub.wait(job_id, after, timeout_s)

    async def submitted(self, job_id: str) -> None:
        self._wake.set()

    async def cancel(self, job_id: str) -> None:
        await self.dispatcher.cancel(job_id)

    async def telemetry(self) -> Telemetry:
        return Telemetry(dict(self.hub.durations), await self.dispatcher.renewals())

    def start(self) -> None:
        """Start the flusher and the dispatch loop on the running event loop."""
        self._tasks = [
            asyncio.create_task(self.hub.run_flusher()),
            asyncio.create_task(self._dispatch()),
        ]

    async def stop(self) -> None:
        """Stop both loops (the flusher flushes once more)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _dispatch(self) -> None:
        while True:
            await self.dispatcher.tick()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()
            self._wake.clear()
