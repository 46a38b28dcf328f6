"""Repository contracts. Adapters implement them over SQL; callers depend only on these."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ember.filters import Filter
from ember.storage.records import (
    AuditRecord,
    ChunkRecord,
    CollectionRecord,
    DbapiQuery,
    LiveVersion,
    NewVersion,
    UsageEntry,
    UsageGroup,
    UsageTotals,
    WrittenVersion,
)

__all__ = [
    "AuditLog",
    "ChunkReader",
    "ChunkStore",
    "CollectionRepository",
    "EmbeddingStore",
    "KeywordSearch",
    "UsageLog",
    "VersionStore",
]


class CollectionRepository(Protocol):
    """Named collections of documents, as one workspace sees them: names are unique within
    a workspace, and another workspace's collections do not exist here."""

    def create(
        self,
        name: str,
        *,
        description: str = "",
        embedding_model: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> CollectionRecord:
        """Create a collection and return it.

        :raises ValidationFailed: ``name`` breaks :data:`ember.storage.names.NAME_PATTERN`.
        :raises CollectionExists: ``name`` is taken (also under a concurrent create).
        """
        ...

    def ensure(
        self, name: str, *, embedding_model: str | None = None
    ) -> tuple[CollectionRecord, bool]:
        """The collection ``name``, created (recording ``embedding_model``) when missing, and
        whether this call created it; atomic under concurrent calls (insert, or read what the
        winner inserted).

        :raises ValidationFailed: as :meth:`create`.
        """
        ...

    def in_workspace(self, workspace: str) -> CollectionRepository:
        """The same collections table seen from ``workspace``."""
        ...

    def get(self, name: str) -> CollectionRecord:
        """:raises CollectionNotFound: no collection has ``name``."""
        ...

    def list(self, *, limit: int = 100, after: str | None = None) -> list[CollectionRecord]:
        """Up to ``limit`` collections ordered by name, starting after the name ``after``."""
        ...

    def set_embedding_model(self, name: str, model: str) -> None:
        """Record the model whose vectors the collection's live index now holds.

        :raises CollectionNotFound: no collection has ``name``.
        """
        ...

    def delete(self, name: str) -> None:
        """Delete a collection and everything in it.

        :raises CollectionNotFound: no collection has ``name``.
        """
        ...


class AuditLog(Protocol):
    """Append-only record of who did what."""

    def append(self, entry: AuditRecord) -> AuditRecord:
        """Store ``entry`` and return it with ``id`` and ``ts`` set. Ids increase."""
        ...

    def list(
        self, *, actor: str | None = None, action: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        """The newest entries first, optionally only one actor's or one action's."""
        ...


class VersionStore(Protocol):
    """Documents and their versions: what is live per source, and each new version
    written with its chunks and their embeddings in one transaction."""

    def live_version(self, collection_id: str, source: str) -> LiveVersion | None:
        """The current version of ``source`` in the collection, or ``None``."""
        ...

    def live_hashes(self, collection_id: str) -> dict[str, str]:
        """Every source of the collection that has a current version, with its content hash
        (one query: the snapshot a bulk ingest skips unchanged documents by)."""
        ...

    def source_with_content(self, collection_id: str, content_hash: str) -> str | None:
        """A source whose current version has this content hash, or ``None``."""
        ...

    def write_version(
        self,
        collection_id: str,
        version: NewVersion,
        vectors: npt.NDArray[np.float32],
        model_id: str,
    ) -> WrittenVersion:
        """Write a new version of ``version.source`` in one transaction.

        Creates the document on first sight, retires the previous version and its chunks
        (they leave keyword search at once), inserts the chunks (row ``i`` of ``vectors``
        embeds chunk ``i``) and their embeddings under ``model_id``.

        :raises DimensionMismatch: ``vectors`` does not have one row per chunk.
        """
        ...

    def live_documents(
        self, collection_id: str, model_id: str
    ) -> Iterator[tuple[NewVersion, npt.NDArray[np.float32]]]:
        """Each document's current version with its chunks and their vectors under
        ``model_id``, ordered by source (what an export writes)."""
        ...


class ChunkReader(Protocol):
    """Chunks read back by id."""

    def chunks(self, ids: Sequence[int], *, live_only: bool = False) -> dict[int, ChunkRecord]:
        """The chunks with these ids, keyed by id; unknown ids are absent, and so are retired
        ones when ``live_only`` (a vector index that missed a delete never resurfaces them)."""
        ...

    def owners(self, ids: Sequence[int]) -> dict[int, str]:
        """The document id of each live chunk among ``ids``; retired and unknown ones are
        absent."""
        ...

    def live_chunk_count(self, collection_id: str) -> int:
        """How many live chunks the collection has."""
        ...


class EmbeddingStore(Protocol):
    """Chunk vectors per embedding model: what vector indexes are built from and what a
    reindex fills in."""

    def embeddings(
        self,
        collection_id: str,
        model_id: str,
        batch_size: int = 2048,
        *,
        shard: tuple[int, int] | None = None,
    ) -> Iterator[tuple[list[int], npt.NDArray[np.float32], list[dict[str, Any]]]]:
        """Every live chunk's id, vector and metadata under ``model_id``, in id order, in
        batches (what a vector index is rebuilt from).

        ``shard=(index, count)`` keeps only the chunks whose ``id % count == index`` (one
        shard of a sharded index, see :func:`ember.vectors.sharded.shard_of`), filtered in SQL.

        :raises ValueError: ``shard`` is not ``(index, count)`` with ``0 <= index < count``
            (when the first batch is asked for).
        """
        ...

    def embedding_count(
        self, collection_id: str, model_id: str, *, shard: tuple[int, int] | None = None
    ) -> int:
        """How many entries :meth:`embeddings` yields with the same arguments: live chunks with
        an embedding under ``model_id``, only those of ``shard`` when given.

        :raises ValueError: ``shard`` is not ``(index, count)`` with ``0 <= index < count``.
        """
        ...

    def vectors(self, ids: Sequence[int], model_id: str) -> dict[int, npt.NDArray[np.float32]]:
        """The stored vectors of these chunks under ``model_id``; missing ones are absent."""
        ...

    def unembedded(
        self, collection_id: str, model_id: str, batch_size: int = 256
    ) -> Iterator[list[tuple[int, str | None, str, dict[str, Any]]]]:
        """Live chunks with no embedding under ``model_id``, as ``(id, title, text, metadata)``, in
        id order, in batches. Safe to interleave with :meth:`add_embeddings`: each batch is
        read after the previous one was yielded."""
        ...

    def unembedded_query(self, collection_id: str, model_id: str) -> DbapiQuery:
        """The query :meth:`unembedded` runs, selecting ``id``, ``title`` and ``text`` of live
        chunks without a ``model_id`` embedding, for a reader in another process (Ray Data's
        ``read_sql``) over the same database's DB-API connection."""
        ...

    def add_embeddings(
        self, ids: Sequence[int], vectors: npt.NDArray[np.float32], model_id: str
    ) -> None:
        """Store row ``i`` of ``vectors`` as chunk ``ids[i]``'s embedding under ``model_id``,
        in one transaction.

        :raises DimensionMismatch: not one row per id.
        """
        ...

    def retired_embedded(self, collection_id: str, model_id: str) -> list[int]:
        """Ids of retired chunks that still have an embedding under ``model_id`` (what an
        index built from older rows may still hold)."""
        ...


class KeywordSearch(Protocol):
    """The database's own keyword search over live chunks."""

    def keyword_search(
        self, collection_id: str, query: str, k: int, where: Filter | None = None
    ) -> list[tuple[int, float]]:
        """Up to ``k`` live chunks matching any word of ``query``, best first, as
        ``(chunk id, score)`` (higher is better), ``where`` applied inside the query."""
        ...


class ChunkStore(VersionStore, ChunkReader, EmbeddingStore, KeywordSearch, Protocol):
    """All four over one database, for a caller that needs several
    (:class:`~ember.storage.chunk_store.SqlChunkStore` delegates to the four adapters)."""


class UsageLog(Protocol):
    """Append-only record of the tokens and cost of provider calls (the ``usage`` table)."""

    def record(self, entry: UsageEntry) -> UsageEntry:
        """Store ``entry`` and return it with ``id`` set, and ``ts`` (now) when it had none.

        Costs are kept to six decimal places.
        """
        ...

    def record_many(self, entries: Sequence[UsageEntry]) -> int:
        """Store ``entries`` in one transaction (all or none); how many were stored."""
        ...

    def totals(
        self,
        *,
        since: datetime,
        principal: str | None = None,
        provider: str | None = None,
        workspace: str | None = None,
    ) -> UsageTotals:
        """Sums over the entries at or after ``since``, optionally of one principal, one
        provider and/or one workspace only; all zero when none match."""
        ...

    def groups(
        self, *, since: datetime, workspace: str | None = None, principal: str | None = None
    ) -> list[UsageGroup]:
        """The entries at or after ``since`` summed by workspace, principal and provider, of
        one workspace and/or one principal only when given; ordered by those three."""
        ...

    def list(
        self, *, principal: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[UsageEntry]:
        """The newest entries first, optionally of one principal and/or one provider."""
        ...
