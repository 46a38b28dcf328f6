"""An embedder whose vectors are another's times a fixed matrix, re-normalized.

A projection fitted on a corpus (for instance PCA to fewer dimensions) makes smaller vectors
from the same model. They are another model's vectors as far as indexes go, so they carry
their own id: the base model's id, ``+proj``, the new dimension and the first 12 hex digits of
the matrix's SHA-256. A different matrix is a different model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ember.errors import EmberError
from ember.providers.protocol import Embedder

__all__ = ["ProjectedEmbedder", "load_projection"]


def load_projection(path: str | Path) -> npt.NDArray[np.float32]:
    """The matrix in a ``.npy`` file, as float32.

    :raises EmberError: the file cannot be read or does not hold a 2-D matrix.
    """
    try:
        matrix = np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise EmberError(f"embeddings.projection: cannot read {path}: {exc}") from exc
    if matrix.ndim != 2 or min(matrix.shape) < 1:
        raise EmberError(f"embeddings.projection: {path} holds shape {matrix.shape}, not a matrix")
    return np.ascontiguousarray(matrix, dtype=np.float32)


class ProjectedEmbedder:
    """:class:`~ember.providers.protocol.Embedder` of ``base``'s vectors times ``matrix``
    (shape ``(base.dim, dim)``), L2-normalized again."""

    def __init__(self, base: Embedder, matrix: npt.NDArray[np.float32]) -> None:
        self._base = base
        self._matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        digest = hashlib.sha256(self._matrix.tobytes()).hexdigest()[:12]
        self._model_id = f"{base.model_id}+proj{self._matrix.shape[1]}-{digest}"

    @property
    def base(self) -> Embedder:
        """The embedder whose vectors are projected."""
        return self._base

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return int(self._matrix.shape[1])

    @property
    def device(self) -> str:
        """The base embedder's device, where it has one."""
        return str(getattr(self._base, "device", "remote"))

    def _project(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if vectors.shape[-1] != self._matrix.shape[0]:
            raise EmberError(
                f"embeddings.projection expects {self._matrix.shape[0]}-dimensional vectors, "
                f"{self._base.model_id} gives {vectors.shape[-1]}"
            )
        projected = vectors @ self._matrix
        norms = np.linalg.norm(projected, axis=-1, keepdims=True)
        return np.ascontiguousarray(projected / np.maximum(norms, 1e-12), dtype=np.float32)

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._project(self._base.embed_documents(texts))

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        return self._project(self._base.embed_query(text))
