"""Provider contracts: embedders and tokenizers (chat and generation arrive with routing)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["Embedder", "Tokenizer"]


class Embedder(Protocol):
    """Turns text into L2-normalized float32 vectors."""

    @property
    def model_id(self) -> str:
        """Stable id of the model and its settings; vectors of different ids never mix."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector this embedder returns."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed passages for indexing: shape ``(len(texts), dim)``, rows L2-normalized.

        Batches internally; an empty input gives shape ``(0, dim)``.

        :raises ProviderError: (a subclass of it) the model or the remote service failed.
        """
        ...

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one search query: shape ``(dim,)``, L2-normalized.

        :raises ProviderError: (a subclass of it) the model or the remote service failed.
        """
        ...


class Tokenizer(Protocol):
    """Counts and splits text in a model's tokens."""

    @property
    def name(self) -> str:
        """Which model's tokenizer this is."""
        ...

    def count(self, text: str) -> int:
        """Number of tokens in ``text``, without special tokens and without truncation."""
        ...

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span ``(start, end)`` in ``text`` of every token, in order."""
        ...
