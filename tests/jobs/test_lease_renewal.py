"""A worker that cannot renew its lease stops the work before the lease runs out.

The fault: the database refuses every renewal of a job's first attempt (as when the worker's
connection to it is gone). The whole in-process job system runs (dispatcher and its reaper,
runners, hub): the first attempt's handler is cancelled, the lease runs out, the job is queued
again and the second attempt runs to the end. The handler records when each attempt starts
and stops: the second never starts while the first still runs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ember.errors import DatabaseUnavailable
from ember.jobs.context import JobContext
from ember.jobs.kinds import JobKind, KindRegistry
from ember.jobs.repository import SqlJobRepository
from ember.jobs.states import JobState
from ember.storage import Database
from tests.jobs.conftest import Seen, SleepInput, running_system
from tests.support.principals import caller


class RenewalsFail(SqlJobRepository):
    """The real repository, except that renewing a job's first attempt raises (the database
    is unreachable for that worker); ``refused`` counts the refusals."""

    refused = 0

    def renew(
        self, job_id: str, owner: str, ttl_s: float, *, attempt: int | None = None
    ) -> JobState | None:
        if self.get(job_id).attempts == 1:
            self.refused += 1
            raise DatabaseUnavailable("the database is unavailable")
        return super().renew(job_id, owner, ttl_s, attempt=attempt)


@dataclass
class Attempts:
    """What the handler saw: ``(event, attempt)`` in order, and the attempts running now."""

    log: list[tuple[str, int]] = field(default_factory=list)
    running: set[int] = field(default_factory=set)
    overlapped: bool = False


def guarded_kind(attempts: Attempts) -> JobKind:
    async def work(context: JobContext, payload: SleepInput) -> dict[str, Any]:
        attempt = context.job.attempts
        attempts.overlapped |= bool(attempts.running)
        attempts.running.add(attempt)
        attempts.log.append(("start", attempt))
        try:
            if attempt == 1:
                await asyncio.sleep(payload.seconds)
            return {"attempt": attempt}
        except asyncio.CancelledError:
            attempts.log.append(("cancelled", attempt))
            raise
        finally:
            attempts.running.discard(attempt)

    return JobKind("guarded", SleepInput, work, "Sleeps on its first attempt.")


async def test_a_lease_that_cannot_be_renewed_stops_the_work_and_the_job_runs_once_at_a_time(
    database: Database,
) -> None:
    attempts = Attempts()
    jobs = RenewalsFail(database)
    kinds = KindRegistry([guarded_kind(attempts)])
    async with running_system(
        database, kinds, Seen(), jobs=jobs, lease_ttl_s=3.0, renew_interval_s=0.5
    ) as system:
        job, _ = await system.service.submit("guarded", {"seconds": 600}, caller("alice"))
        final = await system.until_final(job.id, timeout_s=60)
    assert final.state is JobState.SUCCEEDED and final.attempts == 2
    assert final.result == {"attempt": 2}
    assert attempts.log == [("start", 1), ("cancelled", 1), ("start", 2)]
    assert not attempts.overlapped, "the second attempt started while the first still ran"
    assert jobs.refused >= 1
