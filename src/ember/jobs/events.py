"""SQL adapter of :class:`~ember.jobs.protocol.EventStore`: the ``job_events`` table.

Appends are idempotent: an event whose ``(job_id, seq)`` is already stored is skipped
(``ON CONFLICT DO NOTHING`` on the table's unique constraint, on SQLite and Postgres alike),
so a batch written again after a commit its writer never saw confirmed (a dropped connection,
a retried transaction) cannot fail the hub's flushes for good.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
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
        """Store ``events``; one whose job already has an event of its number is skipped."""
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
        statement = self._insert_new()

        def work(session: Session) -> None:
            session.execute(statement, rows)

        self._db.run(work)

    def _insert_new(self) -> Any:
        """``INSERT … ON CONFLICT (job_id, seq) DO NOTHING`` in the database's dialect."""
        dialect = postgresql if self._db.dialect == "postgresql" else sqlite
        return dialect.insert(JobEvent).on_conflict_do_nothing(index_elements=["job_id", "seq"])

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

    def first_at(self, job_id: str) -> datetime | None:
        """When the job's first stored event was written (``None``: it has none)."""
        query = select(func.min(JobEvent.created_at)).where(JobEvent.job_id == job_id)
        found: datetime | None = self._db.run(lambda session: session.scalar(query))
        return found
