"""The job repository on SQLite and a real Postgres: every edge guarded, every forbidden edge
refused, idempotency, leases, reaping, pagination."""

from __future__ import annotations

import pytest

from ember.errors import (
    BadRequest,
    IdempotencyConflict,
    InvalidTransition,
    JobFinished,
    JobNotFound,
)
from ember.jobs.records import NewJob
from ember.jobs.repository import SqlJobRepository
from ember.jobs.states import EDGES, TERMINAL, JobState
from ember.storage import Database
from tests.support.clock import FakeClock


@pytest.fixture
def jobs(database: Database, clock: FakeClock) -> SqlJobRepository:
    """The repository on the fake clock's wall time, 2026-12-01 12:00 UTC to start."""
    return SqlJobRepository(database, clock.wall)


def new(key: str | None = None, principal: str = "alice", **input: object) -> NewJob:
    return NewJob("ingest", dict(input) or {"n": 1}, principal, "req-1", key, max_attempts=2)


def test_create_get_and_idempotency(jobs: SqlJobRepository) -> None:
    first, created = jobs.create(new("k1", n=1, m=2))
    assert created and first.state is JobState.QUEUED and first.attempts == 0
    again, created = jobs.create(new("k1", m=2, n=1))
    assert not created and again.id == first.id
    with pytest.raises(IdempotencyConflict, match="k1"):
        jobs.create(new("k1", n=2))
    other, created = jobs.create(new("k1", principal="bob", n=2))
    assert created and other.id != first.id
    assert jobs.get(first.id).input == {"n": 1, "m": 2}
    with pytest.raises(JobNotFound):
        jobs.get(first.id, principal="bob")
    with pytest.raises(JobNotFound):
        jobs.get("0" * 32)


def test_claim_renew_finish(jobs: SqlJobRepository, clock: FakeClock) -> None:
    a, _ = jobs.create(new())
    clock.advance(1)
    b, _ = jobs.create(new())
    claimed = jobs.claim("ingest", "w1", ttl_s=10, limit=1)
    assert [j.id for j in claimed] == [a.id]
    assert claimed[0].state is JobState.RUNNING and claimed[0].attempts == 1
    assert claimed[0].lease_owner == "w1"
    assert jobs.claim("other-kind", "w1", 10) == []
    assert [j.id for j in jobs.claim("ingest", "w2", 10, limit=5)] == [b.id]
    assert jobs.claim("ingest", "w3", 10) == []
    assert jobs.renew(a.id, "w1", 10) is JobState.RUNNING
    assert jobs.renew(a.id, "w2", 10) is None
    with pytest.raises(InvalidTransition):
        jobs.finish(a.id, "w2", JobState.SUCCEEDED, result={"ok": True})
    with pytest.raises(InvalidTransition):
        jobs.finish(a.id, "w1", JobState.CANCELLED)
    done = jobs.finish(a.id, "w1", JobState.SUCCEEDED, result={"ok": True})
    assert done.state is JobState.SUCCEEDED and done.result == {"ok": True}
    assert done.lease_owner is None and done.finished_at == clock.wall()
    assert jobs.renew(a.id, "w1", 10) is None
    with pytest.raises(InvalidTransition):
        jobs.finish(a.id, "w1", JobState.FAILED, error_code="x")


def test_cancel_queued_running_and_finished(jobs: SqlJobRepository) -> None:
    queued, _ = jobs.create(new())
    assert jobs.request_cancel(queued.id).state is JobState.CANCELLED
    with pytest.raises(JobFinished):
        jobs.request_cancel(queued.id)
    running, _ = jobs.create(new())
    jobs.claim("ingest", "w1", 10)
    assert jobs.request_cancel(running.id).state is JobState.CANCELLING
    assert jobs.request_cancel(running.id).state is JobState.CANCELLING
    assert jobs.renew(running.id, "w1", 10) is JobState.CANCELLING
    assert jobs.finish(running.id, "w1", JobState.CANCELLED).state is JobState.CANCELLED
    with pytest.raises(JobNotFound):
        jobs.request_cancel(running.id, principal="mallory")


def test_reaping_requeues_then_fails_and_cancels(jobs: SqlJobRepository, clock: FakeClock) -> None:
    jobs.create(new())
    jobs.claim("ingest", "w1", ttl_s=5)
    clock.advance(4)
    assert jobs.reap() == []
    clock.advance(2)
    [(again, before)] = jobs.reap()
    assert before is JobState.RUNNING and again.state is JobState.QUEUED
    assert again.lease_owner is None and again.attempts == 1
    jobs.claim("ingest", "w2", ttl_s=5)
    clock.advance(6)
    [(dead, _)] = jobs.reap()
    assert dead.state is JobState.FAILED and dead.error_code == "worker_lost"
    assert dead.attempts == 2
    stopping, _ = jobs.create(new())
    jobs.claim("ingest", "w3", ttl_s=5)
    jobs.request_cancel(stopping.id)
    clock.advance(6)
    [(gone, before)] = jobs.reap()
    assert before is JobState.CANCELLING and gone.state is JobState.CANCELLED


def test_a_stale_worker_cannot_finish_a_reaped_job(
    jobs: SqlJobRepository, clock: FakeClock
) -> None:
    job, _ = jobs.create(new())
    jobs.claim("ingest", "w1", ttl_s=5)
    clock.advance(6)
    jobs.reap()
    jobs.claim("ingest", "w2", ttl_s=5)
    with pytest.raises(InvalidTransition):
        jobs.finish(job.id, "w1", JobState.SUCCEEDED, result={})
    assert jobs.finish(job.id, "w2", JobState.SUCCEEDED, result={}).state is JobState.SUCCEEDED


def test_the_same_worker_leased_a_job_again_holds_only_the_new_attempt(
    jobs: SqlJobRepository, clock: FakeClock
) -> None:
    """A worker whose event loop was blocked past the lease is leased the job again: its first
    attempt can neither renew nor end the job (both attempts share the lease's owner)."""
    job, _ = jobs.create(new())
    [stale] = jobs.claim("ingest", "w1", ttl_s=5)
    clock.advance(6)
    jobs.reap()
    [live] = jobs.claim("ingest", "w1", ttl_s=5)
    assert (stale.attempts, live.attempts) == (1, 2)
    assert jobs.renew(job.id, "w1", 5, attempt=stale.attempts) is None
    assert jobs.renew(job.id, "w1", 5, attempt=live.attempts) is JobState.RUNNING
    with pytest.raises(InvalidTransition, match="attempt 2"):
        jobs.finish(job.id, "w1", JobState.SUCCEEDED, result={}, attempt=stale.attempts)
    done = jobs.finish(job.id, "w1", JobState.SUCCEEDED, result={"n": 2}, attempt=live.attempts)
    assert done.state is JobState.SUCCEEDED and done.result == {"n": 2}


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (a, b)
        for a in JobState
        for b in JobState
        if (a, b) not in EDGES and a is not b and a not in TERMINAL
    ],
)
def test_every_forbidden_edge_is_refused(
    jobs: SqlJobRepository, current: JobState, target: JobState
) -> None:
    job, _ = jobs.create(new())
    if current is not JobState.QUEUED:
        jobs.claim("ingest", "w1", 10)
    if current is JobState.CANCELLING:
        jobs.request_cancel(job.id)
    assert jobs.get(job.id).state is current
    with pytest.raises(InvalidTransition):
        jobs._db.run(lambda session: jobs._move(session, job.id, current, target))
    assert jobs.get(job.id).state is current


def test_final_states_have_no_way_out(jobs: SqlJobRepository) -> None:
    job, _ = jobs.create(new())
    jobs.request_cancel(job.id)
    for target in JobState:
        with pytest.raises(InvalidTransition):
            jobs._db.run(
                lambda session, t=target: jobs._move(session, job.id, JobState.CANCELLED, t)
            )


def test_page_filters_and_cursor(jobs: SqlJobRepository, clock: FakeClock) -> None:
    made = []
    for i in range(5):
        clock.advance(1)
        made.append(jobs.create(new(n=i))[0])
    jobs.request_cancel(made[0].id)
    page, cursor = jobs.page(limit=2)
    assert [j.id for j in page] == [made[4].id, made[3].id] and cursor
    page2, cursor2 = jobs.page(limit=2, cursor=cursor)
    assert [j.id for j in page2] == [made[2].id, made[1].id]
    page3, cursor3 = jobs.page(limit=2, cursor=cursor2)
    assert [j.id for j in page3] == [made[0].id] and cursor3 is None
    cancelled, _ = jobs.page(states=[JobState.CANCELLED])
    assert [j.id for j in cancelled] == [made[0].id]
    assert jobs.page(kinds=["reindex"])[0] == []
    assert jobs.page(principal="bob")[0] == []
    with pytest.raises(BadRequest):
        jobs.page(cursor="not-a-cursor")
    assert jobs.counts()[("ingest", JobState.QUEUED)] == 4
    assert jobs.active_count("alice") == 4 and jobs.active_count("bob") == 0


def test_a_page_of_one_agent_profiles_runs(jobs: SqlJobRepository, clock: FakeClock) -> None:
    scribe, _ = jobs.create(NewJob("agent", {"agent": "scribe", "task": "a"}, "alice"))
    jobs.create(NewJob("agent", {"agent": "critic", "task": "b"}, "alice"))
    jobs.create(NewJob("ingest", {"agent": "scribe"}, "alice"))
    clock.advance(1)
    later, _ = jobs.create(NewJob("agent", {"agent": "scribe", "task": "c"}, "alice"))
    page, _ = jobs.page(agent="scribe")
    assert [job.id for job in page] == [later.id, scribe.id]
    assert jobs.page(agent="nobody")[0] == []
