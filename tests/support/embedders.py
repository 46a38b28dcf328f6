"""Deterministic stand-ins for an embedding model and a tokenizer, for tests that need many
vectors fast and exactly repeatable (the real bundled model is used where quality matters)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt

__all__ = ["HashEmbedder", "WordTokenizer"]


class HashEmbedder:
    """A bag-of-words embedding: each word adds to two hashed positions, then L2-normalized.
    Subclass with another ``dim`` (and ``model_id``) for other sizes."""

    dim: ClassVar[int] = 32
    model_id: ClassVar[str] = "hash-bow-32"

    def _one(self, text: str) -> npt.NDArray[np.float32]:
        dim = self.dim
        vector = np.zeros(dim, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            code = zlib.crc32(word.encode())
            vector[code % dim] += 1.0
            vector[(code // dim) % dim] += 0.5
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector + np.float32(1 / dim**0.5)

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._one(text) for text in texts])

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        return self._one(text)


class WordTokenizer:
    """One token per run of non-space characters."""

    name = "words"

    def count(self, text: str) -> int:
        return len(self.offsets(text))

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
