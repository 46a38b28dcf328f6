"""The SQL event store on each database: appends are idempotent on ``(job_id, seq)``, so a
batch written again after a commit its writer never saw cannot fail every later flush."""

from __future__ import annotations

from datetime import UTC, datetime

from ember.jobs.events import SqlEventStore
from ember.jobs.records import EventRecord, NewJob
from ember.jobs.repository import SqlJobRepository
from ember.storage import Database


def _job(database: Database) -> str:
    job, _ = SqlJobRepository(database).create(NewJob("echo", {"text": "hi"}, "tester"))
    return job.id


def test_a_batch_appended_again_is_stored_once(database: Database) -> None:
    store = SqlEventStore(database)
    job_id = _job(database)
    batch = [EventRecord(job_id, seq, "log", {"n": seq}) for seq in (2, 3, 4)]
    store.append(batch)
    store.append(batch)
    stored = store.after(job_id, 1)
    assert [(e.seq, e.data) for e in stored] == [(2, {"n": 2}), (3, {"n": 3}), (4, {"n": 4})]
    assert store.last_seq(job_id) == 4


def test_a_batch_that_overlaps_what_is_stored_adds_only_the_new_events(
    database: Database,
) -> None:
    store = SqlEventStore(database)
    job_id, other = _job(database), _job(database)
    store.append([EventRecord(job_id, 2, "log", {"first": True})])
    store.append(
        [
            EventRecord(job_id, 2, "log", {"first": False}),
            EventRecord(job_id, 3, "log", {}),
            EventRecord(other, 2, "log", {}),
        ]
    )
    assert [(e.seq, e.data) for e in store.after(job_id, 1)] == [(2, {"first": True}), (3, {})]
    assert [e.seq for e in store.after(other, 0)] == [1, 2]


def test_first_at_is_when_the_jobs_first_event_was_written(database: Database) -> None:
    store = SqlEventStore(database)
    before = datetime.now(UTC)
    job_id = _job(database)
    first = store.first_at(job_id)
    assert first is not None and first.tzinfo is not None
    assert before <= first <= datetime.now(UTC)
    assert store.first_at("no-such-job") is None
