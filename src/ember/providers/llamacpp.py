"""Chat and completions from local GGUF models through llama.cpp, hosted by the model registry.

The provider holds no model itself: :class:`ModelAccess` gives it the registered record and a
host of the model (loaded on demand, evicted when idle and short of room), in this process or
in a ``ModelHost`` actor. Chat messages are rendered with the model's prompt template
(:mod:`ember.models.templates`) and its stop sequences, or, for the ``gguf`` template, with the
chat template stored in the file (which also carries tool definitions; a plain-text template
refuses them). Embeddings come from the ``sentence-transformers`` provider,
not from here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from ember.chat import (
    Capability,
    ChatMessage,
    Completion,
    Delta,
    GenerationOptions,
    Health,
    ModelInfo,
)
from ember.errors import (
    ModelNotRegistered,
    ProviderBadRequest,
    ProviderModelNotFound,
    ProviderUnavailable,
)
from ember.models.protocol import HostHandle, ModelAccess
from ember.models.records import ModelRecord
from ember.models.templates import PromptTemplate, template

__all__ = ["LlamaCppProvider"]

CAPABILITIES = frozenset({Capability.CHAT, Capability.GENERATE, Capability.STREAM})


class LlamaCppProvider:
    """A :class:`~ember.providers.protocol.Provider` over hosted GGUF models."""

    def __init__(self, name: str, access: ModelAccess) -> None:
        self._name = name
        self._access = access

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Capability]:
        return CAPABILITIES

    async def chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> Completion:
        record, host = await self._open(model, options)
        rendered = self._template(record, options)
        try:
            if rendered is None:
                answer = await host.chat(messages, options)
            else:
                prompt = rendered.render(messages)
                answer = await host.complete(prompt.text, _stopping(options, prompt.stop))
        except ProviderUnavailable:
            self._access.forget(model)
            raise
        return self._named(answer, model)

    async def stream_chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        record, host = await self._open(model, options)
        rendered = self._template(record, options)
        if rendered is None:
            deltas = host.stream_chat(messages, options)
        else:
            prompt = rendered.render(messages)
            deltas = host.stream(prompt.text, _stopping(options, prompt.stop))
        async for delta in self._guarded(model, deltas):
            yield delta

    async def generate(self, model: str, prompt: str, options: GenerationOptions) -> Completion:
        _, host = await self._open(model, options)
        try:
            answer = await host.complete(prompt, options)
        except ProviderUnavailable:
            self._access.forget(model)
            raise
        return self._named(answer, model)

    async def stream_generate(
        self, model: str, prompt: str, options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        _, host = await self._open(model, options)
        async for delta in self._guarded(model, host.stream(prompt, options)):
            yield delta

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        raise ProviderBadRequest(
            f"{self._name} does not embed; use the sentence-transformers provider"
        )

    async def list_models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                name=r.name,
                provider=self._name,
                digest=r.digest,
                size_bytes=r.size_bytes,
                context_length=r.context_length,
                details={**r.details, "format": r.format, "template": r.template, "warm": r.warm},
            )
            for r in await self._access.records()
        ]

    async def health(self) -> Health:
        started = time.perf_counter()
        try:
            records = await self._access.records()
        except Exception as exc:
            return Health(ok=False, detail=f"{self._name}: {exc!r}")
        latency = (time.perf_counter() - started) * 1000
        return Health(ok=True, detail=f"{len(records)} model(s) registered", latency_ms=latency)

    async def aclose(self) -> None:
        return None

    async def _open(self, model: str, options: GenerationOptions) -> tuple[ModelRecord, HostHandle]:
        try:
            return await self._access.open(model, options.keep_alive_s)
        except ModelNotRegistered as exc:
            raise ProviderModelNotFound(f"{self._name}: {exc.detail}") from exc

    async def _guarded(self, model: str, deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
        try:
            async for delta in deltas:
                yield delta
        except ProviderUnavailable:
            self._access.forget(model)
            raise
        finally:
            aclose = getattr(deltas, "aclose", None)
            if aclose is not None:
                await aclose()

    def _template(self, record: ModelRecord, options: GenerationOptions) -> PromptTemplate | None:
        """The plain-text template of ``record`` (``None``: the file's own), refusing tools
        where the template cannot carry them."""
        rendered = template(record.template)
        if rendered is not None and options.tools:
            raise ProviderBadRequest(
                f"{record.name} uses the {record.template!r} prompt template, which has no tool "
                "calls; pin a tool-capable model with --template gguf"
            )
        return rendered

    def _named(self, answer: Completion, model: str) -> Completion:
        return replace(answer, model=model, provider=self._name)


def _stopping(options: GenerationOptions, stop: tuple[str, ...]) -> GenerationOptions:
    return replace(options, stop=tuple(dict.fromkeys([*options.stop, *stop])))
