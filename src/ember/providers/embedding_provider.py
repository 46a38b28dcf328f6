"""An :class:`~ember.providers.protocol.Embedder` offered as a provider, so ``/v1/embeddings``
and ``/api/embed`` route to the bundled sentence-transformers model like any other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence

from ember.chat import (
    Capability,
    ChatMessage,
    Completion,
    Delta,
    GenerationOptions,
    Health,
    ModelInfo,
)
from ember.errors import ProviderBadRequest, ProviderModelNotFound
from ember.providers.protocol import Embedder

__all__ = ["EmbeddingProvider"]


class EmbeddingProvider:
    """Embeds with one embedder, built on first use by ``embedder``. The model is named by
    its short name (the last part of ``model_id``) or by the whole ``model_id``."""

    def __init__(self, name: str, embedder: Callable[[], Embedder]) -> None:
        self._name = name
        self._factory = embedder
        self._embedder: Embedder | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset({Capability.EMBED})

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        embedder = await self._loaded()
        if model not in self._names(embedder):
            raise ProviderModelNotFound(f"{self._name} serves {_short(embedder.model_id)!r} only")
        vectors = await asyncio.to_thread(embedder.embed_documents, list(texts))
        return [[float(x) for x in row] for row in vectors]

    async def list_models(self) -> list[ModelInfo]:
        embedder = await self._loaded()
        return [
            ModelInfo(
                name=_short(embedder.model_id),
                provider=self._name,
                details={"model_id": embedder.model_id, "dim": embedder.dim, "kind": "embedding"},
            )
        ]

    async def health(self) -> Health:
        started = time.perf_counter()
        try:
            embedder = await self._loaded()
        except Exception as exc:
            return Health(ok=False, detail=f"{self._name}: {exc!r}")
        latency = (time.perf_counter() - started) * 1000
        return Health(ok=True, detail=embedder.model_id, latency_ms=latency)

    async def chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> Completion:
        raise self._embeds_only()

    def stream_chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        raise self._embeds_only()

    async def generate(self, model: str, prompt: str, options: GenerationOptions) -> Completion:
        raise self._embeds_only()

    def stream_generate(
        self, model: str, prompt: str, options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        raise self._embeds_only()

    async def aclose(self) -> None:
        return None

    async def _loaded(self) -> Embedder:
        if self._embedder is None:
            self._embedder = await asyncio.to_thread(self._factory)
        return self._embedder

    def _names(self, embedder: Embedder) -> set[str]:
        return {embedder.model_id, _short(embedder.model_id)}

    def _embeds_only(self) -> ProviderBadRequest:
        return ProviderBadRequest(f"{self._name} only embeds")


def _short(model_id: str) -> str:
    return model_id.rsplit("/", 1)[-1].split("@", 1)[0]
