"""SQL adapter of :class:`~ember.jobs.protocol.JobRepository`.

Every state change is one ``UPDATE … WHERE id = ? AND state = ?`` (plus the lease owner where a
worker acts); a change that finds the job elsewhere raises :class:`InvalidTransition` with the
state it found. Leases are claimed the same way, so two dispatchers can never run one job.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ember.errors import (
    IdempotencyConflict,
    InvalidCursor,
    InvalidTransition,
    JobFinished,
    JobNotFound,
    WorkerLost,
)
from ember.jobs.records import JobRecord, NewJob
from ember.jobs.states import TERMINAL, JobState, allowed
from ember.storage.audit import AuditDraft, add_entry
from ember.storage.clock import utcnow
from ember.storage.database import Database
from ember.storage.tables import Job, JobEvent

__all__ = ["QUEUED_SEQ", "Reaped", "SqlJobRepository", "input_hash"]

QUEUED_SEQ = 1
"""Every job's first event, ``state: queued``, is written with the job row itself."""

Clock = Callable[[], datetime]
Reaped = tuple[JobRecord, JobState]
"""A job whose lease had expired, as it is now, and the state it was in before."""

_ACTIVE = (JobState.QUEUED, JobState.RUNNING, JobState.CANCELLING)


def input_hash(kind: str, payload: dict[str, Any]) -> str:
    """SHA-256 of the kind and the input as canonical JSON (key order does not matter)."""
    canonical = json.dumps({"kind": kind, "input": payload}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _record(row: Job) -> JobRecord:
    return JobRecord(
        id=row.id,
        kind=row.kind,
        state=JobState(row.state),
        principal=row.principal,
        workspace=row.workspace,
        token_id=row.token_id,
        trace_parent=row.trace_parent,
        request_id=row.request_id,
        idempotency_key=row.idempotency_key,
        input=dict(row.input),
        result=dict(row.result) if row.result is not None else None,
        error_code=row.error_code,
        error_detail=row.error_detail,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _cursor(record: JobRecord) -> str:
    raw = f"{record.created_at.isoformat()}|{record.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_CURSOR_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    """The (``created_at``, ``id``) a cursor of :func:`_cursor` holds.

    :raises InvalidCursor: it is not one: not base64 of ``<aware ISO time>|<job id>``.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, job_id = raw.split("|", 1)
        created = datetime.fromisoformat(stamp)
        if created.tzinfo is None or not _CURSOR_ID.fullmatch(job_id):
            raise ValueError("a naive time or an id ember never gives")
        return created.astimezone(UTC), job_id
    except (ValueError, OverflowError) as exc:
        shown = cursor if len(cursor) <= 64 else cursor[:61] + "..."
        raise InvalidCursor(f"cursor {shown!r} is not one ember gave out") from exc


def _visible(session: Session, job_id: str, principal: str | None, workspace: str | None) -> Job:
    row = session.get(Job, job_id)
    if (
        row is None
        or (principal is not None and row.principal != principal)
        or (workspace is not None and row.workspace != workspace)
    ):
        raise JobNotFound(f"no job {job_id}")
    return row


class SqlJobRepository:
    """Jobs in the ``jobs`` table."""

    def __init__(self, database: Database, clock: Clock = utcnow) -> None:
        self._db = database
        self._clock = clock

    def create(self, job: NewJob, audit: AuditDraft | None = None) -> tuple[JobRecord, bool]:
        digest = input_hash(job.kind, job.input)

        def note(session: Session, record: JobRecord, created: bool) -> None:
            if audit is not None:
                audit.resource = f"job:{record.id}"
                audit.detail = {"kind": job.kind, "created": created}
                add_entry(session, audit.entry("ok"))

        def existing(session: Session) -> JobRecord | None:
            row = session.scalars(
                select(Job).where(
                    Job.principal == job.principal, Job.idempotency_key == job.idempotency_key
                )
            ).first()
            if row is None:
                return None
            if row.input_hash != digest:
                raise IdempotencyConflict(
                    f"Idempotency-Key {job.idempotency_key!r} was used for job {row.id} "
                    "with another body"
                )
            record = _record(row)
            note(session, record, False)
            return record

        def insert(session: Session) -> JobRecord:
            now = self._clock()
            row = Job(
                kind=job.kind,
                state=JobState.QUEUED.value,
                principal=job.principal,
                workspace=job.workspace,
                token_id=job.token_id,
                request_id=job.request_id,
                trace_id=job.trace_parent.split("-")[1] if job.trace_parent else None,
                trace_parent=job.trace_parent,
                idempotency_key=job.idempotency_key,
                input_hash=digest,
                input=job.input,
                max_attempts=job.max_attempts,
                created_at=now,
            )
            session.add(row)
            session.flush()
            session.add(
                JobEvent(
                    job_id=row.id,
                    seq=QUEUED_SEQ,
                    type="state",
                    data={"state": JobState.QUEUED.value},
                    created_at=now,
                )
            )
            record = _record(row)
            note(session, record, True)
            return record

        if job.idempotency_key is not None:
            found = self._db.run(existing)
            if found is not None:
                return found, False
        try:
            return self._db.run(insert), True
        except IntegrityError:
            if job.idempotency_key is None:
                raise
            found = self._db.run(existing)
            assert found is not None
            return found, False

    def by_key(self, principal: str, idempotency_key: str) -> JobRecord | None:
        query = select(Job).where(
            Job.principal == principal, Job.idempotency_key == idempotency_key
        )
        return self._db.run(
            lambda session: next((_record(row) for row in session.scalars(query)), None)
        )

    def get(
        self, job_id: str, principal: str | None = None, *, workspace: str | None = None
    ) -> JobRecord:
        def work(session: Session) -> JobRecord:
            return _record(_visible(session, job_id, principal, workspace))

        return self._db.run(work)

    def page(
        self,
        *,
        principal: str | None = None,
        workspace: str | None = None,
        states: Sequence[JobState] = (),
        kinds: Sequence[str] = (),
        limit: int = 50,
        cursor: str | None = None,
        agent: str | None = None,
    ) -> tuple[list[JobRecord], str | None]:
        query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
        if agent is not None:
            query = query.where(Job.kind == "agent", Job.input["agent"].as_string() == agent)
        if principal is not None:
            query = query.where(Job.principal == principal)
        if workspace is not None:
            query = query.where(Job.workspace == workspace)
        if states:
            query = query.where(Job.state.in_([s.value for s in states]))
        if kinds:
            query = query.where(Job.kind.in_(list(kinds)))
        if cursor is not None:
            stamp, job_id = _parse_cursor(cursor)
            query = query.where(
                (Job.created_at < stamp) | ((Job.created_at == stamp) & (Job.id < job_id))
            )
        rows = self._db.run(lambda session: [_record(row) for row in session.scalars(query)])
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (_cursor(rows[-1]) if more and rows else None)

    def claim(self, kind: str, owner: str, ttl_s: float, limit: int = 1) -> list[JobRecord]:
        if limit <= 0:
            return []

        def work(session: Session) -> list[JobRecord]:
            now = self._clock()
            query = (
                select(Job.id)
                .where(Job.state == JobState.QUEUED.value, Job.kind == kind)
                .order_by(Job.created_at, Job.id)
                .limit(limit)
            )
            if self._db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            claimed = []
            for job_id in list(session.scalars(query)):
                result = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == JobState.QUEUED.value)
                    .values(
                        state=JobState.RUNNING.value,
                        lease_owner=owner,
                        lease_expires_at=now + timedelta(seconds=ttl_s),
                        attempts=Job.attempts + 1,
                        started_at=func.coalesce(Job.started_at, now),
                        updated_at=now,
                    )
                )
                if getattr(result, "rowcount", 0) == 1:
                    claimed.append(job_id)
            rows = session.scalars(select(Job).where(Job.id.in_(claimed))).all()
            by_id = {row.id: _record(row) for row in rows}
            return [by_id[job_id] for job_id in claimed]

        return self._db.run(work)

    def renew(
        self, job_id: str, owner: str, ttl_s: float, *, attempt: int | None = None
    ) -> JobState | None:
        def work(session: Session) -> JobState | None:
            now = self._clock()
            active = (JobState.RUNNING.value, JobState.CANCELLING.value)
            query = update(Job).where(
                Job.id == job_id, Job.lease_owner == owner, Job.state.in_(active)
            )
            if attempt is not None:
                query = query.where(Job.attempts == attempt)
            result = session.execute(query.values(lease_expires_at=now + timedelta(seconds=ttl_s)))
            if getattr(result, "rowcount", 0) != 1:
                return None
            state = session.scalar(select(Job.state).where(Job.id == job_id))
            return JobState(state) if state is not None else None

        return self._db.run(work)

    def finish(
        self,
        job_id: str,
        owner: str,
        state: JobState,
        *,
        result: dict[str, Any] | None = None,
        error_code: str | None = None,
        error_detail: str | None = None,
        attempt: int | None = None,
    ) -> JobRecord:
        if state not in TERMINAL:
            raise ValueError(f"{state} is not a final state")

        def work(session: Session) -> JobRecord:
            row = session.get(Job, job_id)
            if row is None:
                raise JobNotFound(f"no job {job_id}")
            current = JobState(row.state)
            stale = attempt is not None and row.attempts != attempt
            if row.lease_owner != owner or stale or not allowed(current, state):
                raise InvalidTransition(
                    f"job {job_id} is {current.value} (lease {row.lease_owner}, attempt "
                    f"{row.attempts}); {owner} cannot make it {state.value}"
                )
            if state is JobState.CANCELLED and current is not JobState.CANCELLING:
                raise InvalidTransition(f"job {job_id} is {current.value}, not cancelling")
            self._move(
                session,
                job_id,
                current,
                state,
                result=result,
                error_code=error_code,
                error_detail=error_detail,
                lease_owner=None,
                lease_expires_at=None,
                finished_at=self._clock(),
            )
            session.refresh(row)
            return _record(row)

        return self._db.run(work)

    def expire(self, job_id: str, owner: str) -> bool:
        def work(session: Session) -> bool:
            active = (JobState.RUNNING.value, JobState.CANCELLING.value)
            result = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == owner, Job.state.in_(active))
                .values(lease_expires_at=self._clock() - timedelta(seconds=1))
            )
            return getattr(result, "rowcount", 0) == 1

        return self._db.run(work)

    def request_cancel(
        self, job_id: str, principal: str | None = None, *, workspace: str | None = None
    ) -> JobRecord:
        def work(session: Session) -> JobRecord:
            row = _visible(session, job_id, principal, workspace)
            current = JobState(row.state)
            if current in TERMINAL:
                raise JobFinished(f"job {job_id} has already {current.value}")
            if current is JobState.QUEUED:
                self._move(session, job_id, current, JobState.CANCELLED, finished_at=self._clock())
            elif current is JobState.RUNNING:
                self._move(session, job_id, current, JobState.CANCELLING)
            session.refresh(row)
            return _record(row)

        return self._db.run(work)

    def fail_queued(self, job_id: str, error_code: str, error_detail: str) -> JobRecord:
        def work(session: Session) -> JobRecord:
            self._move(
                session,
                job_id,
                JobState.QUEUED,
                JobState.FAILED,
                error_code=error_code,
                error_detail=error_detail,
                finished_at=self._clock(),
            )
            row = session.get(Job, job_id)
            assert row is not None
            return _record(row)

        return self._db.run(work)

    def reap(self, now: datetime | None = None) -> list[Reaped]:
        def work(session: Session) -> list[Reaped]:
            moment = now or self._clock()
            expired = session.scalars(
                select(Job).where(
                    Job.state.in_([JobState.RUNNING.value, JobState.CANCELLING.value]),
                    Job.lease_expires_at < moment,
                )
            ).all()
            reaped: list[Reaped] = []
            for row in expired:
                before = JobState(row.state)
                values: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}
                if before is JobState.CANCELLING:
                    target = JobState.CANCELLED
                    values["finished_at"] = moment
                elif row.attempts < row.max_attempts:
                    target = JobState.QUEUED
                else:
                    target = JobState.FAILED
                    lost = WorkerLost(
                        f"the worker stopped renewing its lease on all {row.attempts} attempts"
                    )
                    values.update(
                        error_code=lost.code, error_detail=lost.detail, finished_at=moment
                    )
                try:
                    self._move(session, row.id, before, target, **values)
                except InvalidTransition:
                    continue
                session.refresh(row)
                reaped.append((_record(row), before))
            return reaped

        return self._db.run(work)

    def counts(self) -> dict[tuple[str, JobState], int]:
        query = select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)
        rows = self._db.run(lambda session: list(session.execute(query)))
        return {(kind, JobState(state)): int(n) for kind, state, n in rows}

    def active_count(self, principal: str) -> int:
        query = select(func.count()).where(
            Job.principal == principal, Job.state.in_([s.value for s in _ACTIVE])
        )
        return int(self._db.run(lambda session: session.scalar(query)) or 0)

    def _move(
        self,
        session: Session,
        job_id: str,
        current: JobState,
        target: JobState,
        **values: Any,
    ) -> None:
        if not allowed(current, target):
            raise InvalidTransition(f"no edge {current.value} → {target.value}")
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == current.value)
            .values(state=target.value, updated_at=self._clock(), **values)
        )
        if getattr(result, "rowcount", 0) != 1:
            found = session.scalar(select(Job.state).where(Job.id == job_id))
            raise InvalidTransition(
                f"job {job_id} is {found}, not {current.value}; it cannot become {target.value}"
            )
