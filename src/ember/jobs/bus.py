"""The :class:`~ember.jobs.protocol.JobBus` of one process: the hub and the dispatcher as
plain objects on this event loop (``RayJobBus`` in ``ember.actors`` reaches their actors)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from ember.errors import NotReady
from ember.jobs.dispatcher import LeaseDispatcher
from ember.jobs.hub import EventHub
from ember.jobs.records import EventRecord, Telemetry

__all__ = ["LocalJobBus", "NoJobSystem"]


class LocalJobBus:
    """A hub and a dispatcher in this process, the dispatcher ticking every ``poll_s``."""

    def __init__(self, hub: EventHub, dispatcher: LeaseDispatcher, poll_s: float = 0.2) -> None:
        self.hub = hub
        self.dispatcher = dispatcher
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def publish(self, job_id: str, type_: str, data: dict[str, Any]) -> int:
        return await self.hub.publish(job_id, type_, data)

    async def publish_many(
        self, job_id: str, events: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[int]:
        return await self.hub.publish_many(job_id, events)

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


class NoJobSystem:
    """The :class:`~ember.jobs.protocol.JobBus` of a process that reaches no job system (an
    API built without one, as in tests of other routes): reading stored jobs works, anything
    live raises :class:`~ember.errors.NotReady`."""

    def _absent(self) -> NotReady:
        return NotReady("no job system runs for this process (start ember with `ember up`)")

    async def publish(self, job_id: str, type_: str, data: dict[str, Any]) -> int:
        raise self._absent()

    async def publish_many(
        self, job_id: str, events: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[int]:
        raise self._absent()

    async def wait(self, job_id: str, after: int, timeout_s: float) -> list[EventRecord] | None:
        raise self._absent()

    async def submitted(self, job_id: str) -> None:
        raise self._absent()

    async def cancel(self, job_id: str) -> None:
        raise self._absent()

    async def telemetry(self) -> Telemetry:
        raise self._absent()
