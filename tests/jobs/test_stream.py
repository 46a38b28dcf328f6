"""Following a job while the live side is gone (the event hub is restarting): the stream goes
on with heartbeats, and still ends with every stored event once the job is final."""

from __future__ import annotations

from typing import Any

from ember.errors import ServiceUnavailable
from ember.jobs.events import SqlEventStore
from ember.jobs.records import EventRecord, NewJob
from ember.jobs.repository import SqlJobRepository
from ember.jobs.states import JobState
from ember.jobs.stream import follow
from ember.storage import Database


class RestartingHub:
    """The live side of a job bus whose event hub does not answer."""

    def __init__(self) -> None:
        self.waits = 0

    async def wait(self, job_id: str, after: int, timeout_s: float) -> Any:
        self.waits += 1
        raise ServiceUnavailable("the event hub is not running right now")


async def test_a_stream_outlives_a_hub_that_does_not_answer(database: Database) -> None:
    jobs, store = SqlJobRepository(database), SqlEventStore(database)
    job, _ = jobs.create(NewJob("echo", {"text": "hi"}, "tester"))
    hub = RestartingHub()
    stream = follow(job.id, 0, events=store, jobs=jobs, bus=hub, heartbeat_s=0.05)  # type: ignore[arg-type]

    queued = await anext(stream)
    assert queued is not None and (queued.seq, queued.data) == (1, {"state": "queued"})
    assert await anext(stream) is None, "a heartbeat while the hub is away"
    assert hub.waits == 1

    jobs.claim("echo", "worker-1", 30, 1)
    jobs.finish(job.id, "worker-1", JobState.SUCCEEDED, result={"text": "hi"})
    store.append(
        [
            EventRecord(job.id, 2, "result", {"text": "hi"}),
            EventRecord(job.id, 3, "state", {"state": "succeeded"}),
        ]
    )
    rest = [event async for event in stream]
    assert [(e.seq, e.type) for e in rest if e is not None] == [(2, "result"), (3, "state")]
