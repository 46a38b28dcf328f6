"""The vector index contract. Adapters: ``faiss.py``, ``milvus.py``, ``weaviate.py``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ember.filters import Filter

__all__ = ["Vector", "VectorHit", "VectorIndex"]

Vector = npt.NDArray[np.float32]
"""A float32 array: one vector of shape ``(dim,)`` or a batch of shape ``(n, dim)``."""


@dataclass(frozen=True, slots=True, order=True)
class VectorHit:
    """One search result: the id given at upsert and its similarity (higher is closer)."""

    score: float
    id: int


class VectorIndex(Protocol):
    """A set of ``(id, vector, metadata)`` entries searched by inner product.

    Vectors are L2-normalized by the caller, so inner product is cosine similarity. Ids are
    non-negative 63-bit integers (ember uses chunk ids). ``metadata`` holds scalar values
    (str, int, float, bool) that filters can test; other values may be dropped.
    """

    @property
    def dim(self) -> int:
        """The dimension every vector must have."""
        ...

    def upsert(
        self, ids: Sequence[int], vectors: Vector, metadata: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert the entries, replacing any with the same id.

        ``vectors`` has shape ``(len(ids), dim)``; ``metadata`` has one mapping per id.

        :raises DimensionMismatch: a vector's dimension is not :attr:`dim`.
        :raises ValueError: the three sequences differ in length, or an id repeats.
        """
        ...

    def delete(self, ids: Sequence[int]) -> int:
        """Remove the entries with these ids; unknown ids are ignored. Returns how many went."""
        ...

    def search(self, vector: Vector, k: int, where: Filter | None = None) -> list[VectorHit]:
        """The ``k`` entries closest to ``vector`` among those whose metadata matches ``where``.

        The filter is applied inside the search (never by trimming an unfiltered top-k), so
        up to ``k`` matching hits come back whenever that many match. Ordered by score,
        best first; ties in any order.

        :raises DimensionMismatch: ``vector`` does not have :attr:`dim` elements.
        """
        ...

    def count(self) -> int:
        """How many entries the index holds."""
        ...

    def flush(self) -> None:
        """Make every change so far durable (saved to disk, or flushed to the server)."""
        ...

    def close(self) -> None:
        """Flush and release files, connections and memory; the object is unusable after."""
        ...
