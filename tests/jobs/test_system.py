"""The job system end to end in one process: submit, run, stream, cancel, fail, time out,
quota, idempotency, audit — on SQLite and Postgres."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import DBAPIError

from ember.auth import Scope, SqlTokenRepository
from ember.errors import (
    EmberError,
    Forbidden,
    IdempotencyConflict,
    QuotaExceeded,
    UnknownJobKind,
    ValidationFailed,
)
from ember.jobs.states import JobState
from ember.storage import Database
from tests.jobs.conftest import System
from tests.support.principals import MEMBER_SCOPES, caller


async def collect(system: System, job_id: str, after: int = 0) -> list:
    return [event async for event in system.service.follow(job_id, after) if event is not None]


async def test_a_job_runs_and_its_stream_is_complete(system: System) -> None:
    job, created = await system.service.submit(
        "echo", {"text": "hi"}, caller("alice"), request_id="r1"
    )
    assert created and job.state is JobState.QUEUED
    events = await collect(system, job.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [(e.type, e.data) for e in events] == [
        ("state", {"state": "queued"}),
        ("state", {"state": "running", "attempt": 1, "kind": "echo"}),
        ("token", {"text": "hi-0"}),
        ("token", {"text": "hi-1"}),
        ("token", {"text": "hi-2"}),
        ("result", {"echo": "hi"}),
        ("state", {"state": "succeeded"}),
    ]
    final = system.jobs.get(job.id)
    assert final.state is JobState.SUCCEEDED and final.result == {"echo": "hi"}
    assert final.request_id == "r1"
    resumed = await collect(system, job.id, after=4)
    assert [e.seq for e in resumed] == [5, 6, 7]


async def test_a_failing_handler_fails_the_job_with_its_code(system: System) -> None:
    job, _ = await system.service.submit("echo", {"text": "x", "fail": True}, caller("alice"))
    events = await collect(system, job.id)
    assert events[-2].type == "error"
    assert events[-2].data["code"] == "provider_unavailable"
    assert events[-1].data == {"state": "failed", "code": "provider_unavailable"}
    final = system.jobs.get(job.id)
    assert final.error_code == "provider_unavailable" and final.result is None
    crashed, _ = await system.service.submit("crash", {}, caller("alice"))
    done = await system.until_final(crashed.id)
    assert done.error_code == "internal" and "see logs" in (done.error_detail or "")
    assert "ZeroDivisionError" not in (done.error_detail or "")  # what it said is logged only
    slow, _ = await system.service.submit("slow", {"seconds": 30}, caller("alice"))
    timed = await system.until_final(slow.id)
    assert timed.error_code == "job_timed_out"


async def test_cancel_reaches_the_running_handler(system: System) -> None:
    job, _ = await system.service.submit("sleep", {"seconds": 60}, caller("alice"))
    await system.until(lambda: job.id in system.seen.started)
    cancelling = await system.service.cancel(job.id, caller("alice"))
    assert cancelling.state is JobState.CANCELLING
    final = await system.until_final(job.id, timeout_s=5)
    assert final.state is JobState.CANCELLED
    assert system.seen.cancelled == [job.id]
    states = [e.data["state"] for e in await collect(system, job.id) if e.type == "state"]
    assert states == ["queued", "running", "cancelling", "cancelled"]


async def test_cancel_also_arrives_through_lease_renewal(system: System) -> None:
    job, _ = await system.service.submit("sleep", {"seconds": 60}, caller("alice"))
    await system.until(lambda: job.id in system.seen.started)
    await asyncio.to_thread(system.jobs.request_cancel, job.id)
    final = await system.until_final(job.id, timeout_s=5)
    assert final.state is JobState.CANCELLED and system.seen.cancelled == [job.id]


async def test_cancelling_a_queued_job_never_runs_it(system: System) -> None:
    await system.bus.stop()
    job, _ = await system.service.submit("echo", {"text": "never"}, caller("alice"))
    cancelled = await system.service.cancel(job.id, caller("alice"))
    assert cancelled.state is JobState.CANCELLED
    system.bus.start()
    await asyncio.sleep(0.3)
    assert job.id not in system.seen.started
    assert system.jobs.get(job.id).state is JobState.CANCELLED


async def test_the_queued_event_is_stored_with_the_job_before_anyone_can_run_it(
    system: System,
) -> None:
    await system.bus.stop()
    job, _ = await system.service.submit("echo", {"text": "first"}, caller("alice"))
    stored = await asyncio.to_thread(system.events.after, job.id, 0)
    assert [(e.seq, e.type, e.data) for e in stored] == [(1, "state", {"state": "queued"})]
    assert system.hub.stats(job.id).pending == 0, "written with the job, not through the hub"
    system.bus.start()
    await system.until_final(job.id)
    states = [e.data["state"] for e in await collect(system, job.id) if e.type == "state"]
    assert states == ["queued", "running", "succeeded"]


async def test_a_job_is_never_stored_without_its_audit_entry(
    system: System, database: Database
) -> None:
    await system.bus.stop()
    with database.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE audit_log RENAME TO audit_log_away")
    try:
        with pytest.raises((EmberError, DBAPIError)):
            await system.service.submit("echo", {"text": "unaudited"}, caller("carol"))
    finally:
        with database.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE audit_log_away RENAME TO audit_log")
    jobs, _ = await system.service.page(caller("carol"))
    assert jobs == [], "the job rolled back with its audit entry"


async def test_a_failed_nudge_still_runs_the_job(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unreachable(job_id: str) -> None:
        raise ConnectionError("the dispatcher is gone")

    monkeypatch.setattr(system.bus, "submitted", unreachable)
    job, created = await system.service.submit("echo", {"text": "polled"}, caller("alice"))
    assert created
    final = await system.until_final(job.id)
    assert final.state is JobState.SUCCEEDED, "the dispatcher found it at its next poll"


async def test_a_job_runs_as_its_submitter_and_stops_when_its_token_no_longer_may(
    system: System, database: Database
) -> None:
    tokens = SqlTokenRepository(database)
    record, secret = tokens.create("ci", "ci", ["jobs:write", "memory:write"])
    submitter = tokens.authenticate(secret)
    with pytest.raises(Forbidden) as refused:
        await system.service.submit(
            "remember", {"text": "x"}, caller("ci", MEMBER_SCOPES - {Scope.MEMORY_WRITE})
        )
    assert refused.value.extra["required_scope"] == "memory:write"
    allowed, _ = await system.service.submit("remember", {"text": "ok"}, submitter)
    assert (await system.until_final(allowed.id)).state is JobState.SUCCEEDED
    await system.bus.stop()
    queued, _ = await system.service.submit("remember", {"text": "late"}, submitter)
    assert queued.token_id == record.id and queued.workspace == "default"
    tokens.revoke(record.id)
    system.bus.start()
    final = await system.until_final(queued.id)
    assert final.state is JobState.FAILED and final.error_code == "unauthorized"
    assert queued.id not in system.seen.started, "the handler never ran"


async def test_validation_quota_idempotency_and_audit(system: System) -> None:
    with pytest.raises(UnknownJobKind, match="echo"):
        await system.service.submit("nope", {}, caller("alice"))
    with pytest.raises(ValidationFailed) as bad:
        await system.service.submit("echo", {"text": "", "extra": 1}, caller("alice"))
    assert {e["path"] for e in bad.value.errors} == {"input.text", "input.extra"}
    first, created = await system.service.submit(
        "sleep", {"seconds": 60}, caller("bob"), idempotency_key="k"
    )
    again, created_again = await system.service.submit(
        "sleep", {"seconds": 60.0}, caller("bob"), idempotency_key="k"
    )
    assert created and not created_again and again.id == first.id
    with pytest.raises(IdempotencyConflict):
        await system.service.submit("sleep", {"seconds": 1}, caller("bob"), idempotency_key="k")
    for _ in range(4):
        await system.service.submit("sleep", {"seconds": 60}, caller("bob"))
    with pytest.raises(QuotaExceeded):
        await system.service.submit("sleep", {"seconds": 60}, caller("bob"))
    replay, _ = await system.service.submit(
        "sleep", {"seconds": 60}, caller("bob"), idempotency_key="k"
    )
    assert replay.id == first.id
    entries = system.audit.list(actor="bob", action="job.create", limit=100)
    outcomes = [(e.outcome, e.detail.get("code")) for e in reversed(entries)]
    assert outcomes.count(("ok", None)) == 7
    assert ("error", "idempotency_conflict") in outcomes and ("error", "quota_exceeded") in outcomes


async def test_many_events_to_a_slow_reader_stay_bounded_and_contiguous(system: System) -> None:
    job, _ = await system.service.submit("echo", {"text": "t", "tokens": 3000}, caller("alice"))
    seen: list[int] = []
    peak = 0
    async for event in system.service.follow(job.id, 0):
        if event is None:
            continue
        seen.append(event.seq)
        peak = max(peak, system.hub.stats().buffered, system.hub.stats().pending)
        if len(seen) % 200 == 0:
            await asyncio.sleep(0.05)
    assert seen == list(range(1, 3000 + 5))
    assert peak <= 64


async def test_log_lines_about_a_job_carry_its_job_and_request_ids(
    system: System, caplog: pytest.LogCaptureFixture
) -> None:
    import json
    import logging

    from ember.observability.logs import JsonFormatter

    caplog.set_level(logging.INFO, logger="ember.jobs")
    job, _ = await system.service.submit(
        "echo", {"text": "x"}, caller("alice"), request_id="req-42"
    )
    await system.until_final(job.id)

    def about() -> list[dict[str, object]]:
        lines = [json.loads(JsonFormatter("ember-worker").format(r)) for r in caplog.records]
        return [line for line in lines if line.get("jobId") == job.id]

    # the row is final before the runner's last line: wait for the line, not the row
    await system.until(lambda: any(line["msg"] == "job succeeded" for line in about()))
    found = about()
    assert {line["msg"] for line in found} >= {"job started", "job succeeded"}
    assert {line["requestId"] for line in found} == {"req-42"}
