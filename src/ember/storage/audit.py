"""SQL adapter of :class:`~ember.storage.protocol.AuditLog`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ember.storage.database import Database
from ember.storage.records import AuditRecord
from ember.storage.tables import AuditEntry

__all__ = ["SqlAuditLog"]


def _record(row: AuditEntry) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        ts=row.ts,
        actor=row.actor,
        action=row.action,
        resource=row.resource,
        outcome=row.outcome,
        request_id=row.request_id,
        detail=dict(row.detail),
    )


class SqlAuditLog:
    """Audit entries in the ``audit_log`` table."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def append(self, entry: AuditRecord) -> AuditRecord:
        def work(session: Session) -> AuditRecord:
            row = AuditEntry(
                actor=entry.actor,
                action=entry.action,
                resource=entry.resource,
                outcome=entry.outcome,
                request_id=entry.request_id,
                detail=dict(entry.detail),
            )
            session.add(row)
            session.flush()
            return _record(row)

        return self._db.run(work)

    def list(
        self, *, actor: str | None = None, action: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if actor is not None:
            query = query.where(AuditEntry.actor == actor)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        return self._db.run(lambda session: [_record(row) for row in session.scalars(query)])
