""":class:`SqlChunkStore`: the four chunk adapters behind one object, for callers that use
several of them (the memory plane's ``store``). It only delegates; the SQL lives in
:mod:`~ember.storage.versions`, :mod:`~ember.storage.chunks`, :mod:`~ember.storage.embeddings`
and :mod:`~ember.storage.keyword_search`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ember.filters import Filter
from ember.storage.chunks import SqlChunkReader
from ember.storage.database import Database
from ember.storage.embeddings import SqlEmbeddingStore
from ember.storage.keyword_search import SqlKeywordSearch
from ember.storage.records import (
    ChunkRecord,
    DbapiQuery,
    LiveVersion,
    NewVersion,
    WrittenVersion,
)
from ember.storage.versions import SqlVersionStore

__all__ = ["SqlChunkStore"]


class SqlChunkStore:
    """A facade of :class:`~ember.storage.protocol.ChunkStore` over one database: every
    method delegates, unchanged, to :class:`SqlVersionStore`, :class:`SqlChunkReader`,
    :class:`SqlEmbeddingStore` or :class:`SqlKeywordSearch` (see each for its contract in
    :mod:`ember.storage.protocol`). It holds no logic; new code that needs one concept takes
    that adapter instead."""

    def __init__(self, database: Database) -> None:
        self._versions = SqlVersionStore(database)
        self._chunks = SqlChunkReader(database)
        self._embeddings = SqlEmbeddingStore(database)
        self._keyword = SqlKeywordSearch(database)

    # documents and versions

    def live_version(self, collection_id: str, source: str) -> LiveVersion | None:
        return self._versions.live_version(collection_id, source)

    def live_hashes(self, collection_id: str) -> dict[str, str]:
        return self._versions.live_hashes(collection_id)

    def source_with_content(self, collection_id: str, content_hash: str) -> str | None:
        return self._versions.source_with_content(collection_id, content_hash)

    def write_version(
        self,
        collection_id: str,
        version: NewVersion,
        vectors: npt.NDArray[np.float32],
        model_id: str,
    ) -> WrittenVersion:
        return self._versions.write_version(collection_id, version, vectors, model_id)

    def live_documents(
        self, collection_id: str, model_id: str
    ) -> Iterator[tuple[NewVersion, npt.NDArray[np.float32]]]:
        return self._versions.live_documents(collection_id, model_id)

    # chunks

    def chunks(self, ids: Sequence[int], *, live_only: bool = False) -> dict[int, ChunkRecord]:
        return self._chunks.chunks(ids, live_only=live_only)

    def owners(self, ids: Sequence[int]) -> dict[int, str]:
        return self._chunks.owners(ids)

    def live_chunk_count(self, collection_id: str) -> int:
        return self._chunks.live_chunk_count(collection_id)

    # embeddings

    def embeddings(
        self,
        collection_id: str,
        model_id: str,
        batch_size: int = 2048,
        *,
        shard: tuple[int, int] | None = None,
    ) -> Iterator[tuple[list[int], npt.NDArray[np.float32], list[dict[str, Any]]]]:
        return self._embeddings.embeddings(collection_id, model_id, batch_size, shard=shard)

    def embedding_count(
        self, collection_id: str, model_id: str, *, shard: tuple[int, int] | None = None
    ) -> int:
        return self._embeddings.embedding_count(collection_id, model_id, shard=shard)

    def vectors(self, ids: Sequence[int], model_id: str) -> dict[int, npt.NDArray[np.float32]]:
        return self._embeddings.vectors(ids, model_id)

    def unembedded(
        self, collection_id: str, model_id: str, batch_size: int = 256
    ) -> Iterator[list[tuple[int, str | None, str, dict[str, Any]]]]:
        return self._embeddings.unembedded(collection_id, model_id, batch_size)

    def unembedded_query(self, collection_id: str, model_id: str) -> DbapiQuery:
        return self._embeddings.unembedded_query(collection_id, model_id)

    def add_embeddings(
        self, ids: Sequence[int], vectors: npt.NDArray[np.float32], model_id: str
    ) -> None:
        self._embeddings.add_embeddings(ids, vectors, model_id)

    def retired_embedded(self, collection_id: str, model_id: str) -> list[int]:
        return self._embeddings.retired_embedded(collection_id, model_id)

    # keyword search

    def keyword_search(
        self, collection_id: str, query: str, k: int, where: Filter | None = None
    ) -> list[tuple[int, float]]:
        return self._keyword.keyword_search(collection_id, query, k, where)
