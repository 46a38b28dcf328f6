"""Provider contracts: embedders, tokenizers, and model providers (chat, generate, embed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ember.chat import (
    Capability,
    ChatMessage,
    Completion,
    Delta,
    GenerationOptions,
    Health,
    ModelInfo,
)

__all__ = ["Embedder", "Provider", "Tokenizer"]


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


class Provider(Protocol):
    """A source of model calls: a local GGUF, an Ollama server, an OpenAI-compatible API.

    Every method maps the vendor's failures into ember's tree at the adapter's edge:

    - :class:`~ember.errors.ProviderTimeout` — no answer within the timeout;
    - :class:`~ember.errors.ProviderUnavailable` — cannot connect, or HTTP 5xx;
    - :class:`~ember.errors.ProviderRateLimited` — HTTP 429 (``retry_after_s`` when given);
    - :class:`~ember.errors.ProviderAuthFailed` — HTTP 401 or 403;
    - :class:`~ember.errors.ProviderModelNotFound` — the model does not exist (HTTP 404);
    - :class:`~ember.errors.ProviderBadRequest` — any other 4xx.

    The first three are retryable and make a router try the next candidate; the others fail
    fast. Streams raise the same errors from the iterator, before or after the first delta.
    """

    @property
    def name(self) -> str:
        """The provider's configured name (``local``, ``ollama``, ``openai``, ...)."""
        ...

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What this provider supports; calling anything else raises ProviderBadRequest."""
        ...

    async def chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> Completion:
        """The model's whole answer to ``messages``."""
        ...

    def stream_chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        """The answer as it is generated; the texts of the deltas joined are the answer."""
        ...

    async def generate(self, model: str, prompt: str, options: GenerationOptions) -> Completion:
        """A plain completion of ``prompt``."""
        ...

    def stream_generate(
        self, model: str, prompt: str, options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        """:meth:`generate`, streamed."""
        ...

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...

    async def list_models(self) -> list[ModelInfo]:
        """The models this provider serves now."""
        ...

    async def health(self) -> Health:
        """Whether the provider answers (never raises)."""
        ...

    async def aclose(self) -> None:
        """Release connections; the provider is not used afterwards."""
        ...
