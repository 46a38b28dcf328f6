"""SQL adapter of :class:`~ember.jobs.protocol.EventStore`: the ``job_events`` table."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from ember.jobs.records import EventRecord
from ember.storage.clock import utcnow
from ember.storage.database import Database
from ember.storage.tables import JobEvent

__all__ = ["SqlEventStore"]


class SqlEventStore:
    """Numbered job events, appended in batches, read back in order."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def append(self, events: Sequence[EventRecord]) -> None:
        if not events:
            return
        now = utcnow()
        rows = [
            {
                "job_id": e.job_id,
                "seq": e.seq,
                "type": e.type,
                "data": e.data,
                "created_at": e.created_at or now,
            }
            for e in events
        ]

        def work(session: Session) -> None:
            session.execute(insert(JobEvent), rows)

        self._db.run(work)

    def after(self, job_id: str, seq: int, limit: int = 1000) -> list[EventRecord]:
        query = (
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.seq > seq)
            .order_by(JobEvent.seq)
            .limit(limit)
        )
        return self._db.run(
            lambda session: [
                EventRecord(row.job_id, row.seq, row.type, dict(row.data), row.created_at)
                for row in session.scalars(query)
            ]
        )

    def last_seq(self, job_id: str) -> int:
        query = select(func.max(JobEvent.seq)).where(JobEvent.job_id == job_id)
        return int(self._db.run(lambda session: session.scalar(query)) or 0)
