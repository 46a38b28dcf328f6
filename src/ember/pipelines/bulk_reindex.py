"""Bulk reindex on Ray Data: re-embed a collection's chunks in an actor pool, then swap.

Step 1 of :mod:`ember.memory.reindex` (embed every live chunk that lacks a vector of the new
model) is the expensive one; here Ray Data does it: ``read_sql`` streams the chunks (sharded
by id where the database has ``MOD`` and ``ABS``, as SQLite and Postgres do), an
``EmbeddingWorker`` pool embeds them, and the driver stores the vectors in the ``embeddings``
table as they come. Then :class:`~ember.memory.reindex.Reindexer` does the rest in the
driver: it finds nothing left to embed but what arrived meanwhile, builds the new index from
the table beside the live one, swaps it in atomically and retires the old one. Searches use
the old index until the swap. A run stopped half-way keeps what it stored: the next run
embeds only what is still missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import ray.data

from ember.config import EmberConfig
from ember.errors import DimensionMismatch
from ember.memory.preparer import embedding_text
from ember.memory.reindex import ReindexProgress, ReindexReport
from ember.memory.service import MemoryService
from ember.pipelines._stages import embedded, quiet
from ember.storage import Database

__all__ = ["BulkReindex"]

_ROWS_PER_BLOCK = 2000


def _texts(batch: dict[str, Any]) -> dict[str, Any]:
    """Chunk rows (``id``, ``title``, ``text``) to worker rows (``id``, ``texts``)."""
    texts = np.empty(len(batch["id"]), dtype=object)
    texts[:] = [
        [embedding_text(None if title is None else str(title), str(text))]
        for title, text in zip(batch["title"], batch["text"], strict=True)
    ]
    return {"id": np.asarray(batch["id"], dtype=np.int64), "texts": texts}


class BulkReindex:
    """Reindexes collections of one memory plane with its configured embedding model."""

    def __init__(
        self,
        config: EmberConfig,
        memory: MemoryService,
        database: Database,
        *,
        batch_chunks: int = 256,
        no_progress_timeout_s: float | None = None,
    ) -> None:
        self._config = config
        self._memory = memory
        self._database = database
        self._batch = batch_chunks
        self._timeout = no_progress_timeout_s

    def run(
        self, collection: str, progress: Callable[[ReindexProgress], None] | None = None
    ) -> ReindexReport:
        """Reindex ``collection`` (see the module docstring); the report's ``embedded`` counts
        the chunks embedded by both steps.

        :raises CollectionNotFound: no such collection.
        :raises DimensionMismatch: the workers' vectors do not have the embedder's dimension.
        """
        memory = self._memory
        record = memory.collections.get(collection)
        embedder = memory.embedder
        done = 0
        total = memory.store.live_chunk_count(record.id)
        if total:
            for batch in self._dataset(record.id, embedder.model_id, total).iter_batches(
                batch_size=self._batch, batch_format="numpy"
            ):
                ids = [int(value) for value in batch["id"]]
                vectors = np.frombuffer(b"".join(batch["vectors"]), dtype=np.float32)
                if vectors.size != len(ids) * embedder.dim:
                    raise DimensionMismatch(
                        f"the embedding workers gave {vectors.size} floats for {len(ids)} "
                        f"chunks; {embedder.model_id} has dimension {embedder.dim}"
                    )
                memory.store.add_embeddings(
                    ids, vectors.reshape(len(ids), embedder.dim), embedder.model_id
                )
                done += len(ids)
                if progress is not None:
                    progress(ReindexProgress("embed", done))
        report = memory.reindexer.reindex(collection, embedder, progress)
        return replace(report, embedded=report.embedded + done)

    def _dataset(self, collection_id: str, model_id: str, total: int) -> ray.data.Dataset:
        quiet(self._timeout)
        query = self._memory.store.unembedded_query(collection_id, model_id)
        chunks = ray.data.read_sql(
            query.sql,
            self._database.dbapi_connector(),
            sql_params=query.params,
            shard_keys=["id"],
            shard_hash_fn="ABS",
            override_num_blocks=max(1, math.ceil(total / _ROWS_PER_BLOCK)),
            num_cpus=0.25,
        )
        return embedded(
            chunks.map_batches(_texts, batch_format="numpy", num_cpus=0.25),
            self._config,
            self._batch,
        )
