"""The adapters the configuration names, built: the embedder and the tokenizer chunks are
counted with, the vector index a registry record opens, and the memory plane over them.

Vector indexes live under ``$EMBER_HOME/indexes`` (FAISS) or ``$EMBER_HOME/milvus`` (Milvus
Lite), one per index record. Vendor libraries load on first use, not on import.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from opentelemetry.trace import Tracer

from ember.config import EmberConfig
from ember.errors import ConfigError, VMUnavailable
from ember.memory.indexes import IndexFactory
from ember.memory.service import MemoryService
from ember.observability.metrics import Metrics
from ember.providers.protocol import Embedder, Tokenizer
from ember.storage import Database
from ember.storage.indexes import IndexRecord
from ember.vectors.protocol import VectorIndex
from ember.vm.protocol import Hypervisor

__all__ = [
    "build_embedder",
    "build_index_factory",
    "build_tokenizer",
    "hypervisor",
    "memory_plane",
]


def hypervisor(uri: str) -> Hypervisor:
    """The libvirt hypervisor at ``uri`` (libvirt-python is imported here, not before).

    :raises VMUnavailable: libvirt-python is not installed.
    """
    try:
        from ember.vm.libvirt_hypervisor import LibvirtHypervisor
    except ImportError as exc:
        raise VMUnavailable(
            "libvirt-python is not installed: install the VM packages with `make test` "
            "(or `pip install ember[vm]` once libvirt-dev and pkg-config are installed)"
        ) from exc
    return LibvirtHypervisor(uri)


def build_embedder(config: EmberConfig) -> tuple[Embedder, Tokenizer]:
    """The configured embedder and the tokenizer chunks are counted with."""
    settings = config.embeddings
    from ember.providers.hf_tokenizer import HuggingFaceTokenizer

    if settings.provider == "openai":
        from ember.providers.openai_embeddings import OpenAIEmbedder

        assert settings.model is not None and settings.dim is not None  # checked at load
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
                raise ConfigError(
                    f"index {record.id} is a weaviate index: memory.weaviate_url is required"
                )
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


def memory_plane(
    config: EmberConfig,
    database: Database,
    embedder: tuple[Embedder, Tokenizer] | None = None,
    index_factory: IndexFactory | None = None,
    retire_index: Callable[[IndexRecord], None] | None = None,
    *,
    tracer: Tracer | None = None,
    metrics: Metrics | None = None,
) -> MemoryService:
    """The memory plane over ``database``: ``embedder`` and ``index_factory`` default to the
    configured ones (tests inject their own; on Ray, an embedding pool and shard actors);
    searches and context packing are spans of ``tracer`` (none without one); ingests,
    searches and reindexes are recorded in ``metrics`` (nothing without one)."""
    return MemoryService.build(
        config,
        database,
        embedder or build_embedder(config),
        index_factory or build_index_factory(config),
        retire_index,
        tracer=tracer,
        metrics=metrics,
    )
