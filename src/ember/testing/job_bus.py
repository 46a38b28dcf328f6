"""The :class:`~ember.jobs.protocol.JobBus` contract as a pytest mixin.

An adapter's test module subclasses :class:`JobBusContract` and provides two fixtures::

    class TestLocalJobBus(JobBusContract):
        short_job = ("steps", {"steps": 3, "step_s": 0.1})
        long_job = ("steps", {"steps": 600, "step_s": 0.1})
        ring_size = 64

        @pytest.fixture
        async def bus(self, ...): ...   # the bus, its dispatcher running, its workers idle

        @pytest.fixture
        def jobs(self, ...): ...        # a JobRepository over the database the bus uses

The events a test publishes itself go to jobs of the kind :data:`EVENTS_KIND`, which no pool
runs: each is created and cancelled at once, so it only holds a stream (``job_events`` rows
need a job). ``short_job`` and ``long_job`` are run by the bus's own workers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, ClassVar

import pytest

from ember.errors import JobNotFound
from ember.jobs.protocol import JobBus, JobRepository
from ember.jobs.records import EventRecord, JobRecord, NewJob, Telemetry
from ember.jobs.repository import QUEUED_SEQ as Q
from ember.jobs.states import JobState
from ember.testing._waiting import eventually

__all__ = ["EVENTS_KIND", "JobBusContract"]

EVENTS_KIND = "contract-events"
"""The kind of the jobs whose streams the tests publish to: no pool runs it."""

PRINCIPAL = "contract"

DATA: list[tuple[str, dict[str, Any]]] = [
    ("log", {"message": "starting", "words": 3}),
    ("token", {"text": "Crème brûlée 東京 🎉"}),
    ("progress", {"done": 1, "total": None}),
    ("token", {"text": ""}),
    ("result", {"nested": {"list": [1, 2.5, "x", None, True]}, "empty": {}}),
]
"""Events whose types and data must come back from :meth:`JobBus.wait` exactly."""


class JobBusContract:
    """Tests every :class:`~ember.jobs.protocol.JobBus` must pass.

    Needs a ``bus`` fixture (the bus under test with its hub and dispatcher running) and a
    ``jobs`` fixture (a :class:`~ember.jobs.protocol.JobRepository` over the database the
    bus's dispatcher leases from), and these class attributes:

    - ``short_job``: ``(kind, input)`` of a job the bus's workers finish (``succeeded``) in a
      few seconds;
    - ``long_job``: ``(kind, input)`` of a job that runs for minutes unless cancelled and
      ends ``cancelled`` when it is;
    - ``ring_size``: how many recent events of a job the hub keeps in memory;
    - ``timeout_s`` (default 30): how long a test waits for a job to get somewhere.
    """

    short_job: ClassVar[tuple[str, dict[str, Any]]]
    long_job: ClassVar[tuple[str, dict[str, Any]]]
    ring_size: ClassVar[int]
    timeout_s: ClassVar[float] = 30.0

    # -- helpers ------------------------------------------------------------------------

    async def stream(self, jobs: JobRepository) -> str:
        """A new job that only holds a stream: created and cancelled before anyone runs it."""
        record, _ = await asyncio.to_thread(
            jobs.create, NewJob(EVENTS_KIND, {"n": uuid.uuid4().hex}, PRINCIPAL)
        )
        await asyncio.to_thread(jobs.request_cancel, record.id)
        return record.id

    async def submit(
        self, bus: JobBus, jobs: JobRepository, job: tuple[str, dict[str, Any]]
    ) -> str:
        """Store a queued job and tell the bus (as ``JobService.submit`` does)."""
        kind, payload = job
        record, _ = await asyncio.to_thread(jobs.create, NewJob(kind, payload, PRINCIPAL))
        await bus.submitted(record.id)
        return record.id

    async def until_state(
        self, jobs: JobRepository, job_id: str, states: set[JobState]
    ) -> JobRecord:
        async def reached() -> JobRecord | None:
            job = await asyncio.to_thread(jobs.get, job_id)
            return job if job.state in states else None

        return await eventually(reached, f"job {job_id} is {states}", self.timeout_s)

    async def events(self, bus: JobBus, job_id: str, until: str) -> list[EventRecord]:
        """The job's events after its ``queued`` event (stored with the job, so read from the
        table, not the hub), read with :meth:`JobBus.wait` until a ``state`` event says
        ``until``."""
        found: list[EventRecord] = []
        deadline = time.monotonic() + self.timeout_s
        while not found or found[-1].type != "state" or found[-1].data.get("state") != until:
            left = deadline - time.monotonic()
            assert left > 0, f"no state {until!r} event; got {[e.type for e in found]}"
            more = await bus.wait(job_id, Q + len(found), min(left, 2.0))
            assert more is not None, "the job's recent events left the hub's memory"
            found += more
        return found

    async def finish(self, bus: JobBus, jobs: JobRepository, job_id: str) -> JobRecord:
        """Cancel the job if it has not ended, and wait until it has."""
        job = await asyncio.to_thread(jobs.get, job_id)
        if not job.finished:
            await asyncio.to_thread(jobs.request_cancel, job_id)
            await bus.cancel(job_id)
        return await self.until_state(
            jobs, job_id, {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
        )

    # -- publish ------------------------------------------------------------------------

    async def test_publish_numbers_a_jobs_events_from_one_without_gaps(
        self, bus: JobBus, jobs: JobRepository
    ) -> None:
        job_id = await self.stream(jobs)
        numbers = [await bus.publish(job_id, "log", {"i": i}) for i in range(4)]
        assert numbers == list(range(Q + 1, Q + 5))

    async def test_each_job_is_numbered_on_its_own(self, bus: JobBus, jobs: JobRepository) -> None:
        first, second = await self.stream(jobs), await self.stream(jobs)
        assert await bus.publish(first, "log", {}) == Q + 1
        assert await bus.publish(first, "log", {}) == Q + 2
        assert await bus.publish(second, "log", {}) == Q + 1
        assert await bus.publish(first, "log", {}) == Q + 3

    async def test_publish_many_numbers_in_order_after_publish(
        self, bus: JobBus, jobs: JobRepository
    ) -> None:
        job_id = await self.stream(jobs)
        assert await bus.publish(job_id, "log", {}) == Q + 1
        burst = await bus.publish_many(job_id, [("token", {"i": i}) for i in range(3)])
        assert burst == [Q + 2, Q + 3, Q + 4]
        assert await bus.publish_many(job_id, []) == []
        assert await bus.publish(job_id, "log", {}) == Q + 5

    async def test_concurrent_publishers_get_distinct_numbers(
        self, bus: JobBus, jobs: JobRepository
    ) -> None:
        job_id = await self.stream(jobs)
        singles = [bus.publish(job_id, "token", {"i": i}) for i in range(10)]
        batches = [bus.publish_many(job_id, [("token", {}), ("token", {})]) for _ in range(5)]
        numbers = await asyncio.gather(*singles)
        for batch in await asyncio.gather(*batches):
            assert batch == list(range(batch[0], batch[0] + 2)), "a batch is numbered as one"
            numbers += batch
        assert sorted(numbers) == list(range(Q + 1, Q + 21))

    # -- wait ---------------------------------------------------------------------------

    async def test_wait_returns_the_events_after_after_in_order(
        self, bus: JobBus, jobs: JobRepository
    ) -> None:
        job_id = await self.stream(jobs)
        await bus.publish(job_id, *DATA[0])
        await bus.publish_many(job_id, DATA[1:])
        everything = await bus.wait(job_id, Q, 5.0)
        assert everything is not None
        assert [(e.job_id, e.seq, e.type, e.data) for e in everything] == [
            (job_id, seq, type_, data) for seq, (type_, data) in enumerate(DATA, Q + 1)
        ]
        later = await bus.wait(job_id, Q + 2, 5.0)
        assert later is not None and [e.seq for e in later] == [Q + 3, Q + 4, Q + 5]
        assert later == everything[2:]

    async def test_wait_with_nothing_new_returns_an_empty_list_at_the_timeout(
        self, bus: JobBus, jobs: JobRepository
    ) -> None:
        job_id = await self.stream(jobs)
        await bus.publish(job_id, "log", {})
        started = time.monotonic()
        assert await bus.wait(job_id, Q + 1, 0.4) == []
        waited = time.monotonic() - started
        assert 0.3 <= waited < 5.0
        assert await bus.wait(await self.stream(jobs), Q, 0.05) == [], "a job only queued"

    async def test_wait_returns_as_soon_as_an_event_is_published(
        self, bus: JobBus, jobs: JobRepository
    ) -> None:
        job_id = await self.stream(jobs)
        await bus.publish(job_id, "log", {"n": 1})
        waiting = asyncio.ensure_future(bus.wait(job_id, Q + 1, 30.0))
        await asyncio.sleep(0.3)
        assert not waiting.done(), "wait returned with nothing new"
        started = time.monotonic()
        await bus.publish(job_id, "log", {"n": 2})
        woken = await asyncio.wait_for(waiting, 10.0)
        assert time.monotonic() - started < 5.0
        assert woken is not None and [(e.seq, e.data) for e in woken] == [(Q + 2, {"n": 2})]

    async def test_wait_behind_the_hubs_memory_returns_none(
        self, bus: JobBus, jobs: JobRepository
    ) -> None:
        job_id = await self.stream(jobs)
        total = self.ring_size + 10
        numbers = await bus.publish_many(job_id, [("token", {"i": i}) for i in range(total)])
        assert numbers == list(range(Q + 1, Q + total + 1))
        assert await bus.wait(job_id, 0, 0.1) is None
        tail = await bus.wait(job_id, Q + total - 3, 0.1)
        assert tail is not None and [e.data["i"] for e in tail] == [total - 3, total - 2, total - 1]

    # -- the job system behind the bus --------------------------------------------------

    async def test_a_submitted_job_runs_and_its_events_reach_wait(
        self, bus: JobBus, jobs: JobRepository
    ) -> None:
        kind = self.short_job[0]
        before = (await bus.telemetry()).durations.get((kind, "succeeded"))
        counted = before.count if before is not None else 0
        job_id = await self.submit(bus, jobs, self.short_job)
        events = await self.events(bus, job_id, "succeeded")
        assert [e.seq for e in events] == list(range(Q + 1, Q + len(events) + 1))
        assert events[0].type == "state" and events[0].data["state"] == "running"
        assert events[-2].type == "result"
        final = await asyncio.to_thread(jobs.get, job_id)
        assert final.state is JobState.SUCCEEDED and final.result == events[-2].data

        async def timed() -> bool:
            found = (await bus.telemetry()).durations.get((kind, "succeeded"))
            return found is not None and found.count > counted

        await eventually(timed, "the attempt's duration is in the telemetry", self.timeout_s)

    async def test_cancel_reaches_a_running_job_only_once_it_is_cancelling(
        self, bus: JobBus, jobs: JobRepository
    ) -> None:
        job_id = await self.submit(bus, jobs, self.long_job)
        try:
            await self.until_state(jobs, job_id, {JobState.RUNNING})
            first = await bus.wait(job_id, Q, self.timeout_s)
            assert first and first[0].data.get("state") == "running"
            await bus.cancel(job_id)
            await asyncio.sleep(0.5)
            running = await asyncio.to_thread(jobs.get, job_id)
            assert running.state is JobState.RUNNING, "cancel without a cancel request"
            await asyncio.to_thread(jobs.request_cancel, job_id)
            await bus.cancel(job_id)
            final = await self.until_state(jobs, job_id, {JobState.CANCELLED})
            assert final.lease_owner is None
            events = await self.events(bus, job_id, "cancelled")
            assert [e.seq for e in events] == list(range(Q + 1, Q + len(events) + 1))
        finally:
            await self.finish(bus, jobs, job_id)

    async def test_telemetry_counts_the_lease_renewals_of_running_jobs(
        self, bus: JobBus, jobs: JobRepository
    ) -> None:
        before = await bus.telemetry()
        assert isinstance(before, Telemetry) and before.renewals >= 0
        job_id = await self.submit(bus, jobs, self.long_job)
        try:

            async def renewed() -> bool:
                return (await bus.telemetry()).renewals > before.renewals

            await eventually(renewed, "a running job's lease was renewed", self.timeout_s)
        finally:
            await self.finish(bus, jobs, job_id)

    async def test_submitted_and_cancel_of_unknown_jobs(self, bus: JobBus) -> None:
        await bus.submitted("no-such-job")
        with pytest.raises(JobNotFound):
            await bus.cancel("no-such-job")
