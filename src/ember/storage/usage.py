"""SQL adapter of :class:`~ember.storage.protocol.UsageLog` over the ``usage`` table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from ember.storage.clock import utcnow
from ember.storage.database import Database
from ember.storage.records import UsageEntry, UsageGroup, UsageTotals
from ember.storage.tables import UsageRecord

__all__ = ["SqlUsageLog"]

_MICRO = Decimal("0.000001")


def _entry(row: UsageRecord) -> UsageEntry:
    return UsageEntry(
        principal=row.principal,
        provider=row.provider,
        model=row.model,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cost_usd=float(row.cost_usd),
        request_id=row.request_id,
        job_id=row.job_id,
        id=row.id,
        ts=row.ts,
        workspace=row.workspace,
    )


def _values(entry: UsageEntry) -> dict[str, object]:
    return {
        "ts": entry.ts or utcnow(),
        "principal": entry.principal,
        "provider": entry.provider,
        "model": entry.model,
        "prompt_tokens": entry.prompt_tokens,
        "completion_tokens": entry.completion_tokens,
        "cost_usd": Decimal(repr(entry.cost_usd)).quantize(_MICRO, ROUND_HALF_EVEN),
        "request_id": entry.request_id,
        "job_id": entry.job_id,
        "workspace": entry.workspace,
    }


def _row(entry: UsageEntry) -> UsageRecord:
    return UsageRecord(**_values(entry))


class SqlUsageLog:
    """Usage entries in the ``usage`` table; costs as ``NUMERIC(12, 6)``."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def record(self, entry: UsageEntry) -> UsageEntry:
        def work(session: Session) -> UsageEntry:
            row = _row(entry)
            session.add(row)
            session.flush()
            return _entry(row)

        return self._db.run(work)

    def record_many(self, entries: Sequence[UsageEntry]) -> int:
        rows = [_values(entry) for entry in entries]

        def work(session: Session) -> int:
            session.execute(insert(UsageRecord), rows)
            return len(rows)

        return self._db.run(work) if entries else 0

    def totals(
        self,
        *,
        since: datetime,
        principal: str | None = None,
        provider: str | None = None,
        workspace: str | None = None,
    ) -> UsageTotals:
        query = select(
            func.count(UsageRecord.id),
            func.coalesce(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0),
            func.coalesce(func.sum(UsageRecord.cost_usd), 0),
        ).where(UsageRecord.ts >= since)
        if principal is not None:
            query = query.where(UsageRecord.principal == principal)
        if provider is not None:
            query = query.where(UsageRecord.provider == provider)
        if workspace is not None:
            query = query.where(UsageRecord.workspace == workspace)

        def work(session: Session) -> UsageTotals:
            calls, tokens, cost = session.execute(query).one()
            return UsageTotals(calls=int(calls), tokens=int(tokens), cost_usd=float(cost))

        return self._db.run(work)

    def groups(
        self, *, since: datetime, workspace: str | None = None, principal: str | None = None
    ) -> list[UsageGroup]:
        keys = (UsageRecord.workspace, UsageRecord.principal, UsageRecord.provider)
        query = (
            select(
                *keys,
                func.count(UsageRecord.id),
                func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
                func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
                func.coalesce(func.sum(UsageRecord.cost_usd), 0),
            )
            .where(UsageRecord.ts >= since)
            .group_by(*keys)
            .order_by(*keys)
        )
        if workspace is not None:
            query = query.where(UsageRecord.workspace == workspace)
        if principal is not None:
            query = query.where(UsageRecord.principal == principal)
        return self._db.run(
            lambda session: [
                UsageGroup(str(ws), str(who), str(provider), int(n), int(p), int(c), float(cost))
                for ws, who, provider, n, p, c, cost in session.execute(query)
            ]
        )

    def list(
        self, *, principal: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[UsageEntry]:
        query = select(UsageRecord).order_by(UsageRecord.id.desc()).limit(limit)
        if principal is not None:
            query = query.where(UsageRecord.principal == principal)
        if provider is not None:
            query = query.where(UsageRecord.provider == provider)
        return self._db.run(lambda session: [_entry(row) for row in session.scalars(query)])
