"""Reindex: move a collection to another embedding model without a moment of downtime.

1. Every live chunk without an embedding under the new model is embedded and stored in the
   ``embeddings`` table (resumable: a run that stops half-way continues where it left off).
2. A new vector index is built from those rows beside the live one and swapped in by the
   registry's guarded promote (old ``live → retired``, new ``building → live``); searches use
   the old index until then.
3. Catch-up: chunks ingested while the new index was building are embedded and added to it,
   and chunks retired meanwhile are removed from it.

The old model's embeddings stay in the table, so moving back is a rebuild, not a re-embed.
The bulk, distributed version of step 1 runs on Ray Data; this one runs in-process.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ember.errors import DimensionMismatch
from ember.memory.indexes import IndexManager
from ember.memory.preparer import embedding_text
from ember.providers.protocol import Embedder
from ember.storage.protocol import CollectionRepository, EmbeddingStore
from ember.vectors.protocol import VectorIndex

__all__ = ["ReindexProgress", "ReindexReport", "Reindexer"]


@dataclass(frozen=True)
class ReindexProgress:
    """Running totals: ``phase`` is ``embed``, ``build`` or ``catch_up``."""

    phase: str
    done: int


@dataclass(frozen=True)
class ReindexReport:
    """What a reindex did."""

    collection: str
    from_model: str | None
    to_model: str
    index_id: str
    embedded: int
    vectors: int
    caught_up: int
    seconds: float


class Reindexer:
    """Re-embeds a collection with another model and swaps its index."""

    def __init__(
        self,
        collections: CollectionRepository,
        store: EmbeddingStore,
        indexes: IndexManager,
        batch_size: int = 256,
    ) -> None:
        self._collections = collections
        self._store = store
        self._indexes = indexes
        self._batch_size = batch_size

    def with_collections(self, collections: CollectionRepository) -> Reindexer:
        """This reindexer over ``collections`` (another workspace's view), sharing
        everything else."""
        clone = copy.copy(self)
        clone._collections = collections
        return clone

    def reindex(
        self,
        collection: str,
        embedder: Embedder,
        progress: Callable[[ReindexProgress], None] | None = None,
    ) -> ReindexReport:
        """Index ``collection`` with ``embedder``'s model (see the module docstring). Also
        rebuilds the index from the table when the model is already the live one.

        :raises CollectionNotFound: no such collection.
        :raises DimensionMismatch: the embedder returned vectors of another width than it
            declares.
        """
        started = time.perf_counter()
        record = self._collections.get(collection)
        live = self._indexes.current(record.id)
        from_model = live[0].model_id if live is not None else None
        embedded = self._embed_missing(record.id, embedder, None, progress)

        def built(count: int) -> None:
            if progress is not None:
                progress(ReindexProgress("build", count))

        index_record = self._indexes.rebuild(record.id, embedder.model_id, embedder.dim, built)
        current = self._indexes.current(record.id)
        assert current is not None
        index = current[1]
        caught_up = self._embed_missing(record.id, embedder, index, progress)
        index.delete(self._store.retired_embedded(record.id, embedder.model_id))
        self._indexes.flush(record.id)
        if record.embedding_model != embedder.model_id:
            self._collections.set_embedding_model(collection, embedder.model_id)
        return ReindexReport(
            collection=collection,
            from_model=from_model,
            to_model=embedder.model_id,
            index_id=index_record.id,
            embedded=embedded,
            vectors=index.count(),
            caught_up=caught_up,
            seconds=time.perf_counter() - started,
        )

    def _embed_missing(
        self,
        collection_id: str,
        embedder: Embedder,
        index: VectorIndex | None,
        progress: Callable[[ReindexProgress], None] | None,
    ) -> int:
        done = 0
        phase = "embed" if index is None else "catch_up"
        for rows in self._store.unembedded(collection_id, embedder.model_id, self._batch_size):
            ids = [row[0] for row in rows]
            vectors = embedder.embed_documents([embedding_text(row[1], row[2]) for row in rows])
            if vectors.shape != (len(ids), embedder.dim):
                raise DimensionMismatch(
                    f"{embedder.model_id} returned vectors of shape {vectors.shape}, "
                    f"expected ({len(ids)}, {embedder.dim})"
                )
            self._store.add_embeddings(ids, vectors, embedder.model_id)
            if index is not None:
                index.upsert(ids, np.ascontiguousarray(vectors), [row[3] for row in rows])
            done += len(ids)
            if progress is not None:
                progress(ReindexProgress(phase, done))
        return done
