"""The event hub when another hub died before it: no job has more than a ring of events that
are not stored, and a hub that takes a job over skips every number the dead one may have handed
out, so a reader resuming after a number it saw live misses nothing that is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from ember.actors.event_hub import EventHubActor
from ember.jobs.events import SqlEventStore
from ember.jobs.hub import EventHub
from ember.jobs.records import EventRecord, NewJob
from ember.jobs.repository import SqlJobRepository
from ember.storage import Database
from tests.support.cluster import ember_config, migrated

RING = 8
Q = 1
"""The ``queued`` event the repository stores with the job."""


class FlakyStore(SqlEventStore):
    """The SQL store, with appends that fail while ``failing`` (a database outage)."""

    failing = False

    def append(self, events: Sequence[EventRecord]) -> None:
        if self.failing:
            raise ConnectionError("the database is down")
        super().append(events)


def _job(database: Database) -> str:
    job, _ = SqlJobRepository(database).create(NewJob("echo", {"text": "hi"}, "tester"))
    return job.id


async def test_a_job_never_has_more_than_a_ring_of_unstored_events(database: Database) -> None:
    store = FlakyStore(database)
    hub = EventHub(store, ring_size=RING, flush_interval_s=3600)
    job_id = _job(database)
    store.failing = True
    failures = 0
    for i in range(3 * RING):
        try:
            await hub.publish(job_id, "log", {"i": i})
        except ConnectionError:
            failures += 1
    assert hub.stats(job_id).pending == RING, "no more numbered while none can be stored"
    assert failures > 2 * RING
    store.failing = False
    assert await hub.publish(job_id, "log", {}) == Q + RING + 1
    await hub.flush()
    assert store.last_seq(job_id) == Q + RING + 1


async def test_a_burst_longer_than_the_ring_is_numbered_as_one(database: Database) -> None:
    hub = EventHub(SqlEventStore(database), ring_size=RING, flush_interval_s=3600)
    job_id = _job(database)
    burst = hub.publish_many(job_id, [("token", {"i": i}) for i in range(3 * RING + 1)])
    singles = [hub.publish(job_id, "log", {}) for _ in range(5)]
    numbers, *others = await asyncio.gather(burst, *singles)
    assert numbers == list(range(numbers[0], numbers[0] + 3 * RING + 1))
    assert sorted([*numbers, *others]) == list(range(Q + 1, Q + 3 * RING + 7))
    await hub.flush()
    assert [e.data.get("i") for e in SqlEventStore(database).after(job_id, numbers[0] - 1)][
        : 3 * RING + 1
    ] == list(range(3 * RING + 1))


async def test_a_hub_taking_over_skips_what_the_dead_one_may_have_numbered(
    database: Database,
) -> None:
    store = SqlEventStore(database)
    job_id = _job(database)
    dead = EventHub(store, ring_size=RING, flush_interval_s=3600)
    await dead.publish_many(job_id, [("log", {"i": i}) for i in range(3)])
    await dead.flush()
    seen_live = await dead.publish_many(job_id, [("log", {"lost": i}) for i in range(3)])
    assert dead.stats(job_id).pending == 3
    # the hub dies here: its last three events were never stored

    heir = EventHub(store, ring_size=RING, flush_interval_s=3600, inherited=lambda _: True)
    assert await heir.wait(job_id, Q + 3, 0.05) == [], "nothing new yet"
    first = await heir.publish(job_id, "log", {"after": True})
    assert first > seen_live[-1], "no number a reader may have seen is handed out again"
    assert first == Q + 3 + RING + 1
    assert await heir.wait(job_id, seen_live[-1], 0.05) is None, "read the table"
    await heir.flush()
    resumed = store.after(job_id, seen_live[-1])
    assert [(e.seq, e.data) for e in resumed] == [(first, {"after": True})]
    assert [e.seq for e in store.after(job_id, 0)] == [1, 2, 3, 4, first]
    assert await heir.publish(job_id, "log", {}) == first + 1


async def test_a_job_not_inherited_is_numbered_on_without_a_gap(database: Database) -> None:
    store = SqlEventStore(database)
    job_id = _job(database)
    asked: list[str] = []

    def inherited(asked_for: str) -> bool:
        asked.append(asked_for)
        return False

    hub = EventHub(store, ring_size=RING, flush_interval_s=3600, inherited=inherited)
    assert await hub.publish(job_id, "log", {}) == Q + 1
    assert await hub.publish(job_id, "log", {}) == Q + 2
    assert asked == [job_id], "asked once, when the hub started to track the job"


async def test_an_attempt_whose_events_the_dead_hub_lost_is_refused(tmp_path: Path) -> None:
    """The EventHub actor's check (in-process, no Ray): a publisher whose last event was
    numbered by another incarnation goes on when that event is stored, and is refused
    (nothing published) when it was lost."""
    config = ember_config(tmp_path)
    with migrated(config) as database:
        kept, lost = _job(database), _job(database)
        dead = EventHubActor(config)
        _, (stored,) = await dead.publish_checked(kept, [("state", {"state": "running"})], None)
        await dead.flush()
        _, (unstored,) = await dead.publish_checked(lost, [("state", {"state": "running"})], None)

        heir = EventHubActor(config)
        assert heir.epoch != dead.epoch
        epoch, refused = await heir.publish_checked(lost, [("log", {})], (dead.epoch, unstored))
        assert (epoch, refused) == (heir.epoch, None)
        assert SqlEventStore(database).last_seq(lost) == Q, "nothing was published"
        _, numbers = await heir.publish_checked(kept, [("log", {})], (dead.epoch, stored))
        assert numbers == [stored + config.jobs.event_ring_size + 1]
        _, more = await heir.publish_checked(kept, [("log", {})], (heir.epoch, numbers[0]))
        assert more == [numbers[0] + 1]
