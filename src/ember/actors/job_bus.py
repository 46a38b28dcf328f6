"""The job bus on a cluster: the EventHub and JobDispatcher actors as the API and the workers
reach them.

Both are reached through :class:`~ember.actors.singleton.NamedActor`: a call that finds one
gone or restarting is retried on a handle looked up again, then answered with
:class:`~ember.errors.ServiceUnavailable`. Publishing is never retried (a publish that failed
may have been numbered): it raises :class:`EventsLost`, and a job worker leaves the attempt to
be queued again.

A job's attempt starts with its ``state: running`` event; for each later event the bus tells
the hub which incarnation (epoch) numbered the attempt's last event, and which number it got.
A restarted hub that finds that event not stored (it was lost with the hub that numbered it)
publishes nothing, and the bus raises :class:`EventsLost`: the attempt runs again whole
instead of streaming with a hole.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from ember.actors.names import DISPATCHER, HUB
from ember.actors.singleton import NamedActor
from ember.errors import ServiceUnavailable
from ember.jobs.records import DurationHistogram, EventRecord, Telemetry
from ember.jobs.runner import EventsLost

__all__ = ["RayJobBus"]

_FINAL = frozenset({"succeeded", "failed", "cancelled"})

MAX_ATTEMPTS_TRACKED = 10_000
"""Attempts whose epoch a bus remembers (the oldest are forgotten, and then not checked)."""


class RayJobBus:
    """:class:`~ember.jobs.protocol.JobBus` over the named actors (looked up on first use,
    or the ``hub`` handle given). A hub that is gone raises :class:`EventsLost` on publish and
    :class:`ServiceUnavailable` elsewhere."""

    def __init__(self, hub: Any = None) -> None:
        self._hub = NamedActor(HUB, "the event hub", hub)
        self._dispatcher = NamedActor(DISPATCHER, "the job dispatcher")
        self._last: OrderedDict[str, tuple[str, int]] = OrderedDict()
        """Per running attempt: the epoch that numbered its last event, and that number."""

    async def publish(self, job_id: str, type_: str, data: dict[str, Any]) -> int:
        return (await self.publish_many(job_id, [(type_, data)]))[-1]

    async def publish_many(
        self, job_id: str, events: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[int]:
        events = list(events)
        if not events:
            return []
        states = [data.get("state") for type_, data in events if type_ == "state"]
        starts = "running" in states
        since = None if starts else self._last.get(job_id)
        try:
            epoch, seqs = await self._hub.call(
                "publish_checked", job_id, events, since, retry=False
            )
        except ServiceUnavailable as exc:
            self._last.pop(job_id, None)
            raise EventsLost(f"the event hub is gone: {exc.detail}") from exc
        if seqs is None:
            self._last.pop(job_id, None)
            raise EventsLost(
                f"the event hub was restarted while job {job_id} ran and lost events of this "
                "attempt it had not stored"
            )
        if _FINAL.intersection(states):
            self._last.pop(job_id, None)
        elif starts or job_id in self._last:
            self._last[job_id] = (epoch, seqs[-1])
            self._last.move_to_end(job_id)
            while len(self._last) > MAX_ATTEMPTS_TRACKED:
                self._last.popitem(last=False)
        published: list[int] = seqs
        return published

    async def wait(self, job_id: str, after: int, timeout_s: float) -> list[EventRecord] | None:
        """See :meth:`ember.jobs.hub.EventHub.wait`.

        :raises ServiceUnavailable: the hub is gone and did not come back within the retries.
        """
        events: list[EventRecord] | None = await self._hub.call("wait", job_id, after, timeout_s)
        return events

    async def submitted(self, job_id: str) -> None:
        self._dispatcher.send("notify")

    async def cancel(self, job_id: str) -> None:
        await self._dispatcher.call("cancel", job_id)

    async def telemetry(self) -> Telemetry:
        durations: dict[tuple[str, str], DurationHistogram] = await self._hub.call("durations")
        stats: dict[str, Any] = await self._dispatcher.call("stats")
        return Telemetry(durations, int(stats["renewals"]))
