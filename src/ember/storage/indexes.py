"""SQL registry of vector indexes: one ``live`` index per collection, swapped atomically.

States: ``building → live → retired`` (and ``building → retired`` for a failed build). Each
transition is one UPDATE guarded by the expected state; :meth:`SqlIndexRegistry.promote`
retires the old live index and makes the new one live in the same transaction, so readers
always find exactly one live index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ember.errors import Conflict
from ember.storage.clock import utcnow
from ember.storage.database import Database
from ember.storage.tables import VectorIndexRecord

__all__ = ["IndexRecord", "SqlIndexRegistry"]


@dataclass(frozen=True, slots=True)
class IndexRecord:
    """A vector index as registered."""

    id: str
    collection_id: str
    model_id: str
    dim: int
    backend: str
    state: str
    params: dict[str, Any]
    updated_at: datetime | None = None
    """Moves on every state change and every :meth:`SqlIndexRegistry.touch`: a process
    holding the index open reloads it when this differs from what it loaded."""


def _record(row: VectorIndexRecord) -> IndexRecord:
    return IndexRecord(
        row.id,
        row.collection_id,
        row.model_id,
        row.dim,
        row.backend,
        row.state,
        dict(row.params),
        row.updated_at,
    )


class SqlIndexRegistry:
    """Index records in the ``indexes`` table."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def create(
        self,
        collection_id: str,
        model_id: str,
        dim: int,
        backend: str,
        params: dict[str, Any] | None = None,
        *,
        live: bool = False,
    ) -> IndexRecord:
        """Register a new index, ``building`` (or directly ``live`` for a first, empty one)."""

        def work(session: Session) -> IndexRecord:
            row = VectorIndexRecord(
                collection_id=collection_id,
                model_id=model_id,
                dim=dim,
                backend=backend,
                state="live" if live else "building",
                params=dict(params or {}),
            )
            session.add(row)
            session.flush()
            return _record(row)

        return self._db.run(work)

    def live(self, collection_id: str) -> IndexRecord | None:
        """The collection's live index, if any."""

        def work(session: Session) -> IndexRecord | None:
            row = session.scalars(
                select(VectorIndexRecord).where(
                    VectorIndexRecord.collection_id == collection_id,
                    VectorIndexRecord.state == "live",
                )
            ).first()
            return _record(row) if row else None

        return self._db.run(work)

    def every_live(self) -> list[IndexRecord]:
        """The live index of every collection (of every workspace), by collection id."""
        query = (
            select(VectorIndexRecord)
            .where(VectorIndexRecord.state == "live")
            .order_by(VectorIndexRecord.collection_id)
        )
        return self._db.run(lambda session: [_record(row) for row in session.scalars(query)])

    def all(self, collection_id: str) -> list[IndexRecord]:
        """Every index the collection ever had, oldest first."""
        query = (
            select(VectorIndexRecord)
            .where(VectorIndexRecord.collection_id == collection_id)
            .order_by(VectorIndexRecord.created_at, VectorIndexRecord.id)
        )
        return self._db.run(lambda session: [_record(row) for row in session.scalars(query)])

    def touch(self, index_id: str) -> datetime:
        """Record that the index's stored copy changed (after a flush); returns the new
        ``updated_at``."""
        moment = utcnow()

        def work(session: Session) -> None:
            session.execute(
                update(VectorIndexRecord)
                .where(VectorIndexRecord.id == index_id)
                .values(updated_at=moment)
            )

        self._db.run(work)
        return moment

    def promote(self, index_id: str) -> IndexRecord | None:
        """Make a ``building`` index live and retire the previous live one, atomically.

        Returns the retired record, or ``None`` when there was no live index.

        :raises Conflict: the index is not ``building`` (promoted or retired meanwhile).
        """

        def work(session: Session) -> IndexRecord | None:
            target = session.get(VectorIndexRecord, index_id, with_for_update=True)
            if target is None or target.state != "building":
                raise Conflict(f"index {index_id} is not building")
            old = session.scalars(
                select(VectorIndexRecord).where(
                    VectorIndexRecord.collection_id == target.collection_id,
                    VectorIndexRecord.state == "live",
                )
            ).first()
            if old is not None:
                self._move(session, old.id, "live", "retired")
            self._move(session, index_id, "building", "live")
            return _record(old) if old is not None else None

        return self._db.run(work)

    def retire(self, index_id: str) -> None:
        """Retire a ``building`` index whose build failed.

        :raises Conflict: it is not ``building``.
        """
        self._db.run(lambda session: self._move(session, index_id, "building", "retired"))

    @staticmethod
    def _move(session: Session, index_id: str, expected: str, state: str) -> None:
        result = session.execute(
            update(VectorIndexRecord)
            .where(VectorIndexRecord.id == index_id, VectorIndexRecord.state == expected)
            .values(state=state, updated_at=utcnow())
        )
        if getattr(result, "rowcount", 0) != 1:
            raise Conflict(f"index {index_id} is not {expected}")
