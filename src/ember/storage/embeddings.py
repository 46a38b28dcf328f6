"""SQL adapter of :class:`~ember.storage.protocol.EmbeddingStore`: chunk vectors per model.

A vector index is rebuilt from here (every live chunk's vector, optionally one shard's), a
reindex fills in what a new model lacks, and search reads stored vectors back for MMR.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from ember.errors import DimensionMismatch
from ember.storage._rows import fetch_all
from ember.storage.database import Database
from ember.storage.records import DbapiQuery
from ember.storage.tables import Chunk, Embedding

__all__ = ["SqlEmbeddingStore"]


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


class SqlEmbeddingStore:
    """Chunk embeddings in SQL, one row per chunk and model."""

    def __init__(self, database: Database) -> None:
        self._db = database

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
            rows = self._db.run(fetch_all(query))
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
        rows = self._db.run(fetch_all(query))
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
            rows = [(int(r[0]), r[1], r[2], dict(r[3])) for r in self._db.run(fetch_all(query))]
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def unembedded_query(self, collection_id: str, model_id: str) -> DbapiQuery:
        query = select(Chunk.id, Chunk.title, Chunk.text).where(
            Chunk.collection_id == collection_id,
            Chunk.retired.is_(False),
            ~select(Embedding.id)
            .where(Embedding.chunk_id == Chunk.id, Embedding.model_id == model_id)
            .exists(),
        )
        return self._db.compile(query)

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
        return [int(row[0]) for row in self._db.run(fetch_all(query))]
