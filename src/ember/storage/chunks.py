"""SQL adapter of :class:`~ember.storage.protocol.ChunkReader`: chunks read back by id, with
their document's source and version, and the metadata filters see on each chunk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ember.storage._rows import fetch_all
from ember.storage.database import Database
from ember.storage.records import ChunkRecord, NewVersion
from ember.storage.tables import Chunk, Document, DocumentVersion

__all__ = ["SqlChunkReader", "chunk_metadata"]


def chunk_metadata(version: NewVersion) -> dict[str, Any]:
    """What filters see for each chunk: the user's metadata plus ``source`` and
    ``media_type`` (which win over user keys of the same name)."""
    return {**version.metadata, "source": version.source, "media_type": version.media_type}


class SqlChunkReader:
    """Chunks in SQL, read by id (they are written with their version, see
    :class:`~ember.storage.versions.SqlVersionStore`)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def chunks(self, ids: Sequence[int], *, live_only: bool = False) -> dict[int, ChunkRecord]:
        if not ids:
            return {}
        query = (
            select(Chunk, Document.source, DocumentVersion.version)
            .join(Document, Document.id == Chunk.document_id)
            .join(DocumentVersion, DocumentVersion.id == Chunk.version_id)
            .where(Chunk.id.in_(list(ids)))
        )
        if live_only:
            query = query.where(Chunk.retired.is_(False))

        def work(session: Session) -> dict[int, ChunkRecord]:
            rows = session.execute(query)
            return {
                chunk.id: ChunkRecord(
                    id=chunk.id,
                    collection_id=chunk.collection_id,
                    document_id=chunk.document_id,
                    source=source,
                    version=number,
                    ordinal=chunk.ordinal,
                    title=chunk.title,
                    text=chunk.text,
                    char_start=chunk.char_start,
                    char_end=chunk.char_end,
                    token_count=chunk.token_count,
                    metadata=dict(chunk.meta),
                )
                for chunk, source, number in rows
            }

        return self._db.run(work)

    def owners(self, ids: Sequence[int]) -> dict[int, str]:
        if not ids:
            return {}
        query = select(Chunk.id, Chunk.document_id).where(
            Chunk.id.in_(list(set(ids))), Chunk.retired.is_(False)
        )
        return {int(row[0]): row[1] for row in self._db.run(fetch_all(query))}

    def live_chunk_count(self, collection_id: str) -> int:
        query = select(func.count(Chunk.id)).where(
            Chunk.collection_id == collection_id, Chunk.retired.is_(False)
        )
        return int(self._db.run(lambda session: session.scalar(query)) or 0)
