"""The router's attempt machinery: budgets, breakers, retries with backoff, usage rows, the
one log line per call and its spans. :class:`~ember.providers.router.Router` and
:class:`~ember.providers.routed_stream.RoutedStream` drive it; nothing else should.

Spans (GenAI conventions): a call is one span ``{gen_ai.operation.name} {alias}`` (kind client)
with ``gen_ai.request.model`` the name asked for; the router's decisions are its events
(``candidate_skipped`` with the reason, ``retry`` with the error and the wait), and the answer
sets ``gen_ai.provider.name``, ``gen_ai.response.model`` and ``gen_ai.usage.*``. Each attempt at
a provider is a child span ``{gen_ai.operation.name} {model}`` with that provider's name.

Metrics (families of :data:`~ember.observability.metrics.FAMILIES`), recorded through the
injected :class:`~ember.observability.metrics.Metrics`:

- ``ember_llm_requests_total``: once per call, with its log line; ``provider`` is the provider
  whose response ended the call (its answer, or a rejection that fails fast), ``none`` when
  none did; ``outcome`` is ``ok``, ``cancelled`` (a stream closed early) or the error code.
- ``ember_llm_request_duration_seconds``: from the call's start to its answer (a stream's to
  its end), for calls that ended ``ok``.
- ``ember_llm_tokens_total``: the input and output tokens of the recorded usage, for every
  call that records a usage row (answered calls and streams that ended otherwise).
- ``ember_llm_fallbacks_total``: answered calls whose answering candidate was not the first
  one: an earlier candidate failed, was refused by the budgets or skipped.
- ``ember_llm_retries_total``: attempts sent to a candidate again after a retryable error.
- ``ember_llm_breakers_open``: 1 while this process's breaker of the provider is open, else 0;
  set at construction and whenever the breaker's state may have changed.

Model-labelled families are recorded only for answered calls, with the candidate's model (a
configured name, never the client's text).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, NoOpTracer, Span, SpanKind, Tracer

from ember.chat import Usage
from ember.config.models import RouterConfig
from ember.errors import (
    BudgetExceeded,
    EmberError,
    NoProviderAvailable,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from ember.observability.metrics import Metrics, NoMetrics
from ember.observability.tracing import failed
from ember.providers.breaker import BreakerState, CircuitBreaker
from ember.providers.budget import Budgets
from ember.providers.candidates import Candidate, Candidates, RouteRequest
from ember.providers.protocol import Provider
from ember.providers.usage_writer import UsageWriter

__all__ = ["RETRYABLE", "Call", "CandidateFailover"]

log = logging.getLogger("ember.providers.router")

RETRYABLE: tuple[type[ProviderError], ...] = (
    ProviderTimeout,
    ProviderUnavailable,
    ProviderRateLimited,
)
"""Errors retried on the same candidate, then answered by the next one."""

_FAIL_FAST = (ProviderBadRequest, ProviderAuthFailed)

OPERATIONS = {
    "chat": "chat",
    "stream_chat": "chat",
    "generate": "text_completion",
    "stream_generate": "text_completion",
    "embed": "embeddings",
}
"""``gen_ai.operation.name`` of each router operation."""

_T = TypeVar("_T")


@dataclass
class Call:
    """One router call as it goes: for the failure list and the log line."""

    op: str
    alias: str
    route: RouteRequest
    prompt_tokens: int
    started: float = field(default_factory=time.perf_counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    last: Exception | None = None
    span: Span = INVALID_SPAN
    """The call's span (a non-recording one until :meth:`CandidateFailover.traced` starts it)."""
    streamed: bool = False
    """A stream's answering attempt stays open past :meth:`CandidateFailover.route`, as
    :attr:`attempt`, until the stream ends (its owner ends it)."""
    attempt: Span = INVALID_SPAN
    """The answering attempt's span, left open for a streamed call."""

    @property
    def operation(self) -> str:
        """``gen_ai.operation.name``."""
        return OPERATIONS.get(self.op, self.op)

    def failed(self, candidate: Candidate, outcome: str, detail: str) -> None:
        failure = {"provider": candidate.provider, "model": candidate.model}
        self.failures.append({**failure, "outcome": outcome, "detail": detail})
        self.span.add_event(
            "candidate_skipped",
            {"gen_ai.provider.name": candidate.provider, "gen_ai.request.model": candidate.model}
            | {"error.type": outcome, "ember.detail": detail[:300]},
        )


class CandidateFailover:
    """Sends a call to the ``candidates`` of its name, in order, over ``providers``, with one
    breaker per provider.

    ``budgets`` checks budgets and records usage (``None``: neither); with ``usage_writer``
    the rows are queued to it instead of written before the call returns. ``clock`` drives
    the breakers, ``sleep`` the backoff and ``rng`` its jitter. Calls are recorded in
    ``metrics`` (see the module).
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        candidates: Candidates,
        config: RouterConfig,
        *,
        budgets: Budgets | None,
        usage_writer: UsageWriter | None = None,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        rng: random.Random,
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._tracer = tracer or NoOpTracer()
        self._metrics: Metrics = metrics or NoMetrics()
        self._providers = providers
        self._candidates = candidates
        self._config = config
        self._budgets = budgets
        self._writer = usage_writer
        self._sleep = sleep
        self._rng = rng
        self._breakers = {
            name: CircuitBreaker(
                config.breaker_failures,
                config.breaker_open_s,
                config.breaker_successes,
                clock=clock,
            )
            for name in providers
        }
        for name in providers:
            self._watch(name)

    @property
    def metrics(self) -> Metrics:
        """Where calls are recorded."""
        return self._metrics

    def breaker(self, provider: str) -> CircuitBreaker:
        """The circuit breaker of a configured provider.

        :raises KeyError: no provider has this name.
        """
        return self._breakers[provider]

    def record_failure(self, provider: str) -> None:
        """A retryable failure of ``provider`` outside an attempt (a stream broken after its
        first delta): count it on the provider's breaker.

        :raises KeyError: no provider has this name.
        """
        self._breakers[provider].record_failure()
        self._watch(provider)

    def traced(self, call: Call) -> Span:
        """Start ``call``'s span (a child of the current one) and keep it on ``call``; the
        caller ends it."""
        call.span = self._tracer.start_span(
            f"{call.operation} {call.alias}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": call.operation,
                "gen_ai.request.model": call.alias,
            },
        )
        return call.span

    @contextmanager
    def current(self, call: Call) -> Iterator[Span]:
        """:meth:`traced`, made current for the block and ended after it (failed by an
        exception that leaves it)."""
        started = self.traced(call)
        with trace.use_span(
            started, end_on_exit=True, record_exception=False, set_status_on_exception=False
        ):
            try:
                yield started
            except BaseException as exc:
                failed(started, exc)
                raise

    async def route(
        self,
        call: Call,
        max_tokens: int | None,
        send: Callable[[Provider, str], Awaitable[_T]],
    ) -> tuple[_T, Candidate]:
        """Try the candidates of ``call.alias`` in order; the first answer and who gave it.

        :raises ProviderModelNotFound: the name resolves to no candidate.
        :raises BudgetExceeded: the budgets refused every candidate (the last refusal).
        :raises NoProviderAvailable: every candidate failed, was refused or skipped.
        :raises ProviderBadRequest: a candidate rejected the request (no fallback).
        :raises ProviderAuthFailed: a candidate rejected ember's credentials (no fallback).
        """
        try:
            candidates = self._candidates.resolve(
                call.alias, call.route, embedding=call.op == "embed"
            )
        except EmberError as exc:
            self.log(call, None, 0, exc.code)
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
                self.log(call, candidate, 0, exc.code)
                raise
            if answered is not None:
                return answered[0], candidate
        if call.failures and all(f["outcome"] == BudgetExceeded.code for f in call.failures):
            assert isinstance(call.last, BudgetExceeded)
            self.log(call, None, 0, call.last.code)
            raise call.last
        error = self._exhausted(call)
        self.log(call, None, 0, error.code)
        raise error from call.last

    async def finish(self, call: Call, candidate: Candidate, usage: Usage, outcome: str) -> None:
        """Record the usage row (a failure to is logged, never raised), log and count the call,
        record its tokens (and, when ``outcome`` is ``ok``, its duration and any fallback) and
        put the answer on its span."""
        answer = call.span
        if answer.is_recording():
            answer.set_attributes(
                {
                    "gen_ai.provider.name": candidate.provider,
                    "gen_ai.response.model": candidate.model,
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                    "ember.outcome": outcome,
                }
            )
        if self._budgets is not None and self._writer is not None:
            route = call.route
            entry = self._budgets.entry(
                route.principal,
                candidate.provider,
                candidate.model,
                usage,
                request_id=route.request_id,
                job_id=route.job_id,
                workspace=route.workspace,
            )
            self._writer.add(entry)
        elif self._budgets is not None:
            try:
                await asyncio.to_thread(
                    self._budgets.record,
                    call.route.principal,
                    candidate.provider,
                    candidate.model,
                    usage,
                    request_id=call.route.request_id,
                    job_id=call.route.job_id,
                    workspace=call.route.workspace,
                )
            except Exception:
                log.exception("could not record usage", extra={"provider": candidate.provider})
        self._answered(call, candidate, usage, outcome)
        self.log(call, candidate, usage.total_tokens, outcome)

    def log(self, call: Call, candidate: Candidate | None, tokens: int, outcome: str) -> None:
        """The call's one ``provider call`` line (INFO), and its ``ember_llm_requests_total``."""
        self._metrics.inc(
            "ember_llm_requests_total",
            provider=candidate.provider if candidate else "none",
            operation=call.operation,
            outcome=outcome,
        )
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

    def _answered(self, call: Call, candidate: Candidate, usage: Usage, outcome: str) -> None:
        provider, model = candidate.provider, candidate.model
        tokens = "ember_llm_tokens_total"
        if usage.prompt_tokens > 0:
            self._metrics.inc(
                tokens, usage.prompt_tokens, provider=provider, model=model, direction="input"
            )
        if usage.completion_tokens > 0:
            self._metrics.inc(
                tokens, usage.completion_tokens, provider=provider, model=model, direction="output"
            )
        if outcome != "ok":
            return
        self._metrics.observe(
            "ember_llm_request_duration_seconds",
            time.perf_counter() - call.started,
            provider=provider,
            model=model,
            operation=call.operation,
        )
        if call.failures:
            self._metrics.inc("ember_llm_fallbacks_total", operation=call.operation)

    def _watch(self, provider: str) -> None:
        """Set ``ember_llm_breakers_open`` of ``provider`` from its breaker's state now."""
        is_open = self._breakers[provider].state is BreakerState.OPEN
        self._metrics.set("ember_llm_breakers_open", 1.0 if is_open else 0.0, provider=provider)

    async def _attempts(
        self,
        call: Call,
        candidate: Candidate,
        provider: Provider,
        send: Callable[[Provider, str], Awaitable[_T]],
    ) -> tuple[_T] | None:
        """Up to ``retry_attempts`` calls of one candidate: the answer, or ``None`` to move on."""
        breaker = self._breakers[candidate.provider]
        error: ProviderError | None = None
        for attempt in range(1, self._config.retry_attempts + 1):
            allowed = breaker.allow()
            self._watch(candidate.provider)
            if not allowed:
                if error is None:
                    wait = breaker.retry_in_s()
                    call.failed(candidate, "circuit_open", f"breaker open, retry in {wait:.1f}s")
                else:
                    call.failed(candidate, error.code, f"{error.detail} (then the breaker opened)")
                return None
            if attempt > 1:
                self._metrics.inc("ember_llm_retries_total", provider=candidate.provider)
            attempt_span = self._tracer.start_span(
                f"{call.operation} {candidate.model}",
                kind=SpanKind.CLIENT,
                context=trace.set_span_in_context(call.span),
                attributes={
                    "gen_ai.operation.name": call.operation,
                    "gen_ai.provider.name": candidate.provider,
                    "gen_ai.request.model": candidate.model,
                    "ember.attempt": attempt,
                },
            )
            try:
                with trace.use_span(
                    attempt_span, record_exception=False, set_status_on_exception=False
                ):
                    result = await send(provider, candidate.model)
            except BaseException as exc:
                failed(attempt_span, exc)
                attempt_span.end()
                if isinstance(exc, _FAIL_FAST):
                    breaker.record_success()  # it answered: the provider is up
                    self._watch(candidate.provider)
                    raise
                if not isinstance(exc, ProviderError):
                    breaker.release()
                    raise
                breaker.record_failure()
                self._watch(candidate.provider)
                error = call.last = exc
                log.debug(
                    "provider attempt failed",
                    extra={"provider": candidate.provider, "model": candidate.model}
                    | {"attempt": attempt, "outcome": exc.code},
                )
                delay = self._backoff(attempt, exc)
                if delay is None:
                    break
                retry: dict[str, str | int | float] = {
                    "gen_ai.provider.name": candidate.provider,
                    "ember.attempt": attempt,
                    "error.type": exc.code,
                    "ember.delay_s": round(delay, 3),
                }
                call.span.add_event("retry", retry)
                await self._sleep(delay)
                continue
            if call.streamed:
                call.attempt = attempt_span
            else:
                attempt_span.end()
            breaker.record_success()
            self._watch(candidate.provider)
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

    async def _check_budget(self, call: Call, candidate: Candidate, max_tokens: int | None) -> None:
        route = call.route
        if self._budgets is None or not self._budgets.applies(
            route.principal, candidate.provider, route.workspace
        ):
            return
        estimate = self._budgets.estimate(candidate.provider, call.prompt_tokens, max_tokens)
        await asyncio.to_thread(
            self._budgets.check, route.principal, candidate.provider, estimate, route.workspace
        )

    def _exhausted(self, call: Call) -> NoProviderAvailable:
        reasons = "; ".join(
            f"{f['provider']}/{f['model']}: {f['outcome']}: {f['detail']}" for f in call.failures
        )
        return NoProviderAvailable(
            f"no provider could answer {call.alias!r}: {reasons or 'no candidates'}",
            extra={"alias": call.alias, "candidates": list(call.failures)},
        )
