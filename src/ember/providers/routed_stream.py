"""A routed token stream: falls back like a call until its first delta, then holds on."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

import anyio
from opentelemetry import trace

from ember.chat import Delta, GenerationOptions, Usage
from ember.errors import ProviderError, StreamInterrupted
from ember.observability.tracing import failed
from ember.providers._dispatch import RETRYABLE, Call, CandidateFailover
from ember.providers.protocol import Provider
from ember.providers.usage import reported, usage_or_estimate

__all__ = ["RoutedStream"]


class RoutedStream:
    """The deltas of a routed stream; ``provider`` and ``model`` are set once one answered.

    Failures before the first delta fall back as in :meth:`Router.chat`; a failure after it
    raises :class:`~ember.errors.StreamInterrupted` once the deltas so far were yielded. Usage
    is recorded when the stream ends, fails or is closed early: the last usage a delta
    reported, else an estimate from the prompt and the text yielded
    (:func:`~ember.providers.usage.usage_or_estimate`). The answering attempt's span lasts
    until then too, so the provider's side of the stream nests inside it. That usage is then
    :attr:`usage`
    (``None`` until then), and :attr:`usage_estimated` says whether it is the estimate, so
    what callers report is what was recorded. Nothing is sent before the first ``anext``.

    Besides the call's metrics (:mod:`ember.providers._dispatch`), the time from the call's
    start to the first delta is observed in ``ember_llm_time_to_first_token_seconds`` and the
    time between the arrivals of each later delta and the one before it in
    ``ember_llm_inter_token_seconds`` (a gap includes the time the consumer held the delta).
    """

    def __init__(
        self,
        failover: CandidateFailover,
        call: Call,
        options: GenerationOptions,
        open_stream: Callable[[Provider, str], AsyncIterator[Delta]],
    ) -> None:
        self.provider: str | None = None
        self.model: str | None = None
        self.usage: Usage | None = None
        self.usage_estimated = False
        self._failover = failover
        call.streamed = True
        self._call = call
        self._options = options
        self._open = open_stream
        self._deltas = self._run()

    def __aiter__(self) -> RoutedStream:
        return self

    async def __anext__(self) -> Delta:
        return await self._deltas.__anext__()

    async def aclose(self) -> None:
        """Stop the stream and close the provider's; usage so far is recorded."""
        await self._deltas.aclose()

    async def _first(self, provider: Provider, model: str) -> tuple[AsyncIterator[Delta], Delta]:
        stream = self._open(provider, model)
        try:
            first = await anext(stream, Delta("", finish_reason="stop"))
        except BaseException:
            await _close(stream)
            raise
        return stream, first

    async def _run(self) -> AsyncGenerator[Delta, None]:
        failover, call = self._failover, self._call
        current = failover.traced(call)
        try:
            with trace.use_span(current, record_exception=False, set_status_on_exception=False):
                (stream, first), candidate = await failover.route(
                    call, self._options.max_tokens, self._first
                )
        except BaseException as exc:
            failed(current, exc)
            current.end()
            raise
        arrived = time.perf_counter()
        current.add_event("first_token")
        self.provider, self.model = candidate.provider, candidate.model
        metrics, labels = failover.metrics, {"provider": self.provider, "model": self.model}
        metrics.observe("ember_llm_time_to_first_token_seconds", arrived - call.started, **labels)
        texts: list[str] = []
        given: Usage | None = None
        outcome = "cancelled"
        delta: Delta | None = first
        finish: str | None = None
        try:
            while delta is not None:
                texts.append(delta.text)
                given = delta.usage or given
                finish = delta.finish_reason or finish
                yield delta
                try:
                    delta = await anext(stream, None)
                except ProviderError as exc:
                    outcome = StreamInterrupted.code
                    if isinstance(exc, RETRYABLE):
                        failover.record_failure(candidate.provider)
                    raise StreamInterrupted(
                        f"{candidate} failed after the stream started: {exc.detail}",
                        extra={"partial_text": "".join(texts), "cause_code": exc.code}
                        | {"provider": candidate.provider, "model": candidate.model},
                    ) from exc
                if delta is not None:
                    now = time.perf_counter()
                    metrics.observe("ember_llm_inter_token_seconds", now - arrived, **labels)
                    arrived = now
            outcome = "ok"
        except BaseException as exc:
            failed(current, exc)
            failed(call.attempt, exc)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await _close(stream)
                self.usage = usage_or_estimate(given, call.prompt_tokens, texts)
                self.usage_estimated = not reported(given)
                await failover.finish(call, candidate, self.usage, outcome)
                if finish is not None and current.is_recording():
                    current.set_attribute("gen_ai.response.finish_reasons", [finish])
                call.attempt.end()
                current.end()


async def _close(stream: AsyncIterator[Delta]) -> None:
    aclose: Callable[[], Awaitable[None]] | None = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
