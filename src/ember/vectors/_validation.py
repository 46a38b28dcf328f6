"""Argument checks every adapter applies before it touches its backend, so all fail alike."""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ember.errors import DimensionMismatch
from ember.filters import Scalar
from ember.vectors.protocol import Vector

__all__ = ["MAX_ID", "checked_batch", "checked_query", "scalar_metadata"]

MAX_ID = 2**63 - 1


def checked_batch(
    dim: int, ids: Sequence[int], vectors: Vector, metadata: Sequence[Mapping[str, Any]]
) -> tuple[npt.NDArray[np.int64], Vector]:
    """``ids`` as int64 and ``vectors`` as a C-contiguous float32 ``(n, dim)`` array.

    :raises DimensionMismatch: the vectors are not ``dim`` wide.
    :raises ValueError: lengths differ, an id repeats, or an id is not in ``[0, 2**63)``.
    """
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"vectors must have shape (n, {dim}), got {matrix.shape}")
    if matrix.shape[1] != dim:
        raise DimensionMismatch(f"vectors have dimension {matrix.shape[1]}, the index {dim}")
    if not len(ids) == matrix.shape[0] == len(metadata):
        raise ValueError(
            f"{len(ids)} ids, {matrix.shape[0]} vectors and {len(metadata)} metadata differ"
        )
    numbers = [operator.index(i) for i in ids]
    if any(not 0 <= i <= MAX_ID for i in numbers):
        raise ValueError("ids must be integers in [0, 2**63)")
    if len(set(numbers)) != len(numbers):
        raise ValueError("an id repeats within one upsert")
    return np.asarray(numbers, dtype=np.int64), matrix


def checked_query(dim: int, vector: Vector, k: int) -> Vector:
    """``vector`` as a float32 ``(1, dim)`` array (shape ``(dim,)`` or ``(1, dim)`` accepted).

    :raises DimensionMismatch: the vector does not have ``dim`` elements.
    :raises ValueError: ``k`` is negative.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    query = np.ascontiguousarray(vector, dtype=np.float32)
    if query.ndim == 2 and query.shape[0] == 1:
        query = query[0]
    if query.ndim != 1 or query.shape[0] != dim:
        raise DimensionMismatch(f"query has shape {query.shape}, the index dimension is {dim}")
    return query.reshape(1, dim)


def scalar_metadata(metadata: Mapping[str, Any]) -> dict[str, Scalar]:
    """The filterable part of ``metadata``: string keys with str, int, float or bool values.

    NumPy scalars become Python scalars; NaN is dropped (no filter could select it).
    """
    kept: dict[str, Scalar] = {}
    for key, raw in metadata.items():
        value = raw.item() if isinstance(raw, np.generic) else raw
        if not isinstance(key, str) or not isinstance(value, str | bool | int | float):
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        kept[key] = value
    return kept
