"""The :class:`~ember.providers.protocol.Provider` contract as a pytest mixin.

An adapter's test module subclasses :class:`ProviderContract` and provides two fixtures:

- ``provider``: the adapter under test;
- ``model``: the name of a chat/generate model it serves.

An adapter of a remote service subclasses :class:`RemoteProviderContract` instead and also
provides ``upstream``: an :class:`Upstream` — the server the adapter calls (a fake that speaks
the real protocol, for services that cannot run here), which the tests make fail.

Answers are compared between the streaming and the whole-answer calls with ``temperature=0``
and a fixed seed, so the upstream must be deterministic for those.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import pytest

from ember.chat import Capability, ChatMessage, Completion, GenerationOptions
from ember.errors import (
    ProviderAuthFailed,
    ProviderModelNotFound,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from ember.providers.protocol import Provider

__all__ = ["MESSAGES", "ProviderContract", "RemoteProviderContract", "Upstream"]

MESSAGES = [
    ChatMessage("system", "You answer in one short sentence."),
    ChatMessage("user", "What is the capital of France?"),
]
SAME = GenerationOptions(max_tokens=16, temperature=0.0, seed=7)


class Upstream(Protocol):
    """The server behind a provider, as the contract tests drive it."""

    def fail_next(self, status: int, count: int = 1, retry_after_s: float | None = None) -> None:
        """Answer the next ``count`` calls with HTTP ``status`` in the vendor's error shape
        (``Retry-After`` when given)."""
        ...

    def stall_next(self, seconds: float, count: int = 1) -> None:
        """Hold the next ``count`` calls for ``seconds`` before answering."""
        ...

    def stop(self) -> None:
        """Stop listening (connections are refused) until :meth:`start`."""
        ...

    def start(self) -> None:
        """Listen again on the same address."""
        ...


class ProviderContract:
    """Behaviour every provider adapter shares; see the module docstring."""

    async def test_declares_what_it_can_do(self, provider: Provider) -> None:
        assert provider.name
        assert {Capability.CHAT, Capability.STREAM} <= provider.capabilities

    async def test_chat_answers(self, provider: Provider, model: str) -> None:
        answer = await provider.chat(model, MESSAGES, SAME)
        assert isinstance(answer, Completion)
        assert answer.text.strip()
        assert answer.provider == provider.name
        assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0

    async def test_a_stream_joins_to_the_whole_answer(self, provider: Provider, model: str) -> None:
        whole = await provider.chat(model, MESSAGES, SAME)
        deltas = [delta async for delta in provider.stream_chat(model, MESSAGES, SAME)]
        assert len(deltas) > 1
        assert "".join(delta.text for delta in deltas) == whole.text
        assert deltas[-1].finish_reason is not None

    async def test_generate_and_its_stream_agree(self, provider: Provider, model: str) -> None:
        if Capability.GENERATE not in provider.capabilities:
            pytest.skip(f"{provider.name} does not declare generate")
        prompt = "Question: What is the capital of France?\nAnswer:"
        whole = await provider.generate(model, prompt, SAME)
        streamed = [d.text async for d in provider.stream_generate(model, prompt, SAME)]
        assert whole.text.strip() and "".join(streamed) == whole.text

    async def test_lists_its_models(self, provider: Provider, model: str) -> None:
        names = {info.name for info in await provider.list_models()}
        assert model in names
        assert all(info.provider == provider.name for info in await provider.list_models())

    async def test_many_calls_at_once(self, provider: Provider, model: str) -> None:
        answers = await asyncio.gather(*(provider.chat(model, MESSAGES, SAME) for _ in range(8)))
        assert len({answer.text for answer in answers}) == 1

    async def test_an_unknown_model_is_model_not_found(self, provider: Provider) -> None:
        with pytest.raises(ProviderModelNotFound):
            await provider.chat("no-such-model-anywhere", MESSAGES, SAME)


class RemoteProviderContract(ProviderContract):
    """The contract of an adapter of a remote service, whose failures the tests provoke."""

    async def test_health_says_when_the_upstream_is_gone(
        self, provider: Provider, upstream: Upstream
    ) -> None:
        assert (await provider.health()).ok
        upstream.stop()
        try:
            health = await provider.health()
            assert not health.ok and health.detail
        finally:
            upstream.start()
        assert (await provider.health()).ok

    async def test_errors_map_into_the_tree(
        self, provider: Provider, model: str, upstream: Upstream
    ) -> None:
        cases = [(401, ProviderAuthFailed), (429, ProviderRateLimited), (503, ProviderUnavailable)]
        for status, expected in cases:
            upstream.fail_next(status, retry_after_s=2 if status == 429 else None)
            with pytest.raises(expected) as raised:
                await provider.chat(model, MESSAGES, SAME)
            if status == 429:
                assert raised.value.extra.get("retry_after_s") == pytest.approx(2, abs=1)

    async def test_a_stall_past_the_timeout_is_a_timeout(
        self, provider: Provider, model: str, upstream: Upstream
    ) -> None:
        upstream.stall_next(3.0)
        options = GenerationOptions(max_tokens=8, temperature=0.0, timeout_s=0.5)
        with pytest.raises(ProviderTimeout):
            await provider.chat(model, MESSAGES, options)

    async def test_refused_connections_are_unavailable(
        self, provider: Provider, model: str, upstream: Upstream
    ) -> None:
        upstream.stop()
        try:
            with pytest.raises(ProviderUnavailable):
                await provider.chat(model, MESSAGES, SAME)
        finally:
            upstream.start()

    async def test_a_stream_that_fails_first_raises_from_the_iterator(
        self, provider: Provider, model: str, upstream: Upstream
    ) -> None:
        upstream.fail_next(500)
        with pytest.raises(ProviderUnavailable):
            _ = [d async for d in provider.stream_chat(model, MESSAGES, SAME)]
        deltas = [d async for d in provider.stream_chat(model, MESSAGES, SAME)]
        assert deltas
