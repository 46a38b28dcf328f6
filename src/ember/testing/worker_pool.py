"""The :class:`~ember.jobs.protocol.WorkerPool` contract as a pytest mixin.

An adapter's test module subclasses :class:`WorkerPoolContract` and provides two fixtures::

    class TestLocalWorkerPool(WorkerPoolContract):
        workers, slots, renew_interval_s = 2, 2, 1.0
        short_job = ("steps", {"steps": 3, "step_s": 0.1})
        long_job = ("steps", {"steps": 600, "step_s": 0.1})

        @pytest.fixture
        async def pool(self, ...): ...   # the pool under test, no job running

        @pytest.fixture
        def jobs(self, ...): ...         # the JobRepository its workers lease from

The tests play the dispatcher: they store a job, lease it to one of
:meth:`~ember.jobs.protocol.WorkerPool.free_slots` with
:meth:`~ember.jobs.protocol.JobRepository.claim`, and hand it over with ``start``. No
dispatcher may lease from the same table meanwhile. Every test waits until the jobs it started
have ended and their slots are free again, so a pool may be shared by a module's tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from ember.jobs.protocol import JobRepository, WorkerPool
from ember.jobs.records import JobRecord, NewJob
from ember.jobs.states import TERMINAL, JobState
from ember.testing._waiting import eventually

__all__ = ["WorkerPoolContract"]

PRINCIPAL = "contract"
LEASE_TTL_S = 60.0
"""The lease the tests take for a worker; its workers renew it with their own TTL."""


class WorkerPoolContract:
    """Tests every :class:`~ember.jobs.protocol.WorkerPool` must pass.

    Needs a ``pool`` fixture (the pool under test, no job running) and a ``jobs`` fixture (the
    :class:`~ember.jobs.protocol.JobRepository` its workers lease from, which no dispatcher
    leases from meanwhile), and these class attributes:

    - ``workers``: how many workers the pool has; ``slots``: jobs one worker runs at a time;
    - ``renew_interval_s``: how often its workers renew their leases (a cancel must reach a
      job before its next renewal, so give it a few seconds);
    - ``short_job``: ``(kind, input)`` of a job its workers finish (``succeeded``) in about
      a second; ``long_job``: one that runs for minutes unless cancelled and ends
      ``cancelled`` when it is;
    - ``timeout_s`` (default 60): how long a test waits for workers to start and jobs to end.
    """

    workers: ClassVar[int]
    slots: ClassVar[int]
    renew_interval_s: ClassVar[float]
    short_job: ClassVar[tuple[str, dict[str, Any]]]
    long_job: ClassVar[tuple[str, dict[str, Any]]]
    timeout_s: ClassVar[float] = 60.0

    # -- helpers ------------------------------------------------------------------------

    async def idle(self, pool: WorkerPool) -> Counter[str]:
        """The free slots once every worker has started and no job runs: each worker once per
        slot."""

        async def full() -> Counter[str] | None:
            free = Counter(pool.free_slots())
            return free if sum(free.values()) == self.workers * self.slots else None

        free = await eventually(full, "every slot of the pool is free", self.timeout_s)
        assert len(free) == self.workers and set(free.values()) == {self.slots}
        return free

    async def lease(
        self, jobs: JobRepository, worker_id: str, job: tuple[str, dict[str, Any]]
    ) -> JobRecord:
        """Store ``job`` and lease it to ``worker_id``, as the dispatcher does."""
        kind, payload = job
        created, _ = await asyncio.to_thread(jobs.create, NewJob(kind, payload, PRINCIPAL))
        (claimed,) = await asyncio.to_thread(jobs.claim, kind, worker_id, LEASE_TTL_S, 1)
        assert claimed.id == created.id, "another job of this kind was queued in the table"
        return claimed

    async def until_state(
        self, jobs: JobRepository, job_id: str, states: frozenset[JobState] | set[JobState]
    ) -> JobRecord:
        async def reached() -> JobRecord | None:
            job = await asyncio.to_thread(jobs.get, job_id)
            return job if job.state in states else None

        return await eventually(reached, f"job {job_id} is {set(states)}", self.timeout_s)

    async def stop(self, pool: WorkerPool, jobs: JobRepository, *started: JobRecord) -> None:
        """Cancel the jobs that have not ended, then wait until the pool is idle again."""
        for job in started:
            if not (await asyncio.to_thread(jobs.get, job.id)).finished:
                await asyncio.to_thread(jobs.request_cancel, job.id)
                assert job.lease_owner is not None
                await pool.cancel(job.lease_owner, job.id)
        for job in started:
            await self.until_state(jobs, job.id, TERMINAL)
        await self.idle(pool)

    @contextlib.asynccontextmanager
    async def started(
        self, pool: WorkerPool, jobs: JobRepository, spec: tuple[str, dict[str, Any]]
    ) -> AsyncIterator[tuple[Counter[str], str, JobRecord]]:
        """A job of ``spec`` leased to the idle pool's first worker and started there; yields
        the idle pool's free slots, the worker and the job, and stops the job on the way out."""
        free = await self.idle(pool)
        worker_id = sorted(free)[0]
        job = await self.lease(jobs, worker_id, spec)
        try:
            await pool.start(worker_id, job)
            yield free, worker_id, job
        finally:
            await self.stop(pool, jobs, job)

    # -- tests --------------------------------------------------------------------------

    async def test_an_idle_pool_lists_each_worker_once_per_slot(self, pool: WorkerPool) -> None:
        free = await self.idle(pool)
        assert all(isinstance(worker_id, str) and worker_id for worker_id in free)

    async def test_a_started_job_holds_its_slot_until_it_ends(
        self, pool: WorkerPool, jobs: JobRepository
    ) -> None:
        async with self.started(pool, jobs, self.short_job) as (free, worker_id, job):
            assert Counter(pool.free_slots()) == free - Counter([worker_id])
            final = await self.until_state(jobs, job.id, TERMINAL)
            assert final.state is JobState.SUCCEEDED and final.lease_owner is None
            assert final.attempts == 1 and final.result is not None
            assert await self.idle(pool) == free

    async def test_a_worker_whose_slots_are_all_taken_leaves_the_free_slots(
        self, pool: WorkerPool, jobs: JobRepository
    ) -> None:
        free = await self.idle(pool)
        worker_id = sorted(free)[-1]
        started: list[JobRecord] = []
        try:
            for _ in range(self.slots):
                started.append(await self.lease(jobs, worker_id, self.long_job))
                await pool.start(worker_id, started[-1])
            left = Counter(pool.free_slots())
            assert worker_id not in left
            assert left == Counter({w: n for w, n in free.items() if w != worker_id})
            await asyncio.sleep(0.5)
            for job in started:
                assert (await asyncio.to_thread(jobs.get, job.id)).state is JobState.RUNNING
        finally:
            await self.stop(pool, jobs, *started)

    async def test_cancel_reaches_a_running_job_before_its_next_renewal(
        self, pool: WorkerPool, jobs: JobRepository
    ) -> None:
        async with self.started(pool, jobs, self.long_job) as (free, worker_id, job):
            renewed = await pool.renewals()
            await asyncio.to_thread(jobs.request_cancel, job.id)
            await pool.cancel(worker_id, job.id)
            current = await self.until_state(jobs, job.id, TERMINAL)
            assert current.state is JobState.CANCELLED
            assert await pool.renewals() == renewed, "the cancel waited for a lease renewal"
            assert await self.idle(pool) == free

    async def test_cancel_of_a_job_the_worker_does_not_run_changes_nothing(
        self, pool: WorkerPool, jobs: JobRepository
    ) -> None:
        async with self.started(pool, jobs, self.long_job) as (free, worker_id, job):
            await pool.cancel(worker_id, "no-such-job")
            await pool.cancel("no-such-worker", job.id)
            others = [w for w in free if w != worker_id]
            if others:
                await pool.cancel(others[0], job.id)
            await asyncio.sleep(0.5)
            assert (await asyncio.to_thread(jobs.get, job.id)).state is JobState.RUNNING
            assert Counter(pool.free_slots()) == free - Counter([worker_id])

    async def test_renewals_count_the_leases_its_workers_renewed(
        self, pool: WorkerPool, jobs: JobRepository
    ) -> None:
        free = await self.idle(pool)
        before = await pool.renewals()
        assert before >= 0
        job = await self.lease(jobs, sorted(free)[0], self.long_job)
        try:
            assert job.lease_owner is not None
            await pool.start(job.lease_owner, job)

            async def renewed() -> bool:
                return await pool.renewals() > before

            await eventually(renewed, "the running job's lease was renewed", self.timeout_s)
            assert (await asyncio.to_thread(jobs.get, job.id)).state is JobState.RUNNING
        finally:
            await self.stop(pool, jobs, job)
        assert await pool.renewals() >= before + 1, "renewals never go down"
