"""The provider router: a model alias in, an answer from the best provider that can give it.

An alias (``router.aliases``) names tiers of ``provider/model`` candidates, best (local) first;
candidates in one tier (``"ollama/llama3.2 | vllm/llama3.2"``) are equal preference and are
ordered by the optional ``load_hint``: a loaded model first, then the shortest queue. A name that
is no alias but ``provider/model`` of a known provider is that one candidate.

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
``tokens``, ``latencyMs``, ``outcome`` (``ok`` or the error code). Nothing here imports Ray.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ember.config.models import RouterConfig
from ember.errors import (
    BudgetExceeded,
    EmberError,
    NoProviderAvailable,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderError,
    ProviderModelNotFound,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    StreamInterrupted,
)
from ember.providers.breaker import CircuitBreaker
from ember.providers.budget import Budgets, estimate_tokens
from ember.providers.protocol import Provider
from ember.providers.types import ChatMessage, Completion, Delta, GenerationOptions, Usage

__all__ = [
    "RETRYABLE",
    "Candidate",
    "Embeddings",
    "LoadHint",
    "RouteRequest",
    "RoutedStream",
    "Router",
]

log = logging.getLogger(__name__)

RETRYABLE: tuple[type[ProviderError], ...] = (
    ProviderTimeout,
    ProviderUnavailable,
    ProviderRateLimited,
)
"""Errors retried on the same candidate, then answered by the next one."""

_FAIL_FAST = (ProviderBadRequest, ProviderAuthFailed)

LoadHint = Callable[[str, str], tuple[bool, int]]
"""``(provider, model) -> (loaded, queue_depth)``: what the cluster knows about a candidate."""

_T = TypeVar("_T")


@dataclass(frozen=True)
class RouteRequest:
    """Who asks (for budgets and usage rows) and the per-request overrides.

    ``provider`` keeps only the alias's candidates at that provider (the alias itself is the
    model name there when it has none); ``model`` replaces the model name of every candidate;
    ``fallback=False`` tries the first candidate only (still with its retries).
    """

    principal: str = "local"
    request_id: str | None = None
    job_id: str | None = None
    provider: str | None = None
    model: str | None = None
    fallback: bool = True


@dataclass(frozen=True)
class Candidate:
    """One ``provider/model`` an alias may be answered by."""

    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class Embeddings:
    """Vectors, and which provider and model made them."""

    vectors: list[list[float]]
    provider: str
    model: str
    usage: Usage = field(default_factory=Usage)


@dataclass
class _Call:
    """One router call as it goes: for the failure list and the log line."""

    op: str
    alias: str
    route: RouteRequest
    prompt_tokens: int
    started: float = field(default_factory=time.perf_counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    last: Exception | None = None

    def failed(self, candidate: Candidate, outcome: str, detail: str) -> None:
        failure = {"provider": candidate.provider, "model": candidate.model}
        self.failures.append({**failure, "outcome": outcome, "detail": detail})


class Router:
    """Routes chat, generate and embed calls over ``providers`` (name → adapter).

    ``budgets`` checks budgets and records usage (``None``: neither). ``clock`` drives the
    breakers, ``sleep`` the backoff and ``rng`` its jitter; tests inject all three.
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        config: RouterConfig | None = None,
        *,
        budgets: Budgets | None = None,
        load_hint: LoadHint | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._providers = dict(providers)
        self._config = config or RouterConfig()
        self._budgets = budgets
        self._load_hint = load_hint
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._breakers = {
            name: CircuitBreaker(
                self._config.breaker_failures,
                self._config.breaker_open_s,
                self._config.breaker_successes,
                clock=clock,
            )
            for name in self._providers
        }

    def breaker(self, provider: str) -> CircuitBreaker:
        """The circuit breaker of a configured provider.

        :raises KeyError: no provider has this name.
        """
        return self._breakers[provider]

    def candidates(self, alias: str, route: RouteRequest | None = None) -> list[Candidate]:
        """The candidates for ``alias`` in the order they will be tried, overrides applied.

        :raises ProviderModelNotFound: ``alias`` is neither an alias nor ``provider/model`` of
            a configured provider, and no ``provider`` override is given.
        """
        route = route or RouteRequest()
        tiers = self._tiers(alias)
        if route.provider is not None:
            tiers = [[c for c in tier if c.provider == route.provider] for tier in tiers]
            tiers = [tier for tier in tiers if tier] or [[Candidate(route.provider, alias)]]
        elif not tiers:
            raise ProviderModelNotFound(f"no model alias or provider/model named {alias!r}")
        if route.model is not None:
            tiers = [[Candidate(c.provider, route.model) for c in tier] for tier in tiers]
        ordered = [candidate for tier in tiers for candidate in self._by_load(tier)]
        return ordered if route.fallback else ordered[:1]

    async def chat(
        self,
        alias: str,
        messages: Sequence[ChatMessage],
        options: GenerationOptions | None = None,
        route: RouteRequest | None = None,
    ) -> Completion:
        """The whole answer of the first candidate that gives one.

        :raises NoProviderAvailable: every candidate failed, was refused or skipped.
        :raises ProviderBadRequest: a candidate rejected the request (no fallback).
        :raises ProviderAuthFailed: a candidate rejected ember's credentials (no fallback).
        """
        opts = options or GenerationOptions()
        call = _Call("chat", alias, route or RouteRequest(), _message_tokens(messages))
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
        call = _Call("generate", alias, route or RouteRequest(), estimate_tokens([prompt]))
        return await self._complete(call, opts.max_tokens, lambda p, m: p.generate(m, prompt, opts))

    async def embed(
        self, alias: str, texts: Sequence[str], route: RouteRequest | None = None
    ) -> Embeddings:
        """One vector per text from the first candidate that gives them; raises as :meth:`chat`.

        Providers report no usage for embeddings: the prompt tokens are estimated.
        """
        items = list(texts)
        call = _Call("embed", alias, route or RouteRequest(), estimate_tokens(items))
        vectors, candidate = await self._route(call, 0, lambda p, m: p.embed(m, items))
        usage = Usage(prompt_tokens=call.prompt_tokens)
        await self._finish(call, candidate, usage, "ok")
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
        call = _Call("stream_chat", alias, route or RouteRequest(), _message_tokens(messages))
        return RoutedStream(self, call, opts, lambda p, m: p.stream_chat(m, messages, opts))

    def stream_generate(
        self,
        alias: str,
        prompt: str,
        options: GenerationOptions | None = None,
        route: RouteRequest | None = None,
    ) -> RoutedStream:
        """:meth:`generate`, streamed; see :class:`RoutedStream`."""
        opts = options or GenerationOptions()
        call = _Call("stream_generate", alias, route or RouteRequest(), estimate_tokens([prompt]))
        return RoutedStream(self, call, opts, lambda p, m: p.stream_generate(m, prompt, opts))

    async def _complete(
        self,
        call: _Call,
        max_tokens: int | None,
        send: Callable[[Provider, str], Awaitable[Completion]],
    ) -> Completion:
        answer, candidate = await self._route(call, max_tokens, send)
        usage = answer.usage
        if usage.total_tokens == 0:
            usage = Usage(call.prompt_tokens, estimate_tokens([answer.text]))
        await self._finish(call, candidate, usage, "ok")
        return answer

    async def _route(
        self,
        call: _Call,
        max_tokens: int | None,
        send: Callable[[Provider, str], Awaitable[_T]],
    ) -> tuple[_T, Candidate]:
        """Try the candidates in order; the first answer and who gave it."""
        try:
            candidates = self.candidates(call.alias, call.route)
        except EmberError as exc:
            self._log(call, None, 0, exc.code)
            raise
        for candidate in candidates:
            provider = self._providers.get(candidate.provider)
            if provider is None:
                call.failed(candidate, "not_configured", "no provider has this name")
                continue
            try:
                await self._check_budget(call, candidate, max_tokens)
            except BudgetExceeded as exc:
                call.failed(candidate, exc.code, exc.detail)
                call.last = exc
                continue
            try:
                answered = await self._attempts(call, candidate, provider, send)
            except _FAIL_FAST as exc:
                self._log(call, candidate, 0, exc.code)
                raise
            if answered is not None:
                return answered[0], candidate
        if call.failures and all(f["outcome"] == BudgetExceeded.code for f in call.failures):
            assert isinstance(call.last, BudgetExceeded)
            self._log(call, None, 0, call.last.code)
            raise call.last
        error = self._exhausted(call)
        self._log(call, None, 0, error.code)
        raise error from call.last

    async def _attempts(
        self,
        call: _Call,
        candidate: Candidate,
        provider: Provider,
        send: Callable[[Provider, str], Awaitable[_T]],
    ) -> tuple[_T] | None:
        """Up to ``retry_attempts`` calls of one candidate: the answer, or ``None`` to move on."""
        breaker = self._breakers[candidate.provider]
        error: ProviderError | None = None
        for attempt in range(1, self._config.retry_attempts + 1):
            if not breaker.allow():
                if error is None:
                    wait = breaker.retry_in_s()
                    call.failed(candidate, "circuit_open", f"breaker open, retry in {wait:.1f}s")
                else:
                    call.failed(candidate, error.code, f"{error.detail} (then the breaker opened)")
                return None
            try:
                result = await send(provider, candidate.model)
            except _FAIL_FAST:
                breaker.record_success()  # it answered: the provider is up
                raise
            except ProviderError as exc:
                breaker.record_failure()
                error = call.last = exc
                log.debug(
                    "provider attempt failed",
                    extra={"provider": candidate.provider, "model": candidate.model}
                    | {"attempt": attempt, "outcome": exc.code},
                )
                delay = self._backoff(attempt, exc)
                if delay is None:
                    break
                await self._sleep(delay)
                continue
            except BaseException:
                breaker.release()
                raise
            breaker.record_success()
            return (result,)
        if error is not None:
            call.failed(candidate, error.code, error.detail)
        return None

    def _backoff(self, attempt: int, exc: ProviderError) -> float | None:
        """Seconds before the next attempt, or ``None`` when this candidate is done."""
        if not isinstance(exc, RETRYABLE) or attempt >= self._config.retry_attempts:
            return None
        cap = min(self._config.retry_max_s, self._config.retry_base_s * 2 ** (attempt - 1))
        delay = self._rng.uniform(0.0, cap)
        wanted = exc.extra.get("retry_after_s") if isinstance(exc, ProviderRateLimited) else None
        if isinstance(wanted, int | float) and wanted > delay:
            if wanted > self._config.retry_max_s:
                return None
            delay = float(wanted)
        return delay

    async def _check_budget(
        self, call: _Call, candidate: Candidate, max_tokens: int | None
    ) -> None:
        if self._budgets is None:
            return
        estimate = self._budgets.estimate(candidate.provider, call.prompt_tokens, max_tokens)
        await asyncio.to_thread(
            self._budgets.check, call.route.principal, candidate.provider, estimate
        )

    async def _finish(self, call: _Call, candidate: Candidate, usage: Usage, outcome: str) -> None:
        """Record the usage row (a failure to is logged, never raised) and log the call."""
        if self._budgets is not None:
            try:
                await asyncio.to_thread(
                    self._budgets.record,
                    call.route.principal,
                    candidate.provider,
                    candidate.model,
                    usage,
                    request_id=call.route.request_id,
                    job_id=call.route.job_id,
                )
            except Exception:
                log.exception("could not record usage", extra={"provider": candidate.provider})
        self._log(call, candidate, usage.total_tokens, outcome)

    def _exhausted(self, call: _Call) -> NoProviderAvailable:
        reasons = "; ".join(
            f"{f['provider']}/{f['model']}: {f['outcome']}: {f['detail']}" for f in call.failures
        )
        return NoProviderAvailable(
            f"no provider could answer {call.alias!r}: {reasons or 'no candidates'}",
            extra={"alias": call.alias, "candidates": list(call.failures)},
        )

    def _log(self, call: _Call, candidate: Candidate | None, tokens: int, outcome: str) -> None:
        log.info(
            "provider call",
            extra={
                "op": call.op,
                "alias": call.alias,
                "provider": candidate.provider if candidate else None,
                "model": candidate.model if candidate else None,
                "tokens": tokens,
                "latencyMs": round((time.perf_counter() - call.started) * 1000, 1),
                "outcome": outcome,
                "principal": call.route.principal,
                "requestId": call.route.request_id,
                "jobId": call.route.job_id,
                "failures": len(call.failures),
            },
        )

    def _tiers(self, alias: str) -> list[list[Candidate]]:
        tiers = self._config.aliases.get(alias)
        if tiers is not None:
            return [[_candidate(part) for part in tier.split("|")] for tier in tiers]
        provider, _, model = alias.partition("/")
        return [[Candidate(provider, model)]] if provider in self._providers and model else []

    def _by_load(self, tier: list[Candidate]) -> list[Candidate]:
        """Loaded first, then the shortest queue; the configured order breaks ties."""
        hint = self._load_hint
        if hint is None or len(tier) < 2:
            return tier

        def key(candidate: Candidate) -> tuple[bool, int]:
            try:
                loaded, depth = hint(candidate.provider, candidate.model)
            except Exception:
                log.warning("load hint failed", extra={"provider": candidate.provider})
                return (True, 0)
            return (not loaded, depth)

        return sorted(tier, key=key)


class RoutedStream:
    """The deltas of a routed stream; ``provider`` and ``model`` are set once one answered.

    Failures before the first delta fall back as in :meth:`Router.chat`; a failure after it
    raises :class:`~ember.errors.StreamInterrupted` once the deltas so far were yielded. Usage
    is recorded when the stream ends, fails or is closed early (the final delta's usage, else
    an estimate from the text yielded).
    """

    def __init__(
        self,
        router: Router,
        call: _Call,
        options: GenerationOptions,
        open_stream: Callable[[Provider, str], AsyncIterator[Delta]],
    ) -> None:
        self.provider: str | None = None
        self.model: str | None = None
        self._router = router
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
        router, call = self._router, self._call
        (stream, first), candidate = await router._route(
            call, self._options.max_tokens, self._first
        )
        self.provider, self.model = candidate.provider, candidate.model
        texts: list[str] = []
        usage: Usage | None = None
        outcome = "cancelled"
        delta: Delta | None = first
        try:
            while delta is not None:
                texts.append(delta.text)
                usage = delta.usage or usage
                yield delta
                try:
                    delta = await anext(stream, None)
                except ProviderError as exc:
                    outcome = StreamInterrupted.code
                    if isinstance(exc, RETRYABLE):
                        router.breaker(candidate.provider).record_failure()
                    raise StreamInterrupted(
                        f"{candidate} failed after the stream started: {exc.detail}",
                        extra={"partial_text": "".join(texts), "cause_code": exc.code}
                        | {"provider": candidate.provider, "model": candidate.model},
                    ) from exc
            outcome = "ok"
        finally:
            await _close(stream)
            if usage is None:
                usage = Usage(call.prompt_tokens, estimate_tokens(texts))
            await router._finish(call, candidate, usage, outcome)


async def _close(stream: AsyncIterator[Delta]) -> None:
    aclose: Callable[[], Awaitable[None]] | None = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def _candidate(text: str) -> Candidate:
    provider, _, model = text.strip().partition("/")
    return Candidate(provider, model)


def _message_tokens(messages: Iterable[ChatMessage]) -> int:
    return estimate_tokens(message.content for message in messages)
