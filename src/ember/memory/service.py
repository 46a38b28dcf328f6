"""The memory plane assembled from configuration: one object the API and the CLI share.

Heavy parts load lazily: the embedding model on first embed, vector indexes on first use of a
collection. Vector indexes live under ``$EMBER_HOME/indexes`` (FAISS) or
``$EMBER_HOME/milvus`` (Milvus Lite), one per index record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ember.config import EmberConfig
from ember.errors import EmberError
from ember.memory.chunker import Chunker
from ember.memory.extract import SourceDocument
from ember.memory.filters import Filter
from ember.memory.indexes import IndexFactory, IndexManager
from ember.memory.ingest import Ingestor, IngestProgress, IngestReport
from ember.memory.packer import ContextPack, ContextPacker
from ember.memory.reindex import Reindexer, ReindexProgress, ReindexReport
from ember.memory.retrieval import Mode, Retriever, SearchHit, SearchSettings
from ember.memory.transfer import export_collection, import_collection
from ember.providers.protocol import Embedder, Tokenizer
from ember.storage import Database, SqlChunkStore, SqlCollectionRepository
from ember.storage.indexes import IndexRecord, SqlIndexRegistry
from ember.vectors.protocol import VectorIndex

__all__ = ["MemoryService", "build_embedder", "build_index_factory", "build_tokenizer"]


def build_embedder(config: EmberConfig) -> tuple[Embedder, Tokenizer]:
    """The configured embedder and the tokenizer chunks are counted with."""
    settings = config.embeddings
    from ember.providers.hf_tokenizer import HuggingFaceTokenizer

    if settings.provider == "openai":
        from ember.providers.openai_embeddings import OpenAIEmbedder

        if settings.model is None or settings.dim is None:
            raise EmberError("embeddings.model and embeddings.dim are required for openai")
        embedder: Embedder = OpenAIEmbedder(
            model=settings.model,
            dim=settings.dim,
            base_url=settings.base_url,
            api_key=settings.api_key,
            batch_size=settings.batch_size,
        )
        return _projected(config, embedder), HuggingFaceTokenizer.bundled()
    from ember.providers.sentence_transformers import SentenceTransformerEmbedder

    local = SentenceTransformerEmbedder(
        model_path=settings.model, batch_size=settings.batch_size, device=settings.device
    )
    return _projected(config, local), local.tokenizer()


def build_tokenizer(config: EmberConfig) -> Tokenizer:
    """The tokenizer chunks are counted with, without importing torch where it can: the
    bundled model's is read from its ``tokenizer.json``; any other comes from
    :func:`build_embedder`."""
    settings = config.embeddings
    if settings.provider == "openai" or settings.model is None:
        from ember.providers.hf_tokenizer import HuggingFaceTokenizer

        return HuggingFaceTokenizer.bundled()
    return build_embedder(config)[1]


def _projected(config: EmberConfig, embedder: Embedder) -> Embedder:
    """``embedder``, or its vectors through ``embeddings.projection`` when that is set."""
    if config.embeddings.projection is None:
        return embedder
    from ember.providers.projected import ProjectedEmbedder, load_projection

    return ProjectedEmbedder(embedder, load_projection(config.embeddings.projection))


def build_index_factory(config: EmberConfig) -> IndexFactory:
    """Opens the configured kind of vector index for a registry record."""
    home = config.home_dir
    memory = config.memory

    def open_index(record: IndexRecord) -> VectorIndex:
        if record.backend == "milvus":
            from ember.vectors.milvus import MilvusIndex

            uri = memory.milvus_uri or str(home / "milvus" / f"{record.id}.db")
            if memory.milvus_uri is None:
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
            return MilvusIndex(dim=record.dim, uri=uri, collection=f"ember_{record.id}")
        if record.backend == "weaviate":
            from ember.vectors.weaviate import WeaviateIndex

            if memory.weaviate_url is None:
                raise EmberError("memory.weaviate_url is required for the weaviate backend")
            return WeaviateIndex.from_url(
                memory.weaviate_url, dim=record.dim, collection=f"Ember_{record.id}"
            )
        from ember.vectors.faiss import FaissIndex, set_threads

        set_threads(memory.faiss_threads)
        kind = str(record.params.get("kind", "flat"))
        path = home / "indexes" / record.id
        path.parent.mkdir(parents=True, exist_ok=True)
        return FaissIndex(dim=record.dim, kind=kind, path=path)  # type: ignore[arg-type]

    return open_index


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
    """Ingest, search and context packing over one database."""

    collections: SqlCollectionRepository
    store: SqlChunkStore
    indexes: IndexManager
    ingestor: Ingestor
    retriever: Retriever
    packer: ContextPacker
    reindexer: Reindexer
    embedder: Embedder

    @classmethod
    def build(
        cls,
        config: EmberConfig,
        database: Database,
        embedder: tuple[Embedder, Tokenizer] | None = None,
        index_factory: IndexFactory | None = None,
        retire_index: Callable[[IndexRecord], None] | None = None,
    ) -> MemoryService:
        """Wire the memory plane; ``embedder`` and ``index_factory`` default to the
        configured ones (tests inject their own; on Ray, shard actors). ``retire_index``
        frees what served an index once it is retired (see :class:`IndexManager`)."""
        model, tokenizer = embedder or build_embedder(config)
        memory = config.memory
        collections = SqlCollectionRepository(database)
        store = SqlChunkStore(database)
        params: dict[str, object] = {"kind": memory.faiss_kind}
        indexes = IndexManager(
            SqlIndexRegistry(database),
            store,
            index_factory or build_index_factory(config),
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
        )
        settings = SearchSettings(
            candidates=memory.search_candidates,
            fusion=memory.fusion,
            rrf_k=memory.rrf_k,
            dense_weight=memory.dense_weight,
            keyword_weight=memory.keyword_weight,
        )
        retriever = Retriever(collections, store, indexes, _query_embedders(model), settings)
        return cls(
            collections,
            store,
            indexes,
            ingestor,
            retriever,
            ContextPacker(tokenizer),
            Reindexer(collections, store, indexes),
            model,
        )

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
        hits = self.search(collection, query, k, where=where)
        return self.packer.pack(hits, budget), hits

    def reindex(
        self, collection: str, progress: Callable[[ReindexProgress], None] | None = None
    ) -> ReindexReport:
        """Re-embed ``collection`` with the configured model (only chunks it lacks) and swap
        in a fresh index; see :mod:`ember.memory.reindex`."""
        return self.reindexer.reindex(collection, self.embedder, progress)

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
