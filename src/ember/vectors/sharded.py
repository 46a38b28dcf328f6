"""One vector index cut into shards by id: routing, partitioning and merging of results.

Entry ``i`` lives in shard ``i % shards`` (:func:`shard_of`). A write is split into one part
per shard (:func:`split`, :func:`split_ids`); a search asks every shard for ``k`` hits and keeps
the global top ``k`` (:func:`merge_hits`), which is exact when each shard's search is.

:class:`ScatterGatherIndex` holds that logic over an abstract way of calling the shards;
:class:`ShardedIndex` calls in-process indexes one after another, and the Ray shell
(``ember.actors.vector_shard.RayShardedIndex``) issues every call before awaiting any.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any, NamedTuple

import numpy as np

from ember.errors import VectorIndexError
from ember.filters import Filter
from ember.vectors._validation import checked_batch, checked_query
from ember.vectors.protocol import Vector, VectorHit, VectorIndex

__all__ = [
    "Part",
    "ScatterGatherIndex",
    "ShardedIndex",
    "merge_hits",
    "shard_of",
    "split",
    "split_ids",
]


def shard_of(id: int, shards: int) -> int:
    """The shard holding entry ``id``: ``id % shards``.

    Chunk ids are handed out sequentially by the database, so consecutive chunks go round
    robin and every shard holds the same number of entries, give or take one per shard.

    :raises ValueError: ``shards`` is not positive.
    """
    if shards <= 0:
        raise ValueError(f"shards must be positive, got {shards}")
    return id % shards


class Part(NamedTuple):
    """The entries of one write that belong to one shard, in their original order."""

    ids: list[int]
    vectors: Vector
    metadata: list[Mapping[str, Any]]


def split(
    dim: int,
    ids: Sequence[int],
    vectors: Vector,
    metadata: Sequence[Mapping[str, Any]],
    shards: int,
) -> list[Part]:
    """Cut one upsert into ``shards`` parts (part ``s`` holds the ids with ``shard_of == s``,
    possibly none). The whole batch is checked first, so a bad one reaches no shard.

    :raises DimensionMismatch: the vectors are not ``dim`` wide.
    :raises ValueError: the lengths differ, an id repeats or is out of range, or ``shards``
        is not positive.
    """
    if shards <= 0:
        raise ValueError(f"shards must be positive, got {shards}")
    keys, matrix = checked_batch(dim, ids, vectors, metadata)
    owner = keys % shards
    parts = []
    for shard in range(shards):
        rows = np.flatnonzero(owner == shard)
        parts.append(
            Part(
                keys[rows].tolist(),
                matrix[rows],
                [metadata[row] for row in rows.tolist()],
            )
        )
    return parts


def split_ids(ids: Iterable[int], shards: int) -> list[list[int]]:
    """``ids`` grouped by shard: entry ``s`` lists those with ``shard_of(id) == s``, in order.

    :raises ValueError: ``shards`` is not positive.
    """
    if shards <= 0:
        raise ValueError(f"shards must be positive, got {shards}")
    groups: list[list[int]] = [[] for _ in range(shards)]
    for i in ids:
        groups[int(i) % shards].append(int(i))
    return groups


def merge_hits(per_shard: Sequence[list[VectorHit]], k: int) -> list[VectorHit]:
    """The ``k`` best hits of all shards together, best first (ties keep shard order).

    Exact when every shard returned its own ``k`` best: any global top-``k`` hit is among
    its shard's top ``k``.
    """
    if k <= 0:
        return []
    return heapq.nlargest(k, chain.from_iterable(per_shard), key=lambda hit: hit.score)


Call = tuple[int, tuple[Any, ...]]
"""One call of a scatter: the shard's position and the method's arguments."""


class ScatterGatherIndex(ABC):
    """A :class:`~ember.vectors.protocol.VectorIndex` over ``shards`` shards of dimension
    ``dim``, reached through :meth:`_gather` (a subclass decides how).

    Writes are checked whole before any shard sees them. After :meth:`close` every call
    raises :class:`~ember.errors.VectorIndexError`.
    """

    def __init__(self, shards: int, dim: int) -> None:
        if shards <= 0:
            raise ValueError(f"shards must be positive, got {shards}")
        self._shards = shards
        self._dim = dim
        self._closed = False

    @abstractmethod
    def _gather(self, method: str, calls: Sequence[Call]) -> list[Any]:
        """Call ``method`` with each call's arguments on its shard; the results in call order.

        Raises the first error a shard raised.
        """

    @property
    def dim(self) -> int:
        """The dimension every vector must have."""
        return self._dim

    @property
    def shards(self) -> int:
        """How many shards the index is cut into."""
        return self._shards

    def _check_open(self) -> None:
        if self._closed:
            raise VectorIndexError("this sharded index is closed")

    def _all(self, method: str, *args: Any) -> list[Any]:
        self._check_open()
        return self._gather(method, [(shard, args) for shard in range(self._shards)])

    def upsert(
        self, ids: Sequence[int], vectors: Vector, metadata: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert the entries, each into its own shard (see ``VectorIndex.upsert``)."""
        self._check_open()
        parts = split(self._dim, ids, vectors, metadata, self._shards)
        calls = [(shard, tuple(part)) for shard, part in enumerate(parts) if part.ids]
        self._gather("upsert", calls)

    def delete(self, ids: Sequence[int]) -> int:
        """Remove the entries from their shards; unknown ids are ignored. Returns how many went."""
        self._check_open()
        groups = split_ids(ids, self._shards)
        calls = [(shard, (group,)) for shard, group in enumerate(groups) if group]
        return sum(self._gather("delete", calls))

    def search(self, vector: Vector, k: int, where: Filter | None = None) -> list[VectorHit]:
        """Every shard's ``k`` best under ``where``, merged into the global ``k`` best."""
        self._check_open()
        query = checked_query(self._dim, vector, k)
        if k == 0:
            return []
        return merge_hits(self._all("search", query, k, where), k)

    def count(self) -> int:
        """The entries of all shards together."""
        return sum(self._all("count"))

    def flush(self) -> None:
        """Flush every shard."""
        self._all("flush")

    def close(self) -> None:
        """Close every shard (once); later calls raise."""
        if not self._closed:
            self._all("close")
            self._closed = True


class ShardedIndex(ScatterGatherIndex):
    """Indexes in this process as the shards of one: shard ``s`` is ``shards[s]``.

    :raises ValueError: no shards, or shards of different dimensions.
    """

    def __init__(self, shards: Sequence[VectorIndex]) -> None:
        dims = {shard.dim for shard in shards}
        if len(dims) > 1:
            raise ValueError(f"shards have different dimensions {sorted(dims)}")
        if not dims:
            raise ValueError("a sharded index needs at least one shard")
        super().__init__(len(shards), dims.pop())
        self._indexes = list(shards)

    def _gather(self, method: str, calls: Sequence[Call]) -> list[Any]:
        return [getattr(self._indexes[shard], method)(*args) for shard, args in calls]
