"""A job whose events cannot be published (the event hub is gone, as while a cluster shuts
down) is not failed: the runner records nothing, the lease runs out, and the job is queued
again for its next attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ember.jobs.kinds import KindRegistry
from ember.jobs.records import NewJob
from ember.jobs.repository import SqlJobRepository
from ember.jobs.runner import EventsLost, JobRunner
from ember.jobs.states import JobState
from ember.storage import Database
from tests.jobs.conftest import Seen, make_kinds


async def test_a_job_whose_hub_is_gone_is_left_to_be_queued_again(database: Database) -> None:
    jobs = SqlJobRepository(database)
    published: list[str] = []

    async def publish(job_id: str, type_: str, data: dict[str, Any]) -> int:
        if type_ == "token":
            raise EventsLost("the event hub is gone")
        published.append(type_)
        return len(published)

    seen = Seen()
    runner = JobRunner(jobs, KindRegistry(make_kinds(seen)), publish, "worker-1")
    job, _ = jobs.create(NewJob("echo", {"text": "hi"}, "tester"))
    (leased,) = jobs.claim("echo", "worker-1", ttl_s=30)

    assert await runner.run(leased) is None
    assert seen.started == [job.id], "the handler ran until its first event"
    assert published == ["state"], "no error or final state was published"
    row = jobs.get(job.id)
    assert (row.state, row.error_code, row.lease_owner) == (JobState.RUNNING, None, "worker-1")

    ((reaped, before),) = jobs.reap(now=datetime.now(UTC) + timedelta(seconds=31))
    assert (reaped.id, before, reaped.state) == (job.id, JobState.RUNNING, JobState.QUEUED)


async def test_a_hub_gone_before_the_job_starts_also_leaves_it_running(database: Database) -> None:
    jobs = SqlJobRepository(database)

    async def publish(job_id: str, type_: str, data: dict[str, Any]) -> int:
        raise EventsLost("the event hub is gone")

    seen = Seen()
    runner = JobRunner(jobs, KindRegistry(make_kinds(seen)), publish, "worker-1")
    job, _ = jobs.create(NewJob("echo", {"text": "hi"}, "tester"))
    (leased,) = jobs.claim("echo", "worker-1", ttl_s=30)
    assert await runner.run(leased) is None
    assert seen.started == [] and jobs.get(job.id).state is JobState.RUNNING


async def test_a_start_that_arrives_after_the_job_ended_runs_nothing(database: Database) -> None:
    """A worker told to start a job whose lease was reaped (and which another worker then
    finished) neither runs the handler nor publishes anything."""
    jobs = SqlJobRepository(database)
    published: list[str] = []

    async def publish(job_id: str, type_: str, data: dict[str, Any]) -> int:
        published.append(type_)
        return len(published)

    seen = Seen()
    late = JobRunner(jobs, KindRegistry(make_kinds(seen)), publish, "worker-1")
    job, _ = jobs.create(NewJob("echo", {"text": "hi"}, "tester"))
    (stale,) = jobs.claim("echo", "worker-1", ttl_s=30)
    jobs.reap(now=datetime.now(UTC) + timedelta(seconds=31))
    jobs.claim("echo", "worker-2", ttl_s=30)
    jobs.finish(job.id, "worker-2", JobState.SUCCEEDED, result={"text": "hi"})

    assert await late.run(stale) is None
    assert seen.started == [] and published == []
    assert jobs.get(job.id).result == {"text": "hi"}


async def test_a_worker_leased_the_same_job_again_runs_only_the_new_attempt(
    database: Database,
) -> None:
    """The first lease was reaped while the worker's event loop was blocked, and the same
    worker was leased the job again: the first attempt's start runs nothing, the second runs
    and records the job's end (both leases have the same owner; the attempt tells them
    apart)."""
    jobs = SqlJobRepository(database)

    async def publish(job_id: str, type_: str, data: dict[str, Any]) -> int:
        return 0

    seen = Seen()
    runner = JobRunner(jobs, KindRegistry(make_kinds(seen)), publish, "worker-1")
    job, _ = jobs.create(NewJob("echo", {"text": "hi"}, "tester"))
    (stale,) = jobs.claim("echo", "worker-1", ttl_s=30)
    jobs.reap(now=datetime.now(UTC) + timedelta(seconds=31))
    (live,) = jobs.claim("echo", "worker-1", ttl_s=30)

    assert await runner.run(stale) is None
    assert seen.started == []
    final = await runner.run(live)
    assert final is not None and final.state is JobState.SUCCEEDED and final.attempts == 2
    assert seen.started == [job.id]
