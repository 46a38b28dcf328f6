"""SQL adapter of :class:`~ember.storage.protocol.ChunkStore`: documents, versions, chunks,
embeddings and the database's own keyword search (FTS5 bm25 / Postgres ``ts_rank_cd``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    ColumnElement,
    Text,
    and_,
    cast,
    column,
    func,
    literal_column,
    select,
    table,
    update,
)
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.orm import Session

from ember.errors import DimensionMismatch
from ember.memory.filters import Filter
from ember.storage.database import Database
from ember.storage.filter_sql import filter_clause
from ember.storage.records import (
    ChunkRecord,
    LiveVersion,
    NewChunk,
    NewVersion,
    WrittenVersion,
)
from ember.storage.tables import Chunk, Document, DocumentVersion, Embedding, utcnow

__all__ = ["SqlChunkStore", "chunk_metadata"]

_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = frozenset(
    "a about above after again against all am an and any are as at be because been before "
    "being below between both but by can did do does doing down during each few for from "
    "further had has have having he her here hers herself him himself his how i if in into is "
    "it its itself just me more most my myself no nor not now of off on once only or other our "
    "ours ourselves out over own same she should so some such than that the their theirs them "
    "themselves then there these they this those through to too under until up very was we "
    "were what when where which while who whom why will with you your yours yourself "
    "yourselves".split()
)
_PG_VECTOR = (
    "(setweight(to_tsvector('english', coalesce(chunks.title, '')), 'A') || "
    "setweight(to_tsvector('english', chunks.text), 'B'))"
)


def chunk_metadata(version: NewVersion) -> dict[str, Any]:
    """What filters see for each chunk: the user's metadata plus ``source`` and
    ``media_type`` (which win over user keys of the same name)."""
    return {**version.metadata, "source": version.source, "media_type": version.media_type}


def _fetch_all(query: Any) -> Callable[[Session], list[Any]]:
    return lambda session: list(session.execute(query))


def _embedded(
    collection_id: str, model_id: str, shard: tuple[int, int] | None
) -> ColumnElement[bool]:
    """Live chunks of the collection with an embedding under ``model_id`` (the query joins
    ``embeddings``), only those of shard ``index`` of ``count`` when ``shard`` is given."""
    condition = and_(
        Chunk.collection_id == collection_id,
        Chunk.retired.is_(False),
        Embedding.model_id == model_id,
    )
    if shard is None:
        return condition
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard}")
    return and_(condition, Chunk.id % count == index)


class SqlChunkStore:
    """Documents and their chunks in SQL."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def live_version(self, collection_id: str, source: str) -> LiveVersion | None:
        def work(session: Session) -> LiveVersion | None:
            row = session.execute(
                select(Document.id, Document.current_version, DocumentVersion.content_hash)
                .join(
                    DocumentVersion,
                    (DocumentVersion.document_id == Document.id)
                    & (DocumentVersion.version == Document.current_version),
                )
                .where(Document.collection_id == collection_id, Document.source == source)
            ).first()
            return LiveVersion(row[0], row[1], row[2]) if row else None

        return self._db.run(work)

    def live_hashes(self, collection_id: str) -> dict[str, str]:
        query = (
            select(Document.source, DocumentVersion.content_hash)
            .join(
                DocumentVersion,
                (DocumentVersion.document_id == Document.id)
                & (DocumentVersion.version == Document.current_version),
            )
            .where(Document.collection_id == collection_id)
        )
        return {str(row[0]): str(row[1]) for row in self._db.run(_fetch_all(query))}

    def source_with_content(self, collection_id: str, content_hash: str) -> str | None:
        def work(session: Session) -> str | None:
            return session.scalar(
                select(Document.source)
                .join(DocumentVersion, DocumentVersion.document_id == Document.id)
                .where(
                    Document.collection_id == collection_id,
                    DocumentVersion.content_hash == content_hash,
                    DocumentVersion.version == Document.current_version,
                )
                .limit(1)
            )

        return self._db.run(work)

    def write_version(
        self,
        collection_id: str,
        version: NewVersion,
        vectors: npt.NDArray[np.float32],
        model_id: str,
    ) -> WrittenVersion:
        if vectors.ndim != 2 or vectors.shape[0] != len(version.chunks):
            raise DimensionMismatch(
                f"{len(version.chunks)} chunks but vectors of shape {vectors.shape}"
            )
        metadata = chunk_metadata(version)
        dim = int(vectors.shape[1])
        blobs = [np.ascontiguousarray(row, dtype=np.float32).tobytes() for row in vectors]

        def work(session: Session) -> WrittenVersion:
            document = session.scalars(
                select(Document)
                .where(Document.collection_id == collection_id, Document.source == version.source)
                .with_for_update()
            ).first()
            if document is None:
                document = Document(collection_id=collection_id, source=version.source)
                document.current_version = 0
                session.add(document)
                session.flush()
            retired: list[int] = []
            if document.current_version:
                retired = list(
                    session.scalars(
                        select(Chunk.id).where(
                            Chunk.document_id == document.id, Chunk.retired.is_(False)
                        )
                    )
                )
                session.execute(
                    update(Chunk)
                    .where(Chunk.document_id == document.id, Chunk.retired.is_(False))
                    .values(retired=True)
                )
                session.execute(
                    update(DocumentVersion)
                    .where(
                        DocumentVersion.document_id == document.id,
                        DocumentVersion.retired_at.is_(None),
                    )
                    .values(retired_at=utcnow())
                )
            number = document.current_version + 1
            row = DocumentVersion(
                document_id=document.id,
                version=number,
                content_hash=version.content_hash,
                size_bytes=version.size_bytes,
                meta=dict(version.metadata),
            )
            session.add(row)
            document.current_version = number
            document.title = version.title
            document.media_type = version.media_type
            document.meta = dict(version.metadata)
            session.flush()
            chunks = [
                Chunk(
                    version_id=row.id,
                    document_id=document.id,
                    collection_id=collection_id,
                    ordinal=ordinal,
                    title=version.title,
                    text=chunk.text,
                    content_hash=version.content_hash,
                    token_count=chunk.token_count,
                    char_start=chunk.char_start,
                    char_end=chunk.char_end,
                    meta=metadata,
                    retired=False,
                )
                for ordinal, chunk in enumerate(version.chunks)
            ]
            session.add_all(chunks)
            session.flush()
            session.add_all(
                Embedding(chunk_id=chunk.id, model_id=model_id, dim=dim, vector=blob)
                for chunk, blob in zip(chunks, blobs, strict=True)
            )
            return WrittenVersion(document.id, number, [c.id for c in chunks], retired)

        return self._db.run(work)

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
        return {int(row[0]): row[1] for row in self._db.run(_fetch_all(query))}

    def embeddings(
        self,
        collection_id: str,
        model_id: str,
        batch_size: int = 2048,
        *,
        shard: tuple[int, int] | None = None,
    ) -> Iterator[tuple[list[int], npt.NDArray[np.float32], list[dict[str, Any]]]]:
        last = -1
        while True:
            query = (
                select(Chunk.id, Embedding.dim, Embedding.vector, Chunk.meta)
                .join(Embedding, Embedding.chunk_id == Chunk.id)
                .where(
                    _embedded(collection_id, model_id, shard),
                    Chunk.id > last,
                )
                .order_by(Chunk.id)
                .limit(batch_size)
            )
            rows = self._db.run(_fetch_all(query))
            if not rows:
                return
            ids = [row[0] for row in rows]
            vectors = np.stack([np.frombuffer(row[2], dtype=np.float32) for row in rows])
            yield ids, vectors, [dict(row[3]) for row in rows]
            last = ids[-1]

    def embedding_count(
        self, collection_id: str, model_id: str, *, shard: tuple[int, int] | None = None
    ) -> int:
        query = (
            select(func.count(Chunk.id))
            .join(Embedding, Embedding.chunk_id == Chunk.id)
            .where(_embedded(collection_id, model_id, shard))
        )
        return int(self._db.run(lambda session: session.scalar(query)) or 0)

    def vectors(self, ids: Sequence[int], model_id: str) -> dict[int, npt.NDArray[np.float32]]:
        if not ids:
            return {}
        query = select(Embedding.chunk_id, Embedding.vector).where(
            Embedding.chunk_id.in_(list(ids)), Embedding.model_id == model_id
        )
        rows = self._db.run(_fetch_all(query))
        return {int(row[0]): np.frombuffer(row[1], dtype=np.float32) for row in rows}

    def unembedded(
        self, collection_id: str, model_id: str, batch_size: int = 256
    ) -> Iterator[list[tuple[int, str | None, str, dict[str, Any]]]]:
        missing = (
            select(Embedding.id)
            .where(Embedding.chunk_id == Chunk.id, Embedding.model_id == model_id)
            .exists()
        )
        last = -1
        while True:
            query = (
                select(Chunk.id, Chunk.title, Chunk.text, Chunk.meta)
                .where(
                    Chunk.collection_id == collection_id,
                    Chunk.retired.is_(False),
                    Chunk.id > last,
                    ~missing,
                )
                .order_by(Chunk.id)
                .limit(batch_size)
            )
            rows = [(int(r[0]), r[1], r[2], dict(r[3])) for r in self._db.run(_fetch_all(query))]
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def unembedded_sql(self, collection_id: str, model_id: str) -> tuple[str, Any]:
        query = select(Chunk.id, Chunk.title, Chunk.text).where(
            Chunk.collection_id == collection_id,
            Chunk.retired.is_(False),
            ~select(Embedding.id)
            .where(Embedding.chunk_id == Chunk.id, Embedding.model_id == model_id)
            .exists(),
        )
        return self._db.compile(query)

    def live_chunk_count(self, collection_id: str) -> int:
        query = select(func.count(Chunk.id)).where(
            Chunk.collection_id == collection_id, Chunk.retired.is_(False)
        )
        return int(self._db.run(lambda session: session.scalar(query)) or 0)

    def add_embeddings(
        self, ids: Sequence[int], vectors: npt.NDArray[np.float32], model_id: str
    ) -> None:
        if len(ids) != len(vectors):
            raise DimensionMismatch(f"{len(ids)} chunks but {len(vectors)} vectors")
        if not len(ids):
            return
        dim = int(vectors.shape[1])
        rows = np.ascontiguousarray(vectors, dtype=np.float32)

        def work(session: Session) -> None:
            session.add_all(
                Embedding(chunk_id=int(i), model_id=model_id, dim=dim, vector=row.tobytes())
                for i, row in zip(ids, rows, strict=True)
            )

        self._db.run(work)

    def retired_embedded(self, collection_id: str, model_id: str) -> list[int]:
        query = (
            select(Chunk.id)
            .join(Embedding, Embedding.chunk_id == Chunk.id)
            .where(
                Chunk.collection_id == collection_id,
                Chunk.retired.is_(True),
                Embedding.model_id == model_id,
            )
        )
        return [int(row[0]) for row in self._db.run(_fetch_all(query))]

    def live_documents(
        self, collection_id: str, model_id: str
    ) -> Iterator[tuple[NewVersion, npt.NDArray[np.float32]]]:
        document_ids = self._db.run(
            lambda session: list(
                session.scalars(
                    select(Document.id)
                    .where(Document.collection_id == collection_id)
                    .order_by(Document.source)
                )
            )
        )
        for document_id in document_ids:
            found = self._db.run(
                partial(self._live_document, document_id=document_id, model_id=model_id)
            )
            if found is not None:
                yield found

    @staticmethod
    def _live_document(
        session: Session, document_id: str, model_id: str
    ) -> tuple[NewVersion, npt.NDArray[np.float32]] | None:
        document = session.get(Document, document_id)
        if document is None or not document.current_version:
            return None
        version = session.scalars(
            select(DocumentVersion).where(
                DocumentVersion.document_id == document_id,
                DocumentVersion.version == document.current_version,
            )
        ).one()
        rows = list(
            session.execute(
                select(Chunk, Embedding.vector)
                .join(
                    Embedding, (Embedding.chunk_id == Chunk.id) & (Embedding.model_id == model_id)
                )
                .where(Chunk.version_id == version.id)
                .order_by(Chunk.ordinal)
            )
        )
        chunks = [
            NewChunk(chunk.text, chunk.char_start, chunk.char_end, chunk.token_count)
            for chunk, _ in rows
        ]
        vectors = (
            np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in rows])
            if rows
            else np.zeros((0, 0), dtype=np.float32)
        )
        return (
            NewVersion(
                source=document.source,
                title=document.title,
                media_type=document.media_type or "text/plain",
                content_hash=version.content_hash,
                size_bytes=version.size_bytes,
                metadata=dict(version.meta),
                chunks=chunks,
            ),
            vectors,
        )

    def keyword_search(
        self, collection_id: str, query: str, k: int, where: Filter | None = None
    ) -> list[tuple[int, float]]:
        words = [w for w in _WORD.findall(query.lower()) if w not in _STOPWORDS]
        if not words or k <= 0:
            return []
        condition = filter_clause(Chunk.meta, self._db.dialect, where)
        if self._db.dialect == "sqlite":
            fts: ColumnElement[Any] = literal_column("chunks_fts")
            rank = func.bm25(fts, 2.0, 1.0)
            fts_table = table("chunks_fts", column("rowid"))
            statement = (
                select(Chunk.id, rank)
                .select_from(Chunk)
                .join(fts_table, fts_table.c.rowid == Chunk.id)
                .where(
                    fts.op("MATCH")(" OR ".join(f'"{word}"' for word in words)),
                    Chunk.collection_id == collection_id,
                    Chunk.retired.is_(False),
                    condition,
                )
                .order_by(rank)
                .limit(k)
            )
            rows = self._db.run(lambda session: list(session.execute(statement)))
            return [(int(row[0]), -float(row[1])) for row in rows]
        vector: ColumnElement[Any] = literal_column(_PG_VECTOR)
        tsquery = cast(
            func.replace(cast(func.plainto_tsquery("english", " ".join(words)), Text), "&", "|"),
            TSQUERY,
        )
        rank = func.ts_rank_cd(literal_column("'{0.1,0.2,0.5,1.0}'::float4[]"), vector, tsquery)
        statement = (
            select(Chunk.id, rank)
            .where(
                vector.op("@@")(tsquery),
                Chunk.collection_id == collection_id,
                Chunk.retired.is_(False),
                condition,
            )
            .order_by(rank.desc())
            .limit(k)
        )
        rows = self._db.run(lambda session: list(session.execute(statement)))
        return [(int(row[0]), float(row[1])) for row in rows]
