"""EmbeddingWorker: one loaded embedding model, as a Ray Data map_batches class and an actor.

In a pipeline Ray Data runs it in an actor pool (``map_batches(EmbeddingWorker, ...)``): each
batch holds one row per document with a ``texts`` column (the texts of its chunks) and comes
back with ``texts`` replaced by a ``vectors`` column: each row's float32 vectors, row-major,
as bytes (one ``(len(texts), dim)`` array; no texts gives empty bytes). Every other column
passes through.
As an actor, :meth:`EmbeddingWorker.embed` serves calls directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import ray

from ember.config import EmberConfig
from ember.services import build_embedder

__all__ = ["EmbeddingWorker"]


class EmbeddingWorker:
    """Holds the configured embedder; the model loads on the first call (or :meth:`warm`)."""

    def __init__(self, config: EmberConfig) -> None:
        self._embedder, _ = build_embedder(config)

    @property
    def model_id(self) -> str:
        """The id of the vectors this worker makes."""
        return self._embedder.model_id

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Embed every row's ``texts`` in one call; ``texts`` becomes ``vectors`` (see the
        module)."""
        rows = [list(texts) for texts in batch["texts"]]
        flat = [text for texts in rows for text in texts]
        vectors = self._embedder.embed_documents(flat) if flat else None
        out: list[bytes] = []
        start = 0
        for texts in rows:
            stop = start + len(texts)
            out.append(
                b"" if vectors is None else np.ascontiguousarray(vectors[start:stop]).tobytes()
            )
            start = stop
        rest = {name: column for name, column in batch.items() if name != "texts"}
        return {**rest, "vectors": np.array(out, dtype=object)}

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Vectors of ``texts``: shape ``(len(texts), dim)``, rows L2-normalized."""
        return self._embedder.embed_documents(list(texts))

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Vector of one search query (the model's query prompt, if any): shape ``(dim,)``."""
        return self._embedder.embed_query(text)

    def warm(self) -> dict[str, Any]:
        """Load the model now; returns :meth:`info`."""
        self._embedder.embed_documents(["warm"])
        return self.info()

    def info(self) -> dict[str, Any]:
        """Where this worker runs and on what: node id, torch device, GPUs Ray gave it."""
        context = ray.get_runtime_context()
        device = getattr(self._embedder, "device", "remote")
        return {
            "node_id": context.get_node_id(),
            "gpu_ids": [str(gpu) for gpu in ray.get_gpu_ids()],
            "device": str(device),
            "model_id": self._embedder.model_id,
            "dim": self._embedder.dim,
        }
