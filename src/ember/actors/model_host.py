"""The ModelHost actor, a shell over :class:`ember.models.host.ModelHost`, and the handle the
registry and providers use to call it.

Every call carries the caller's W3C trace context and request id (``trace``); with tracing
configured the actor makes one span per call in that trace, with that request id:
``{gen_ai.operation.name} {model}`` (kind server, ``gen_ai.provider.name: llama.cpp``), sent
to the cluster's store of recent traces.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import ray
from opentelemetry.trace import Span, SpanKind
from ray.exceptions import RayActorError, RayTaskError

from ember.actors.metrics import RayMetrics
from ember.actors.trace_store import RayTraceStore
from ember.chat import ChatMessage, Completion, Delta, GenerationOptions
from ember.config.models import LoggingConfig, ModelsConfig
from ember.config.tracing import TracingConfig
from ember.errors import EmberError, ProviderUnavailable
from ember.models.coalesce import coalesce
from ember.models.host import ModelHost
from ember.models.records import ModelRecord
from ember.observability import configure_logging
from ember.observability.tracing import (
    REQUEST_KEY,
    Tracing,
    call_context,
    extract,
    failed,
    served,
)

__all__ = ["ModelHostActor", "RayHostHandle"]


class ModelHostActor:
    """One loaded model; calls run one at a time in the host's thread. A stream's deltas are
    merged over ``models.stream_interval_ms`` (:mod:`ember.models.coalesce`), one Ray object
    per merged delta. ``tracing`` (``None``: off) traces each call in its caller's trace; the
    host's queue time is recorded with :class:`~ember.actors.metrics.RayMetrics`; ``logs``
    (``None``: Python's defaults) formats its log lines as service ``ember-model-host``."""

    def __init__(
        self,
        record: ModelRecord,
        settings: ModelsConfig,
        gpu: bool,
        tracing: TracingConfig | None = None,
        logs: LoggingConfig | None = None,
    ) -> None:
        if logs is not None:
            configure_logging("ember-model-host", logs.level, logs.format)
        self._host = ModelHost(record, settings, gpu=gpu, metrics=RayMetrics())
        self._interval_s = settings.stream_interval_ms / 1000
        self._tracing = (
            Tracing(tracing, "ember-model-host", store=RayTraceStore())
            if tracing is not None
            else Tracing.off()
        )
        self._tracer = self._tracing.tracer("ember.models")
        self._model = record.name

    def load(self) -> float:
        return self._host.load()

    async def complete(
        self, prompt: str, options: GenerationOptions, trace: dict[str, str] | None = None
    ) -> Completion:
        with self._span("text_completion", trace) as current:
            answer = await self._host.complete(prompt, options)
            _usage(current, answer)
            return answer

    async def stream(
        self, prompt: str, options: GenerationOptions, trace: dict[str, str] | None = None
    ) -> AsyncIterator[Delta]:
        current = self._start("text_completion", trace)
        try:
            deltas = coalesce(self._host.stream(prompt, options), self._interval_s)
            async for delta in _counted(current, deltas):
                yield delta
        finally:
            current.end()

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        trace: dict[str, str] | None = None,
    ) -> Completion:
        with self._span("chat", trace) as current:
            answer = await self._host.chat(messages, options)
            _usage(current, answer)
            return answer

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        options: GenerationOptions,
        trace: dict[str, str] | None = None,
    ) -> AsyncIterator[Delta]:
        current = self._start("chat", trace)
        try:
            deltas = coalesce(self._host.stream_chat(messages, options), self._interval_s)
            async for delta in _counted(current, deltas):
                yield delta
        finally:
            current.end()

    def _attributes(self, operation: str, trace: dict[str, str] | None) -> dict[str, str]:
        found = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": "llama.cpp",
            "gen_ai.request.model": self._model,
        }
        request_id = (trace or {}).get(REQUEST_KEY)
        return found | {"ember.request_id": request_id} if request_id else found

    def _span(self, operation: str, trace: dict[str, str] | None) -> Any:
        """A current span for a whole call."""
        attributes = self._attributes(operation, trace)
        return served(self._tracer, f"{operation} {self._model}", trace, attributes=attributes)

    def _start(self, operation: str, trace: dict[str, str] | None) -> Span:
        """A span for a stream, never made current (a stream's steps may run in other
        contexts); the caller ends it."""
        return self._tracer.start_span(
            f"{operation} {self._model}",
            context=extract(trace),
            kind=SpanKind.SERVER,
            attributes=self._attributes(operation, trace),
        )

    async def busy(self) -> int:
        return await self._host.busy()

    async def close(self) -> None:
        await self._host.close()
        self._tracing.shutdown()


def _usage(current: Any, answer: Completion) -> None:
    if current.is_recording():
        current.set_attribute("gen_ai.usage.input_tokens", answer.usage.prompt_tokens)
        current.set_attribute("gen_ai.usage.output_tokens", answer.usage.completion_tokens)


async def _counted(current: Any, deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
    """``deltas``, with how many were sent and the last usage put on ``current``."""
    sent = 0
    try:
        async for delta in deltas:
            sent += 1
            if delta.usage is not None and current.is_recording():
                current.set_attribute("gen_ai.usage.input_tokens", delta.usage.prompt_tokens)
                current.set_attribute("gen_ai.usage.output_tokens", delta.usage.completion_tokens)
            yield delta
    except BaseException as exc:
        failed(current, exc)
        raise
    finally:
        if current.is_recording():
            current.set_attribute("ember.deltas", sent)


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
        ref = self._actor.complete.remote(prompt, options, call_context())
        answer: Completion = await self._call(ref)
        return answer

    def stream(self, prompt: str, options: GenerationOptions) -> AsyncIterator[Delta]:
        return self._stream(self._actor.stream, prompt, options)

    async def chat(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Completion:
        ref = self._actor.chat.remote(list(messages), options, call_context())
        answer: Completion = await self._call(ref)
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
        refs = method.options(num_returns="streaming").remote(*args, call_context())
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
