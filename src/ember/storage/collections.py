"""SQL adapter of :class:`~ember.storage.protocol.CollectionRepository`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ember.errors import CollectionExists, CollectionNotFound
from ember.storage.database import Database
from ember.storage.names import check_name
from ember.storage.records import CollectionRecord
from ember.storage.tables import DEFAULT_WORKSPACE, Collection

__all__ = ["SqlCollectionRepository"]


def _record(row: Collection) -> CollectionRecord:
    return CollectionRecord(
        id=row.id,
        name=row.name,
        description=row.description,
        embedding_model=row.embedding_model,
        metadata=dict(row.meta),
        created_at=row.created_at,
        workspace=row.workspace,
    )


class SqlCollectionRepository:
    """Collections of one workspace in the ``collections`` table: every method sees only
    ``workspace``'s collections (another workspace's name is not found, and free to take)."""

    def __init__(self, database: Database, workspace: str = DEFAULT_WORKSPACE) -> None:
        self._db = database
        self.workspace = workspace

    def in_workspace(self, workspace: str) -> SqlCollectionRepository:
        """The same table seen from ``workspace``."""
        return self if workspace == self.workspace else SqlCollectionRepository(self._db, workspace)

    def create(
        self,
        name: str,
        *,
        description: str = "",
        embedding_model: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> CollectionRecord:
        check_name("collection", name)

        def work(session: Session) -> CollectionRecord:
            row = Collection(
                workspace=self.workspace,
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

    def ensure(
        self, name: str, *, embedding_model: str | None = None
    ) -> tuple[CollectionRecord, bool]:
        """The collection ``name``, created first (recording ``embedding_model``) when
        missing; and whether this call created it. Safe under concurrent calls: exactly one
        creates it, the others read it."""
        try:
            return self.create(name, embedding_model=embedding_model), True
        except CollectionExists:
            return self.get(name), False

    def _named(self, name: str) -> Select[Collection]:
        return select(Collection).where(
            Collection.workspace == self.workspace, Collection.name == name
        )

    def get(self, name: str) -> CollectionRecord:
        def work(session: Session) -> CollectionRecord:
            row = session.scalars(self._named(name)).first()
            if row is None:
                raise CollectionNotFound(f"no collection named {name!r}")
            return _record(row)

        return self._db.run(work)

    def list(self, *, limit: int = 100, after: str | None = None) -> list[CollectionRecord]:
        query = (
            select(Collection)
            .where(Collection.workspace == self.workspace)
            .order_by(Collection.name)
            .limit(limit)
        )
        if after is not None:
            query = query.where(Collection.name > after)
        return self._db.run(lambda session: [_record(row) for row in session.scalars(query)])

    def set_embedding_model(self, name: str, model: str) -> None:
        """Record that ``name``'s live index now holds ``model``'s vectors (after a reindex).

        :raises CollectionNotFound: no such collection.
        """

        def work(session: Session) -> None:
            row = session.scalars(self._named(name)).first()
            if row is None:
                raise CollectionNotFound(f"no collection named {name!r}")
            row.embedding_model = model

        self._db.run(work)

    def delete(self, name: str) -> None:
        def work(session: Session) -> None:
            result = session.execute(
                delete(Collection).where(
                    Collection.workspace == self.workspace, Collection.name == name
                )
            )
            if getattr(result, "rowcount", 0) != 1:
                raise CollectionNotFound(f"no collection named {name!r}")

        self._db.run(work)
