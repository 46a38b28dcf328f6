"""A third-party provider plug-in for the tests: answers with the prompt, reversed word by word,
and a prefix taken from the configured ``options``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from ember.chat import (
    Capability,
    ChatMessage,
    Completion,
    Delta,
    GenerationOptions,
    Health,
    ModelInfo,
    Usage,
)


class EchoProvider:
    def __init__(self, name: str, prefix: str) -> None:
        self.name = name
        self.capabilities = frozenset({Capability.CHAT, Capability.GENERATE, Capability.STREAM})
        self._prefix = prefix

    def _answer(self, model: str, prompt: str) -> Completion:
        words = prompt.split()
        text = f"{self._prefix}{' '.join(reversed(words))}"
        return Completion(text, model, self.name, "stop", Usage(len(words), len(words)))

    async def chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> Completion:
        return self._answer(model, messages[-1].content)

    async def stream_chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        answer = self._answer(model, messages[-1].content)
        for word in answer.text.split(" "):
            yield Delta(word + " ")
        yield Delta("", "stop", answer.usage)

    async def generate(self, model: str, prompt: str, options: GenerationOptions) -> Completion:
        return self._answer(model, prompt)

    async def stream_generate(
        self, model: str, prompt: str, options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        yield Delta(self._answer(model, prompt).text, "stop")

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        raise NotImplementedError("echo does not embed")

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo("echo-1", self.name)]

    async def health(self) -> Health:
        return Health(True, "echo")

    async def aclose(self) -> None:
        return None


def build(name: str, spec: Any, deps: Any) -> EchoProvider:
    return EchoProvider(name, str(spec.options.get("prefix", "")))
