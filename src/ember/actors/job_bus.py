"""The job bus on a cluster: the EventHub and JobDispatcher actors as the API and the workers
reach them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ray
from ray.exceptions import RayActorError

from ember.actors.names import DISPATCHER, HUB, NAMESPACE
from ember.jobs.records import DurationHistogram, EventRecord, Telemetry
from ember.jobs.runner import EventsLost

__all__ = ["RayJobBus"]


class RayJobBus:
    """:class:`~ember.jobs.protocol.JobBus` over the named actors (looked up on first use,
    or the ``hub`` handle given). A hub that is gone raises :class:`EventsLost`."""

    def __init__(self, hub: Any = None) -> None:
        self._hub = hub
        self._dispatcher: Any = None

    def _hub_actor(self) -> Any:
        if self._hub is None:
            self._hub = ray.get_actor(HUB, namespace=NAMESPACE)
        return self._hub

    def _dispatcher_actor(self) -> Any:
        if self._dispatcher is None:
            self._dispatcher = ray.get_actor(DISPATCHER, namespace=NAMESPACE)
        return self._dispatcher

    async def publish(self, job_id: str, type_: str, data: dict[str, Any]) -> int:
        try:
            seq: int = await self._hub_actor().publish.remote(job_id, type_, data)
        except RayActorError as exc:
            raise EventsLost(f"the event hub is gone: {exc}") from exc
        return seq

    async def publish_many(
        self, job_id: str, events: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[int]:
        try:
            seqs: list[int] = await self._hub_actor().publish_many.remote(job_id, list(events))
        except RayActorError as exc:
            raise EventsLost(f"the event hub is gone: {exc}") from exc
        return seqs

    async def wait(self, job_id: str, after: int, timeout_s: float) -> list[EventRecord] | None:
        events: list[EventRecord] | None = await self._hub_actor().wait.remote(
            job_id, after, timeout_s
        )
        return events

    async def submitted(self, job_id: str) -> None:
        self._dispatcher_actor().notify.remote()

    async def cancel(self, job_id: str) -> None:
        await self._dispatcher_actor().cancel.remote(job_id)

    async def telemetry(self) -> Telemetry:
        durations: dict[
            tuple[str, str], DurationHistogram
        ] = await self._hub_actor().durations.remote()
        stats: dict[str, Any] = await self._dispatcher_actor().stats.remote()
        return Telemetry(durations, int(stats["renewals"]))
