"""SQL adapter of :class:`~ember.storage.protocol.CollectionRepository`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ember.errors import CollectionExists, CollectionNotFound
from ember.storage.database import Database
from ember.storage.records import CollectionRecord
from ember.storage.tables import Collection

__all__ = ["SqlCollectionRepository"]


def _record(row: Collection) -> CollectionRecord:
    return CollectionRecord(
        id=row.id,
        name=row.name,
        description=row.description,
        embedding_model=row.embedding_model,
        metadata=dict(row.meta),
        created_at=row.created_at,
    )


class SqlCollectionRepository:
    """Collections in the ``collections`` table."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def create(
        self,
        name: str,
        *,
        description: str = "",
        embedding_model: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> CollectionRecord:
        def work(session: Session) -> CollectionRecord:
            row = Collection(
                name=name,
                description=description,
                embedding_model=embedding_model,
                meta=dict(metadata or {}),
            )
            session.add(row)
            session.flush()
            return _record(row)

        try:
            return self._db.run(work)
        except IntegrityError as exc:
            raise CollectionExists(f"collection {name!r} already exists") from exc

    def get(self, name: str) -> CollectionRecord:
        def work(session: Session) -> CollectionRecord:
            row = session.scalars(select(Collection).where(Collection.name == name)).first()
            if row is None:
                raise CollectionNotFound(f"no collection named {name!r}")
            return _record(row)

        return self._db.run(work)

    def list(self, *, limit: int = 100, after: str | None = None) -> list[CollectionRecord]:
        query = select(Collection).order_by(Collection.name).limit(limit)
        if after is not None:
            query = query.where(Collection.name > after)
        return self._db.run(lambda session: [_record(row) for row in session.scalars(query)])

    def delete(self, name: str) -> None:
        def work(session: Session) -> None:
            result = session.execute(delete(Collection).where(Collection.name == name))
            if getattr(result, "rowcount", 0) != 1:
                raise CollectionNotFound(f"no collection named {name!r}")

        self._db.run(work)
