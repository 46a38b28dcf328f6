"""SQL adapter of :class:`~ember.storage.protocol.AuditLog`, and :func:`audited`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ember.errors import EmberError
from ember.storage.database import Database
from ember.storage.protocol import AuditLog
from ember.storage.records import AuditRecord
from ember.storage.tables import DEFAULT_WORKSPACE, AuditEntry

__all__ = ["AuditDraft", "SqlAuditLog", "add_entry", "audited", "record_failure"]

log = logging.getLogger(__name__)


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
        workspace=row.workspace,
    )


def add_entry(session: Session, entry: AuditRecord) -> AuditRecord:
    """Add ``entry`` to ``session``'s transaction (it commits with whatever else the
    transaction writes, or not at all)."""
    row = AuditEntry(
        actor=entry.actor,
        action=entry.action,
        resource=entry.resource,
        outcome=entry.outcome,
        request_id=entry.request_id,
        detail=dict(entry.detail),
        workspace=entry.workspace,
    )
    session.add(row)
    session.flush()
    return _record(row)


class SqlAuditLog:
    """Audit entries in the ``audit_log`` table."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def append(self, entry: AuditRecord) -> AuditRecord:
        return self._db.run(lambda session: add_entry(session, entry))

    def list(
        self, *, actor: str | None = None, action: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if actor is not None:
            query = query.where(AuditEntry.actor == actor)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        return self._db.run(lambda session: [_record(row) for row in session.scalars(query)])


@dataclass(slots=True)
class AuditDraft:
    """The entry :func:`audited` will append; the action may set ``resource`` and ``detail``."""

    actor: str
    action: str
    resource: str
    request_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    workspace: str = DEFAULT_WORKSPACE

    def entry(self, outcome: str, **detail: Any) -> AuditRecord:
        return AuditRecord(
            actor=self.actor,
            action=self.action,
            resource=self.resource,
            outcome=outcome,
            request_id=self.request_id,
            detail={**self.detail, **detail},
            workspace=self.workspace,
        )


@contextmanager
def audited(
    audit: AuditLog,
    actor: str,
    action: str,
    resource: str,
    *,
    request_id: str | None = None,
    workspace: str = DEFAULT_WORKSPACE,
) -> Iterator[AuditDraft]:
    """Append one entry for the action in the ``with`` body once it ends.

    Outcome ``ok`` when the body returns; ``error`` with the error's ``code`` in ``detail``
    when it raises (the exception propagates unchanged). A failure to write the ``ok`` entry
    propagates; a failure to write an ``error`` entry is logged, so it never hides the
    original error.
    """
    draft = AuditDraft(actor, action, resource, request_id, workspace=workspace)
    try:
        yield draft
    except Exception as exc:
        record_failure(audit, draft, exc)
        raise
    audit.append(draft.entry("ok"))


def record_failure(audit: AuditLog, draft: AuditDraft, exc: BaseException) -> None:
    """Append ``draft`` with outcome ``error`` and the code of ``exc``; a failure to write it
    is logged, never raised, so it cannot hide ``exc``."""
    code = exc.code if isinstance(exc, EmberError) else EmberError.code
    try:
        audit.append(draft.entry("error", code=code))
    except Exception:
        log.exception("could not write the audit entry", extra={"action": draft.action})
