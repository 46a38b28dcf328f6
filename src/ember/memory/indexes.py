"""Live vector indexes per collection: open, fill, rebuild beside, swap.

A vector index is a cache of the ``embeddings`` table: :meth:`IndexManager.rebuild` builds a
fresh one from those rows beside the live one and swaps it in through the registry's atomic
promote. Searches keep using the old index until the swap; the old one is closed after, and
the ``retire`` hook (when given) frees what served it, such as its shard actors. An index that
fills itself on opening (shard actors rebuild from the table) is not filled twice, and one
whose entry count differs from the table's when it is opened (its writer died before
flushing) is refilled from the table first.

Several processes may open the same index (the API replica searches what a job worker
ingests): a writer calls :meth:`IndexManager.flush`, which moves the record's
``updated_at``, and every other process reopens the index from its store on its next use.
Two processes writing the same collection at the same moment can still lose each other's
vectors from the index (never from the table); ``reindex`` repairs it. Owning each index in
one actor (vector shards) removes this in the scale-out work.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import replace

from ember.storage.indexes import IndexRecord, SqlIndexRegistry
from ember.storage.protocol import EmbeddingStore
from ember.vectors.protocol import VectorIndex

__all__ = ["IndexFactory", "IndexManager"]

IndexFactory = Callable[[IndexRecord], VectorIndex]
"""Opens (or creates) the vector index a record describes."""

log = logging.getLogger(__name__)


class IndexManager:
    """Hands out each collection's live :class:`VectorIndex` and rebuilds it."""

    def __init__(
        self,
        registry: SqlIndexRegistry,
        store: EmbeddingStore,
        factory: IndexFactory,
        backend: str,
        params: dict[str, object] | None = None,
        retire: Callable[[IndexRecord], None] | None = None,
    ) -> None:
        self._registry = registry
        self._store = store
        self._factory = factory
        self._retire = retire
        self._backend = backend
        self._params = dict(params or {})
        self._open: dict[str, tuple[IndexRecord, VectorIndex]] = {}
        self._lock = threading.RLock()

    def live(self, collection_id: str, model_id: str, dim: int) -> tuple[IndexRecord, VectorIndex]:
        """The live index of the collection, created empty (and live) on first use."""
        with self._lock:
            record = self._registry.live(collection_id)
            cached = self._open.get(collection_id)
            if cached is not None and record is not None and cached[0] == record:
                return cached
            fresh = record is None
            if record is None:
                record = self._registry.create(
                    collection_id, model_id, dim, self._backend, self._params, live=True
                )
            index = self._factory(record)
            if not fresh:
                self._reconcile(record, index)
            if cached is not None:
                cached[1].close()
            self._open[collection_id] = (record, index)
            return record, index

    def _reconcile(self, record: IndexRecord, index: VectorIndex) -> None:
        """Refill an index whose entries number other than the table's rows (a process that
        wrote it died before flushing): upsert every row, drop retired chunks, save."""
        expected = self._store.embedding_count(record.collection_id, record.model_id)
        found = index.count()
        if found == expected:
            return
        log.warning(
            "vector index differs from the embeddings table; refilling it",
            extra={"index": record.id, "found": found, "expected": expected},
        )
        for ids, vectors, metadata in self._store.embeddings(record.collection_id, record.model_id):
            index.upsert(ids, vectors, metadata)
        index.delete(self._store.retired_embedded(record.collection_id, record.model_id))
        index.flush()

    def current(self, collection_id: str) -> tuple[IndexRecord, VectorIndex] | None:
        """The live index if the collection has one, without creating it."""
        with self._lock:
            record = self._registry.live(collection_id)
            if record is None:
                return None
            return self.live(collection_id, record.model_id, record.dim)

    def rebuild(
        self,
        collection_id: str,
        model_id: str,
        dim: int,
        progress: Callable[[int], None] | None = None,
    ) -> IndexRecord:
        """Build a new index from the ``embeddings`` rows of ``model_id`` and swap it in.

        ``progress`` is called with the number of vectors added so far. On failure the new
        index is retired and the live one is untouched.
        """
        record = self._registry.create(collection_id, model_id, dim, self._backend, self._params)
        index = self._factory(record)
        try:
            added = index.count()
            if added != self._store.embedding_count(collection_id, model_id):
                added = 0
                for ids, vectors, metadata in self._store.embeddings(collection_id, model_id):
                    index.upsert(ids, vectors, metadata)
                    added += len(ids)
                    if progress is not None:
                        progress(added)
            index.flush()
        except BaseException:
            index.close()
            self._registry.retire(record.id)
            self._released(record)
            raise
        with self._lock:
            previous = self._registry.live(collection_id)
            self._registry.promote(record.id)
            record = self._registry.live(collection_id) or replace(record, state="live")
            old = self._open.pop(collection_id, None)
            self._open[collection_id] = (record, index)
        if old is not None:
            old[1].close()
        if previous is not None and previous.id != record.id:
            self._released(previous)
        log.info(
            "index swapped",
            extra={"collection": collection_id, "index": record.id, "vectors": added},
        )
        return record

    def rebuild_every_live(
        self, progress: Callable[[IndexRecord, int], None] | None = None
    ) -> list[tuple[IndexRecord, int]]:
        """Rebuild every collection's live index from the ``embeddings`` table (after the
        tables were replaced under the indexes, as by a restore); returns each new record with
        its vector count, and calls ``progress(old record, vectors so far)`` as it goes."""
        rebuilt: list[tuple[IndexRecord, int]] = []
        for old in self._registry.every_live():
            step = None if progress is None else functools.partial(progress, old)
            record = self.rebuild(old.collection_id, old.model_id, old.dim, step)
            rebuilt.append((record, self._store.embedding_count(old.collection_id, old.model_id)))
        return rebuilt

    def _released(self, record: IndexRecord) -> None:
        """Hand a retired record to the ``retire`` hook (which frees what serves it)."""
        if self._retire is not None:
            try:
                self._retire(record)
            except Exception:
                log.exception("releasing a retired index failed", extra={"index": record.id})

    def flush(self, collection_id: str) -> None:
        """Write the collection's open index to its store and tell other processes (they
        reload it on their next use)."""
        with self._lock:
            cached = self._open.get(collection_id)
            if cached is None:
                return
            record, index = cached
            index.flush()
            moment = self._registry.touch(record.id)
            self._open[collection_id] = (replace(record, updated_at=moment), index)

    def close(self) -> None:
        """Flush and close every open index."""
        with self._lock:
            for _, index in self._open.values():
                index.close()
            self._open.clear()
