"""The ModelHost actor, a shell over :class:`ember.models.host.ModelHost`, and the handle the
registry and providers use to call it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from ember.chat import ChatMessage, Completion, Delta, GenerationOptions
from ember.config.models import ModelsConfig
from ember.errors import EmberError, ProviderUnavailable
from ember.models.coalesce import coalesce
from ember.models.host import ModelHost
from ember.models.records import ModelRecord

__all__ = ["ModelHostActor", "RayHostHandle"]


class ModelHostActor:
    """One loaded model; calls run one at a time in the host's thread. A stream's deltas are
    merged over ``models.stream_interval_ms`` (:mod:`ember.models.coalesce`), one Ray object
    per merged delta."""

    def __init__(self, record: ModelRecord, settings: ModelsConfig, gpu: bool) -> None:
        self._host = ModelHost(record, settings, gpu=gpu)
        self._interval_s = settings.stream_interval_ms / 1000

    def load(self) -> float:
        return self._host.load()

    async def complete(self, prompt: str, options: GenerationOptions) -> Completion:
        return await self._host.complete(prompt, options)

    async def stream(self, prompt: str, options: GenerationOptions) -> AsyncIterator[Delta]:
        async for delta in coalesce(self._host.stream(prompt, options), self._interval_s):
            yield delta

    async def chat(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Completion:
        return await self._host.chat(messages, options)

    async def stream_chat(
        self, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        deltas = self._host.stream_chat(messages, options)
        async for delta in coalesce(deltas, self._interval_s):
            yield delta

    async def busy(self) -> int:
        return await self._host.busy()

    async def close(self) -> None:
        await self._host.close()


def _ember_error(exc: BaseException, where: str) -> EmberError:
    if isinstance(exc, RayTaskError) and isinstance(exc.cause, EmberError):
        return exc.cause
    if isinstance(exc, RayActorError):
        return ProviderUnavailable(f"{where}: the model host is gone ({type(exc).__name__})")
    return ProviderUnavailable(f"{where}: {exc}")


class RayHostHandle:
    """:class:`~ember.models.protocol.HostHandle` over a ModelHost actor; Ray's errors become
    ember's (the host's own errors unwrapped, a dead actor ProviderUnavailable)."""

    def __init__(self, actor: Any, name: str) -> None:
        self._actor = actor
        self._name = name

    @property
    def actor(self) -> Any:
        return self._actor

    async def complete(self, prompt: str, options: GenerationOptions) -> Completion:
        answer: Completion = await self._call(self._actor.complete.remote(prompt, options))
        return answer

    def stream(self, prompt: str, options: GenerationOptions) -> AsyncIterator[Delta]:
        return self._stream(self._actor.stream, prompt, options)

    async def chat(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Completion:
        answer: Completion = await self._call(self._actor.chat.remote(list(messages), options))
        return answer

    def stream_chat(
        self, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        return self._stream(self._actor.stream_chat, list(messages), options)

    async def busy(self) -> int:
        return await self._call(self._actor.busy.remote())  # type: ignore[no-any-return]

    async def close(self) -> None:
        with contextlib.suppress(RayActorError, RayTaskError):
            await self._actor.close.remote()
        ray.kill(self._actor, no_restart=True)

    async def _call(self, ref: Any) -> Any:
        try:
            return await ref
        except (RayActorError, RayTaskError) as exc:
            raise _ember_error(exc, self._name) from exc

    async def _stream(self, method: Any, *args: Any) -> AsyncIterator[Delta]:
        refs = method.options(num_returns="streaming").remote(*args)
        ended = False
        try:
            async for ref in refs:
                yield await self._call(ref)
            ended = True
        except (RayActorError, RayTaskError) as exc:
            ended = True
            raise _ember_error(exc, self._name) from exc
        finally:
            if not ended:  # the caller stopped early: stop the host's generation too
                ray.cancel(refs)
