"""The memory plane: ingest, search, packing, reindex, export and import over one database,
assembled from its parts (the composition root, :mod:`ember.services`, picks the adapters).

Heavy parts load lazily: the embedding model on first embed, vector indexes on first use of a
collection.

With a ``tracer``, each search is a ``retrieval {collection}`` span (see
:mod:`ember.memory.retrieval`), and :meth:`MemoryService.context` is a ``context {collection}``
span holding that search's span and then ``pack`` (``ember.pack.budget_tokens``,
``ember.pack.used_tokens``, ``ember.pack.chunks``, ``ember.pack.dropped``). No query or chunk
text is recorded.

With ``metrics``, ingests count their documents and chunks and set the collection's
``ember_memory_index_vectors`` (see :meth:`Ingestor.record`), as a reindex sets it too, and
searches observe their time (see :mod:`ember.memory.retrieval`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.trace import NoOpTracer, Tracer

from ember.config import EmberConfig
from ember.errors import EmberError
from ember.filters import MAX_TERMS, Filter, parse_filter
from ember.memory.chunker import Chunker
from ember.memory.extract import SourceDocument
from ember.memory.indexes import IndexFactory, IndexManager
from ember.memory.ingest import Ingestor, IngestProgress, IngestReport
from ember.memory.packer import ContextPack, ContextPacker
from ember.memory.reindex import Reindexer, ReindexProgress, ReindexReport
from ember.memory.retrieval import Mode, Retriever, SearchHit, SearchSettings
from ember.memory.transfer import export_collection, import_collection
from ember.observability.metrics import Metrics, NoMetrics
from ember.observability.tracing import span
from ember.providers.protocol import Embedder, Tokenizer
from ember.storage import Database, SqlChunkStore, SqlCollectionRepository
from ember.storage.indexes import IndexRecord, SqlIndexRegistry

__all__ = ["MemoryService"]


def _query_embedders(model: Embedder) -> dict[str, Embedder]:
    """The embedders searches may need: ``model``, and the one it projects (its collections
    are searched through their old index until a reindex swaps the new one in)."""
    embedders = {model.model_id: model}
    base = getattr(model, "base", None)
    if base is not None:
        embedders[base.model_id] = base
    return embedders


@dataclass
class MemoryService:
    """Ingest, search and context packing over one database; :meth:`context` is a span of
    ``tracer`` (give the retriever the same one for its searches)."""

    collections: SqlCollectionRepository
    store: SqlChunkStore
    indexes: IndexManager
    ingestor: Ingestor
    retriever: Retriever
    packer: ContextPacker
    reindexer: Reindexer
    embedder: Embedder
    max_filter_terms: int = MAX_TERMS
    """The most terms a filter may have (``memory.max_filter_terms``)."""
    tracer: Tracer = field(default_factory=NoOpTracer, repr=False)
    """What :meth:`context` makes its spans with (no spans by default)."""
    metrics: Metrics = field(default_factory=NoMetrics, repr=False)
    """Where :meth:`reindex` sets the collection's vectors (give the ingestor and retriever
    the same one)."""

    @classmethod
    def build(
        cls,
        config: EmberConfig,
        database: Database,
        embedder: tuple[Embedder, Tokenizer],
        index_factory: IndexFactory,
        retire_index: Callable[[IndexRecord], None] | None = None,
        *,
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> MemoryService:
        """Wire the memory plane over ``embedder`` (the model and the tokenizer chunks are
        counted with) and ``index_factory`` (opens a vector index for a registry record);
        ``retire_index`` frees what served an index once it is retired (see
        :class:`IndexManager`); searches and packing are spans of ``tracer`` (none without
        one); ingests, searches and reindexes are recorded in ``metrics`` (nothing without
        one). :func:`ember.services.memory_plane` picks the configured adapters."""
        tracer = tracer or NoOpTracer()
        metrics = metrics or NoMetrics()
        model, tokenizer = embedder
        memory = config.memory
        collections = SqlCollectionRepository(database)
        store = SqlChunkStore(database)
        params: dict[str, object] = {"kind": memory.faiss_kind}
        indexes = IndexManager(
            SqlIndexRegistry(database),
            store,
            index_factory,
            memory.vector_backend,
            params if memory.vector_backend == "faiss" else {},
            retire_index,
        )
        chunker = Chunker(tokenizer, memory.chunk_tokens, memory.chunk_overlap)
        ingestor = Ingestor(
            collections,
            store,
            indexes,
            model,
            chunker,
            batch_size=memory.ingest_batch_size,
            max_document_bytes=memory.max_document_bytes,
            metrics=metrics,
        )
        settings = SearchSettings(
            candidates=memory.search_candidates,
            fusion=memory.fusion,
            rrf_k=memory.rrf_k,
            dense_weight=memory.dense_weight,
            keyword_weight=memory.keyword_weight,
        )
        retriever = Retriever(
            collections,
            store,
            indexes,
            _query_embedders(model),
            settings,
            tracer=tracer,
            metrics=metrics,
        )
        return cls(
            collections,
            store,
            indexes,
            ingestor,
            retriever,
            ContextPacker(tokenizer),
            Reindexer(collections, store, indexes),
            model,
            memory.max_filter_terms,
            tracer,
            metrics,
        )

    def in_workspace(self, workspace: str) -> MemoryService:
        """This plane as ``workspace`` sees it: the same indexes, store, models and tracer, and
        only that workspace's collections (another workspace's names are not found, and free
        to take). Cheap; close only the plane it came from."""
        if workspace == self.collections.workspace:
            return self
        collections = self.collections.in_workspace(workspace)
        return dataclasses.replace(
            self,
            collections=collections,
            ingestor=self.ingestor.with_collections(collections),
            retriever=self.retriever.with_collections(collections),
            reindexer=self.reindexer.with_collections(collections),
        )

    def parse_filter(self, raw: Any) -> Filter | None:
        """Filter JSON parsed under this plane's limits (see :func:`ember.filters.parse_filter`).

        :raises InvalidFilter: it breaks the grammar or passes a limit.
        """
        return parse_filter(raw, max_terms=self.max_filter_terms)

    def ingest(
        self,
        collection: str,
        documents: Iterable[SourceDocument | EmberError],
        progress: Callable[[IngestProgress], None] | None = None,
    ) -> IngestReport:
        """See :meth:`Ingestor.ingest`."""
        return self.ingestor.ingest(collection, documents, progress)

    def search(
        self,
        collection: str,
        query: str,
        k: int = 10,
        *,
        where: Filter | None = None,
        mode: Mode = "hybrid",
        per_document: bool = False,
        mmr_lambda: float | None = None,
    ) -> list[SearchHit]:
        """See :meth:`Retriever.search`."""
        return self.retriever.search(
            collection,
            query,
            k,
            where=where,
            mode=mode,
            per_document=per_document,
            mmr_lambda=mmr_lambda,
        )

    def context(
        self,
        collection: str,
        query: str,
        budget: int,
        *,
        k: int = 20,
        where: Filter | None = None,
    ) -> tuple[ContextPack, list[SearchHit]]:
        """Search, then pack the hits into ``budget`` tokens."""
        outer = {"ember.collection": collection}
        with span(self.tracer, f"context {collection}", attributes=outer):
            hits = self.search(collection, query, k, where=where)
            with span(
                self.tracer, "pack", attributes={"ember.pack.budget_tokens": budget}
            ) as current:
                pack = self.packer.pack(hits, budget)
                current.set_attribute("ember.pack.used_tokens", pack.tokens_used)
                current.set_attribute("ember.pack.chunks", len(pack.chunks))
                current.set_attribute("ember.pack.dropped", len(pack.dropped))
            return pack, hits

    def reindex(
        self, collection: str, progress: Callable[[ReindexProgress], None] | None = None
    ) -> ReindexReport:
        """Re-embed ``collection`` with the configured model (only chunks it lacks) and swap
        in a fresh index (``ember_memory_index_vectors`` is set to its size); see
        :mod:`ember.memory.reindex`."""
        report = self.reindexer.reindex(collection, self.embedder, progress)
        self.metrics.set("ember_memory_index_vectors", report.vectors, collection=collection)
        return report

    def export(self, collection: str, path: Path) -> int:
        """See :func:`ember.memory.transfer.export_collection`."""
        return export_collection(self.collections, self.store, self.indexes, collection, path)

    def import_(self, path: Path, name: str | None = None) -> tuple[str, int]:
        """See :func:`ember.memory.transfer.import_collection`."""
        return import_collection(self.collections, self.store, self.indexes, path, name)

    def close(self) -> None:
        """Flush and close every open vector index, and the embedder if it holds resources
        (a pool of workers has ``close``)."""
        self.retriever.close()
        self.indexes.close()
        release = getattr(self.embedder, "close", None)
        if callable(release):
            release()
