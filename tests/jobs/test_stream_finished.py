"""Issue 15, defect 13: resuming the stream of a finished job past its last event ends at once,
without waiting for a heartbeat (the in-process job system, on each database). Whether
``follow`` waited is seen on the bus (its ``wait`` calls) and on a heartbeat interval no test
would sit through, never on the clock."""

from __future__ import annotations

import asyncio
from typing import Any

from ember.jobs.events import SqlEventStore
from ember.jobs.records import EventRecord, NewJob
from ember.jobs.repository import SqlJobRepository
from ember.jobs.states import JobState
from ember.jobs.stream import follow
from ember.storage import Database
from tests.jobs.conftest import System
from tests.support.principals import caller

HOUR = 3600.0


class CountingBus:
    """A job bus whose ``wait`` is counted and answers "nothing new" at once."""

    def __init__(self) -> None:
        self.waits = 0

    async def wait(self, job_id: str, after: int, timeout_s: float) -> Any:
        self.waits += 1
        return []


async def finished_job(system: System) -> tuple[str, int]:
    """A job that ran to ``succeeded``, and its last event's number."""
    job, _ = await system.service.submit("echo", {"text": "hi", "tokens": 2}, caller("alice"))
    await system.until_final(job.id)
    async with asyncio.timeout(30):  # the row is final before the last events are published
        while True:
            await system.hub.flush()
            events = await asyncio.to_thread(system.events.after, job.id, 0, 1000)
            if events[-1].type == "state" and events[-1].data["state"] == "succeeded":
                return job.id, events[-1].seq
            await asyncio.sleep(0.05)


async def test_resuming_past_the_end_of_a_finished_job_ends_at_once(system: System) -> None:
    job_id, last = await finished_job(system)
    system.service.heartbeat_s = HOUR
    for after in (last, last + 1, last + 1000):
        async with asyncio.timeout(30):  # fires only if it waited for a heartbeat
            assert [event async for event in system.service.follow(job_id, after)] == []


async def test_resuming_a_finished_job_asks_the_live_side_nothing(system: System) -> None:
    job_id, last = await finished_job(system)
    bus = CountingBus()
    stream = follow(
        job_id,
        last + 5,
        events=system.events,
        jobs=system.jobs,
        bus=bus,  # type: ignore[arg-type]
        heartbeat_s=HOUR,
    )
    assert [event async for event in stream] == []
    assert bus.waits == 0


async def test_resuming_inside_a_finished_job_replays_the_rest(system: System) -> None:
    job_id, last = await finished_job(system)
    bus = CountingBus()
    stream = follow(
        job_id,
        last - 2,
        events=system.events,
        jobs=system.jobs,
        bus=bus,  # type: ignore[arg-type]
        heartbeat_s=HOUR,
    )
    rest = [event async for event in stream]
    assert [e.seq for e in rest if e is not None] == [last - 1, last]
    assert bus.waits == 0


async def test_a_final_row_whose_final_event_is_not_stored_is_still_waited_for(
    database: Database,
) -> None:
    """The runner updates the row before it publishes the final events: a row that is final
    without its final event stored is not over yet (the event may be on its way)."""
    jobs, store = SqlJobRepository(database), SqlEventStore(database)
    job, _ = jobs.create(NewJob("echo", {"text": "hi"}, "tester"))
    store.append([EventRecord(job.id, 1, "state", {"state": "queued"})])
    jobs.claim("echo", "worker-1", 30, 1)
    jobs.finish(job.id, "worker-1", JobState.SUCCEEDED, result={"text": "hi"})
    bus = CountingBus()
    stream = follow(job.id, 1, events=store, jobs=jobs, bus=bus, heartbeat_s=HOUR)  # type: ignore[arg-type]
    assert [event async for event in stream] == []
    assert bus.waits == 1, "it asked the live side once before ending on the final row"
