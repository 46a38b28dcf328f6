"""The memory plane as a process on the cluster builds it: vector indexes in shard actors.

In a process on the cluster (a job worker, a Serve replica, a pipeline's driver), an index
with ``memory.shards`` above 1, or any Milvus Lite index (one process may open its files),
is served by VectorShard actors that every process shares; a retired index's actors are
stopped (see :func:`cluster_memory`). For one FAISS shard, or a remote Milvus or Weaviate,
indexes open in the process as they do off the cluster. With ``embeddings.pool``, the plane
embeds through an :class:`~ember.actors.embedding_pool.EmbeddingPool` of its own.
"""

from __future__ import annotations

from opentelemetry.trace import Tracer

from ember.actors.vector_shard import retire_shards, sharded_index_factory
from ember.config import EmberConfig
from ember.memory.service import MemoryService
from ember.observability.metrics import Metrics
from ember.providers.protocol import Embedder, Tokenizer
from ember.services import build_tokenizer, memory_plane
from ember.storage import Database
from ember.storage.indexes import IndexRecord

__all__ = ["cluster_memory", "uses_shard_actors"]


def uses_shard_actors(config: EmberConfig) -> bool:
    """Whether the cluster serves ``config``'s vector indexes through shard actors."""
    memory = config.memory
    uri = memory.milvus_uri or ""
    lite = memory.vector_backend == "milvus" and not uri.startswith(("http://", "https://"))
    return memory.shards > 1 or lite


def cluster_memory(
    config: EmberConfig,
    database: Database,
    embedder: tuple[Embedder, Tokenizer] | None = None,
    *,
    tracer: Tracer | None = None,
    metrics: Metrics | None = None,
) -> MemoryService:
    """:func:`~ember.services.memory_plane`, with shard actors where :func:`uses_shard_actors`
    says and, with ``embeddings.pool``, an embedding pool; spans are ``tracer``'s, and the
    plane's metrics are recorded in ``metrics``.

    The shard actors are detached: whichever process opens an index first starts them, and
    they must outlive it (a job worker retired by autoscaling, a restarted replica), so they
    end when their index is retired or the cluster stops."""
    if embedder is None and config.embeddings.pool:
        from ember.actors.embedding_pool import EmbeddingPool

        embedder = (EmbeddingPool(config), build_tokenizer(config))
    if not uses_shard_actors(config):
        return memory_plane(config, database, embedder, tracer=tracer, metrics=metrics)
    shards = config.memory.shards

    def retire(record: IndexRecord) -> None:
        retire_shards(record.id, shards)

    return memory_plane(
        config,
        database,
        embedder,
        index_factory=sharded_index_factory(config, shards, detached=True),
        retire_index=retire,
        tracer=tracer,
        metrics=metrics,
    )
