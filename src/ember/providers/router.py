"""The provider router: a model alias in, an answer from the best provider that can give it.

An alias (``router.aliases``) names tiers of ``provider/model`` candidates, best (local) first;
candidates in one tier (``"ollama/llama3.2 | vllm/llama3.2"``) are equal preference and are
ordered by the optional ``load_hint``: a loaded model first, then the shortest queue. A name that
is no alias but ``provider/model`` of a known provider is that one candidate (split at the
first slash), and any other name goes to ``router.default_provider`` when that is configured
(see :mod:`ember.providers.candidates`).

For each candidate in order the router checks the budgets (nothing is sent when they refuse),
skips it while its provider's circuit breaker is open, and calls it; retryable errors
(timeout, unavailable, rate limited) are retried ``router.retry_attempts`` times in all, with
exponential backoff and full jitter (a longer ``Retry-After`` is waited for, unless it passes
``router.retry_max_s``: then the router moves on), then the next candidate is tried. A bad
request (a missing model too) or rejected credentials fail fast: that error, no fallback.
When no candidate answers, :class:`~ember.errors.NoProviderAvailable` says why for each (or,
when the budgets refused every one, the last :class:`~ember.errors.BudgetExceeded`).

A stream falls back like a call until its first delta; a failure after it raises
:class:`~ember.errors.StreamInterrupted` with the text already yielded. Every answered call, and
every interrupted stream, appends a usage row. One log line per call: ``provider``, ``model``,
``tokens``, ``latencyMs``, ``outcome`` (``ok`` or the error code), on the
``ember.providers.router`` logger. The usage in a row and the usage the caller gets are the
same: the provider's, else the estimate (:func:`~ember.providers.usage.usage_or_estimate`).
Nothing here imports Ray.

The attempt machinery is :mod:`ember.providers._dispatch`, the stream
:mod:`ember.providers.routed_stream`; this module re-exports their public names.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from opentelemetry.trace import Tracer

from ember.chat import ChatMessage, Completion, GenerationOptions, Usage
from ember.config.models import RouterConfig
from ember.observability.metrics import Metrics
from ember.providers._dispatch import RETRYABLE, Call, CandidateFailover
from ember.providers.breaker import CircuitBreaker
from ember.providers.budget import Budgets
from ember.providers.candidates import Candidate, Candidates, LoadHint, RouteRequest, Tiers
from ember.providers.protocol import Provider
from ember.providers.routed_stream import RoutedStream
from ember.providers.usage import estimate_tokens, usage_or_estimate
from ember.providers.usage_writer import UsageWriter

__all__ = [
    "RETRYABLE",
    "Candidate",
    "Embeddings",
    "LoadHint",
    "RouteRequest",
    "RoutedStream",
    "Router",
]

log = logging.getLogger("ember.providers.router")


@dataclass(frozen=True)
class Embeddings:
    """Vectors, and which provider and model made them."""

    vectors: list[list[float]]
    provider: str
    model: str
    usage: Usage = field(default_factory=Usage)


class Router:
    """Routes chat, generate and embed calls over ``providers`` (name → adapter).

    ``budgets`` checks budgets and records usage (``None``: neither); ``usage_writer``
    writes the usage rows in batches off the call's path (``None``: each before the call
    returns). ``clock`` drives the breakers, ``sleep`` the backoff and ``rng`` its jitter;
    tests inject all three. Calls are spans of ``tracer`` and are recorded in ``metrics``
    (``None``: nowhere; see :mod:`ember.providers._dispatch` and
    :class:`~ember.providers.routed_stream.RoutedStream` for the families).
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        config: RouterConfig | None = None,
        *,
        budgets: Budgets | None = None,
        usage_writer: UsageWriter | None = None,
        load_hint: LoadHint | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._providers: Mapping[str, Provider] = MappingProxyType(dict(providers))
        self._writer = usage_writer
        self._budgets = budgets
        config = config or RouterConfig()
        self._candidates = Candidates(
            config.aliases,
            self._providers,
            config.default_provider,
            load_hint,
            default_embedding_provider=config.default_embedding_provider,
        )
        self._failover = CandidateFailover(
            self._providers,
            self._candidates,
            config,
            budgets=budgets,
            usage_writer=usage_writer,
            clock=clock,
            sleep=sleep,
            rng=rng or random.Random(),
            tracer=tracer,
            metrics=metrics,
        )

    def cost(self, provider: str, usage: Usage) -> float:
        """USD ``usage`` cost at ``provider``, at the budgets' price table (0 without one)."""
        if self._budgets is None:
            return 0.0
        return self._budgets.cost(provider, usage.prompt_tokens, usage.completion_tokens)

    @property
    def usage_dropped(self) -> int:
        """Usage entries this router's writer dropped because its buffer was full (0 without
        a writer)."""
        return 0 if self._writer is None else self._writer.dropped

    async def aclose(self) -> None:
        """Write the queued usage rows and close every provider."""
        if self._writer is not None:
            await self._writer.aclose()
        for provider in self._providers.values():
            try:
                await provider.aclose()
            except Exception:
                log.warning("closing provider %s failed", provider.name, exc_info=True)

    @property
    def providers(self) -> Mapping[str, Provider]:
        """The configured providers, name to adapter; read-only."""
        return self._providers

    @property
    def aliases(self) -> Mapping[str, Tiers]:
        """Alias to its tiers of candidates, best first, as configured; read-only."""
        return self._candidates.aliases

    def breaker(self, provider: str) -> CircuitBreaker:
        """The circuit breaker of a configured provider.

        :raises KeyError: no provider has this name.
        """
        return self._failover.breaker(provider)

    def candidates(self, alias: str, route: RouteRequest | None = None) -> list[Candidate]:
        """The candidates for ``alias`` in the order they will be tried, overrides applied.

        :raises ProviderModelNotFound: ``alias`` is neither an alias, ``provider/model`` of a
            configured provider nor a bare name for a configured ``default_provider``, and no
            ``provider`` override is given.
        """
        return self._candidates.resolve(alias, route)

    async def chat(
        self,
        alias: str,
        messages: Sequence[ChatMessage],
        options: GenerationOptions | None = None,
        route: RouteRequest | None = None,
    ) -> Completion:
        """The whole answer of the first candidate that gives one; its ``usage`` is the one
        recorded: the provider's, else the estimate (:mod:`ember.providers.usage`).

        :raises ProviderModelNotFound: ``alias`` names no candidate (see :meth:`candidates`).
        :raises NoProviderAvailable: every candidate failed, was refused or skipped.
        :raises BudgetExceeded: the budgets refused every candidate.
        :raises ProviderBadRequest: a candidate rejected the request (no fallback).
        :raises ProviderAuthFailed: a candidate rejected ember's credentials (no fallback).
        """
        opts = options or GenerationOptions()
        call = Call("chat", alias, route or RouteRequest(), _message_tokens(messages))
        return await self._complete(call, opts.max_tokens, lambda p, m: p.chat(m, messages, opts))

    async def generate(
        self,
        alias: str,
        prompt: str,
        options: GenerationOptions | None = None,
        route: RouteRequest | None = None,
    ) -> Completion:
        """A plain completion of ``prompt``; raises as :meth:`chat`."""
        opts = options or GenerationOptions()
        call = Call("generate", alias, route or RouteRequest(), estimate_tokens([prompt]))
        return await self._complete(call, opts.max_tokens, lambda p, m: p.generate(m, prompt, opts))

    async def embed(
        self, alias: str, texts: Sequence[str], route: RouteRequest | None = None
    ) -> Embeddings:
        """One vector per text from the first candidate that gives them; raises as :meth:`chat`.

        Providers report no usage for embeddings: the prompt tokens are estimated.
        """
        items = list(texts)
        call = Call("embed", alias, route or RouteRequest(), estimate_tokens(items))
        with self._failover.current(call):
            vectors, candidate = await self._failover.route(call, 0, lambda p, m: p.embed(m, items))
            usage = usage_or_estimate(None, call.prompt_tokens, ())
            await self._failover.finish(call, candidate, usage, "ok")
        return Embeddings(vectors, candidate.provider, candidate.model, usage)

    def stream_chat(
        self,
        alias: str,
        messages: Sequence[ChatMessage],
        options: GenerationOptions | None = None,
        route: RouteRequest | None = None,
    ) -> RoutedStream:
        """:meth:`chat`, streamed; see :class:`RoutedStream`."""
        opts = options or GenerationOptions()
        call = Call("stream_chat", alias, route or RouteRequest(), _message_tokens(messages))
        return RoutedStream(
            self._failover, call, opts, lambda p, m: p.stream_chat(m, messages, opts)
        )

    def stream_generate(
        self,
        alias: str,
        prompt: str,
        options: GenerationOptions | None = None,
        route: RouteRequest | None = None,
    ) -> RoutedStream:
        """:meth:`generate`, streamed; see :class:`RoutedStream`."""
        opts = options or GenerationOptions()
        call = Call("stream_generate", alias, route or RouteRequest(), estimate_tokens([prompt]))
        return RoutedStream(
            self._failover, call, opts, lambda p, m: p.stream_generate(m, prompt, opts)
        )

    async def _complete(
        self,
        call: Call,
        max_tokens: int | None,
        send: Callable[[Provider, str], Awaitable[Completion]],
    ) -> Completion:
        with self._failover.current(call) as current:
            answer, candidate = await self._failover.route(call, max_tokens, send)
            usage = usage_or_estimate(answer.usage, call.prompt_tokens, [answer.text])
            if answer.finish_reason and current.is_recording():
                current.set_attribute("gen_ai.response.finish_reasons", [answer.finish_reason])
            await self._failover.finish(call, candidate, usage, "ok")
        return answer if usage is answer.usage else replace(answer, usage=usage)


def _message_tokens(messages: Iterable[ChatMessage]) -> int:
    return estimate_tokens(message.content for message in messages)
