"""VectorShard actors: each owns one shard of one vector index, and the index over all of them.

A :class:`VectorShardActor` is the only process that opens its shard's store (a FAISS file or
a Milvus Lite directory), so processes never race on it: they all reach the shard through the
named actor ``ember-shard-{record id}-{shard}`` in the ``ember`` namespace (found or started
by :func:`shard_actors`). Entries are routed by :func:`ember.vectors.sharded.shard_of`.

The ``embeddings`` table is the truth; a shard is a cache of its rows. On every start, a
first one or a restart after a crash, the actor checks its index against the table (see
:class:`VectorShardActor`) and, when it may differ, clears it and rebuilds it from the table.
Writes that reached the index but not its last flush are therefore never lost: Ray restarts
a dead shard (``max_restarts=-1``) and retries the calls in flight (``max_task_retries=-1``;
every method is idempotent), and the new actor refills itself first.

:class:`RayShardedIndex` is a :class:`~ember.vectors.protocol.VectorIndex` over the actors:
it issues a call to every shard involved before waiting for any (one wait for all of them).
Its searches and writes carry the caller's trace context (:func:`~ember.observability.tracing.
call_context`), and each shard serves them as a span of that trace (service
``ember-vector-shard``): ``shard search`` (``ember.vector.k``, ``ember.vector.hits``),
``shard upsert`` and ``shard delete`` (``ember.vector.entries``) and ``shard flush``, each with
``ember.vector.index`` (the shard's index id).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
from opentelemetry.trace import Span
from ray.exceptions import RayActorError

from ember.actors.names import NAMESPACE, shard_actor_name
from ember.actors.refs import wait_for
from ember.actors.trace_store import RayTraceStore
from ember.config import EmberConfig
from ember.errors import VectorIndexError
from ember.filters import Filter
from ember.memory.indexes import IndexFactory
from ember.observability import configure_logging
from ember.observability.tracing import Tracing, call_context, served
from ember.services import Services, build_index_factory
from ember.storage import SqlEmbeddingStore
from ember.storage.indexes import IndexRecord
from ember.vectors.protocol import Vector, VectorHit
from ember.vectors.sharded import Call, ScatterGatherIndex, shard_of

__all__ = [
    "SHARD_NUM_CPUS",
    "RayShardedIndex",
    "VectorShardActor",
    "retire_shards",
    "shard_actors",
    "shard_record",
    "sharded_index_factory",
]

SHARD_NUM_CPUS = 0.05
"""CPUs Ray reserves per shard actor: searches are short and the shards share the machine."""

_TRACED = frozenset({"search", "upsert", "delete", "flush"})
"""The shard methods that carry a trace context and make a span."""

log = logging.getLogger(__name__)


def shard_record(record: IndexRecord, shard: int, shards: int) -> IndexRecord:
    """The record a shard opens its own index under: id ``{record.id}-s{shard}`` (its own
    FAISS file, Milvus Lite database or collection), or ``record`` itself when unsharded.

    :raises ValueError: not ``0 <= shard < shards``.
    """
    if not 0 <= shard < shards:
        raise ValueError(f"shard must be in [0, {shards}), got {shard}")
    return record if shards == 1 else replace(record, id=f"{record.id}-s{shard}")


def _local_store(config: EmberConfig, record: IndexRecord) -> Path | None:
    """Where :func:`ember.services.build_index_factory` keeps ``record``'s index on
    this machine, or ``None`` when it lives on a server."""
    if record.backend == "milvus":
        if config.memory.milvus_uri is not None:
            return None
        return config.home_dir / "milvus" / f"{record.id}.db"
    if record.backend == "weaviate":
        return None
    return config.home_dir / "indexes" / record.id


def _reconstructed() -> bool:
    """Whether this process is an actor Ray restarted (``False`` outside an actor)."""
    if not ray.is_initialized():
        return False
    context = ray.get_runtime_context()
    if context.get_actor_id() is None:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return bool(context.was_current_actor_reconstructed)


class VectorShardActor:
    """Owns shard ``shard`` of ``shards`` of the index ``record``; plain Python, made an actor
    by :func:`shard_actors`.

    Opens the shard's index through :func:`~ember.services.build_index_factory` and
    the database from ``config``, then rebuilds the index from the table when its count
    differs from the table's or when a marker says it took writes it never flushed (a crash
    between a write and the next flush; a count alone misses a write that retired as many
    entries as it added). The marker is a file under ``$EMBER_HOME/shards``, made before the
    first write after a flush and removed by the flush. A local store (FAISS file, Milvus
    Lite directory) is cleared by removing it; a server's collection is repaired in place
    (every live row upserted, every retired one deleted). The methods mirror
    :class:`~ember.vectors.protocol.VectorIndex`.

    :raises ValueError: not ``0 <= shard < shards``.
    """

    def __init__(self, config: EmberConfig, record: IndexRecord, shard: int, shards: int) -> None:
        configure_logging("ember-vector-shard", config.logging.level, config.logging.format)
        self._config = config
        self._record = shard_record(record, shard, shards)
        self._shard, self._shards = shard, shards
        self._filter = (shard, shards) if shards > 1 else None
        self._marker = config.home_dir / "shards" / f"{self._record.id}.dirty"
        self._writing = threading.Lock()
        self._open = build_index_factory(config)
        self._database = Services.build(config).database
        self._tracing = Tracing(config.tracing, "ember-vector-shard", store=RayTraceStore())
        self._tracer = self._tracing.tracer("ember.vectors")
        self._embeddings = SqlEmbeddingStore(self._database)
        self._index = self._open(self._record)
        self._reconstructed = _reconstructed()
        self._rebuilt = self._sync()

    def _sync(self) -> bool:
        """Rebuild the index when it may differ from the table; whether it did."""
        collection, model = self._record.collection_id, self._record.model_id
        expected = self._embeddings.embedding_count(collection, model, shard=self._filter)
        found = self._index.count()
        unflushed = self._marker.exists()
        if found == expected and not unflushed:
            return False
        log.warning(
            "vector shard may differ from the embeddings table; rebuilding it",
            extra={"index": self._record.id, "found": found, "expected": expected},
        )
        self._clear()
        for ids, vectors, metadata in self._embeddings.embeddings(
            collection, model, shard=self._filter
        ):
            self._index.upsert(ids, vectors, metadata)
        retired = self._embeddings.retired_embedded(collection, model)
        self._index.delete([i for i in retired if shard_of(i, self._shards) == self._shard])
        self._index.flush()
        self._marker.unlink(missing_ok=True)
        return True

    def _clear(self) -> None:
        place = _local_store(self._config, self._record)
        if place is None:
            return
        self._index.close()
        if place.is_dir():
            shutil.rmtree(place)
        else:
            place.unlink(missing_ok=True)
        self._index = self._open(self._record)

    def _mark(self) -> None:
        """Record, durably, that the index is about to take a write it has not flushed."""
        if self._marker.exists():
            return
        self._marker.parent.mkdir(parents=True, exist_ok=True)
        with self._marker.open("wb") as out:
            os.fsync(out.fileno())
        folder = os.open(self._marker.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def info(self) -> dict[str, Any]:
        """Which index this shard opened, whether Ray restarted it and whether it rebuilt."""
        return {
            "index": self._record.id,
            "shard": self._shard,
            "shards": self._shards,
            "reconstructed": self._reconstructed,
            "rebuilt": self._rebuilt,
        }

    def upsert(
        self,
        ids: Sequence[int],
        vectors: Vector,
        metadata: Sequence[Mapping[str, Any]],
        trace: Mapping[str, str] | None = None,
    ) -> None:
        """``VectorIndex.upsert`` on this shard, served in ``trace`` (a caller's
        :func:`~ember.observability.tracing.call_context`), as every method below."""
        with self._served("upsert", trace, len(ids)), self._writing:
            self._mark()
            self._index.upsert(ids, vectors, metadata)

    def delete(self, ids: Sequence[int], trace: Mapping[str, str] | None = None) -> int:
        """``VectorIndex.delete`` on this shard."""
        with self._served("delete", trace, len(ids)), self._writing:
            self._mark()
            return self._index.delete(ids)

    def search(
        self,
        vector: Vector,
        k: int,
        where: Filter | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> list[VectorHit]:
        """``VectorIndex.search`` on this shard."""
        with self._served("search", trace) as current:
            hits = self._index.search(vector, k, where)
            if current.is_recording():
                current.set_attribute("ember.vector.k", k)
                current.set_attribute("ember.vector.hits", len(hits))
            return hits

    def count(self) -> int:
        """``VectorIndex.count`` of this shard."""
        return self._index.count()

    def flush(self, trace: Mapping[str, str] | None = None) -> None:
        """``VectorIndex.flush`` of this shard; clears the unflushed-writes marker."""
        with self._served("flush", trace), self._writing:
            self._index.flush()
            self._marker.unlink(missing_ok=True)

    def _served(
        self, method: str, trace: Mapping[str, str] | None, entries: int | None = None
    ) -> contextlib.AbstractContextManager[Span]:
        attributes: dict[str, Any] = {"ember.vector.index": self._record.id}
        if entries is not None:
            attributes["ember.vector.entries"] = entries
        return served(self._tracer, f"shard {method}", trace, attributes=attributes)

    def close(self) -> None:
        """Flush and close the index, close the database; later calls raise (a restart opens
        them again)."""
        with self._writing:
            self._index.close()
            self._marker.unlink(missing_ok=True)
        self._database.dispose()
        self._tracing.shutdown()


class RayShardedIndex(ScatterGatherIndex):
    """A :class:`~ember.vectors.protocol.VectorIndex` over shard actors (``handles[s]`` owns
    shard ``s``) of dimension ``dim``.

    :meth:`close` releases the handles only: other processes use the same actors, which
    :func:`retire_shards` ends. A shard that is gone for good raises
    :class:`~ember.errors.VectorIndexError`; a shard's own error is raised as itself.
    """

    def __init__(self, handles: Sequence[Any], dim: int) -> None:
        super().__init__(len(handles), dim)
        self._handles = list(handles)

    def _gather(self, method: str, calls: Sequence[Call]) -> list[Any]:
        extra = {"trace": call_context()} if method in _TRACED else {}
        refs = [
            getattr(self._handles[shard], method).remote(*args, **extra) for shard, args in calls
        ]
        if not refs:
            return []
        try:
            return wait_for(refs)
        except RayActorError as exc:
            raise VectorIndexError(f"a vector shard is gone: {exc}") from exc

    def close(self) -> None:
        """Release the actor handles (the actors keep running); later calls raise."""
        self._handles = []
        self._closed = True


def shard_actors(
    config: EmberConfig, record: IndexRecord, shards: int, *, detached: bool = False
) -> list[Any]:
    """Handles of the ``shards`` actors owning ``record``'s shards: found when they run, else
    started. Ray restarts a dead one and retries its calls, forever.

    The shard count of a record must stay the same while its actors run: a running actor
    keeps the count it was started with. ``detached`` actors outlive the process that starts
    them; otherwise they die with it.

    :raises ValueError: ``shards`` is not positive.
    """
    if shards <= 0:
        raise ValueError(f"shards must be positive, got {shards}")
    remote: Any = ray.remote(VectorShardActor)
    return [
        remote.options(
            name=shard_actor_name(record.id, shard),
            namespace=NAMESPACE,
            get_if_exists=True,
            num_cpus=SHARD_NUM_CPUS,
            max_concurrency=8,
            max_restarts=-1,
            max_task_retries=-1,
            lifetime="detached" if detached else None,
        ).remote(config, record, shard, shards)
        for shard in range(shards)
    ]


def retire_shards(record_id: str, shards: int) -> int:
    """Kill the shard actors of index ``record_id`` for good (no restart); how many ran.

    Their stores stay on disk; the index record is retired by its owner.
    """
    killed = 0
    for shard in range(shards):
        try:
            handle = ray.get_actor(shard_actor_name(record_id, shard), namespace=NAMESPACE)
        except ValueError:
            continue
        ray.kill(handle, no_restart=True)
        killed += 1
    return killed


def sharded_index_factory(
    config: EmberConfig, shards: int, *, detached: bool = False
) -> IndexFactory:
    """An :data:`~ember.memory.indexes.IndexFactory` opening each record as a
    :class:`RayShardedIndex` over ``shards`` shard actors (see :func:`shard_actors`)."""

    def open_index(record: IndexRecord) -> RayShardedIndex:
        return RayShardedIndex(shard_actors(config, record, shards, detached=detached), record.dim)

    return open_index
