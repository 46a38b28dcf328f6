"""Traces: OpenTelemetry spans, made through a :class:`Tracing` each process builds from its
configuration (never the process-wide provider: two in one process do not meet).

Spans follow the OpenTelemetry semantic conventions at :data:`SCHEMA_URL` (the pinned
``opentelemetry-semantic-conventions``), GenAI ones included: model calls are named
``{gen_ai.operation.name} {gen_ai.request.model}``, agents ``invoke_agent {name}``, tools
``execute_tool {name}``, retrieval ``retrieval {collection}``. Every finished span goes to the
:class:`~ember.observability.traces.TraceStore` of recent traces and, with
``tracing.exporter``, to OTLP (HTTP or gRPC), stderr or a JSON-lines file. Off
(``tracing.enabled: false``), every tracer is OpenTelemetry's no-op one.

Context crosses processes as a W3C ``traceparent`` (:func:`carrier`, :func:`extract`): taken
from clients by the HTTP middleware, kept on job rows for the worker that runs the job, and
sent to upstream providers and MCP servers (:func:`inject_headers`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import IO, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.semconv.schemas import Schemas
from opentelemetry.trace import NoOpTracer, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ember.config.tracing import TracingConfig
from ember.errors import EmberError
from ember.observability.logs import REQUEST_ID
from ember.observability.traces import SpanRecord, TraceStore

__all__ = [
    "SCHEMA_URL",
    "StoreExporter",
    "Tracing",
    "call_context",
    "carrier",
    "extract",
    "failed",
    "inject_headers",
    "served",
    "span",
    "trace_id",
    "traceparent_hook",
    "traceparent_hook_sync",
]

SCHEMA_URL = Schemas.V1_44_0.value
"""The semantic conventions ember's spans follow (opentelemetry-semantic-conventions 0.66b2)."""

STORE_DELAY_MS = 1000
"""How long a finished span may wait before it reaches the store of recent traces."""

_PROPAGATOR = TraceContextTextMapPropagator()
_KINDS = {kind: kind.name.lower() for kind in SpanKind}
_STATUS = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}
log = logging.getLogger(__name__)


class _RequestIds(SpanProcessor):
    """Puts the request id of the context a span starts in on it (``ember.request_id``), or
    its parent's when that context has none (a span started in a worker thread)."""

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        request_id = REQUEST_ID.get()
        if request_id is None:
            parent = trace.get_current_span(parent_context)
            request_id = (getattr(parent, "attributes", None) or {}).get("ember.request_id")
        if request_id is not None:
            span.set_attribute("ember.request_id", request_id)


class StoreExporter(SpanExporter):
    """Hands finished spans, as :class:`SpanRecord` s, to a :class:`TraceStore`."""

    def __init__(self, store: TraceStore) -> None:
        self._store = store

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self._store.add([record(span) for span in spans])
        except Exception:
            log.warning("the trace store did not take %d spans", len(spans), exc_info=True)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


def record(span: ReadableSpan) -> SpanRecord:
    """``span`` reduced to plain values."""
    context = span.get_span_context()
    assert context is not None
    parent = span.parent
    service = span.resource.attributes.get("service.name", "")
    return SpanRecord(
        trace_id=trace.format_trace_id(context.trace_id),
        span_id=trace.format_span_id(context.span_id),
        parent_id=trace.format_span_id(parent.span_id) if parent is not None else None,
        name=span.name,
        kind=_KINDS.get(span.kind, "internal"),
        service=str(service),
        start_ns=span.start_time or 0,
        end_ns=span.end_time or span.start_time or 0,
        status=_STATUS[span.status.status_code],
        status_detail=span.status.description,
        attributes={key: _plain(value) for key, value in (span.attributes or {}).items()},
        events=[
            {
                "name": event.name,
                "ts_ns": event.timestamp,
                "attributes": {k: _plain(v) for k, v in (event.attributes or {}).items()},
            }
            for event in span.events
        ],
    )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class Tracing:
    """The tracers of one process, named ``service`` in every span it makes.

    A span started while a request id is bound (:data:`~ember.observability.REQUEST_ID`)
    carries it as ``ember.request_id``. Spans go to ``store`` (when given) within
    :data:`STORE_DELAY_MS`, and to the exporter
    ``config.exporter`` names (``exporter`` replaces it, for tests). :meth:`shutdown` sends
    what is pending and stops both.
    """

    def __init__(
        self,
        config: TracingConfig,
        service: str,
        *,
        store: TraceStore | None = None,
        exporter: SpanExporter | None = None,
    ) -> None:
        self.config = config
        self.service = service
        self.store = store
        self._provider: TracerProvider | None = None
        self._file: IO[str] | None = None
        if not config.enabled:
            return
        provider = TracerProvider(
            resource=Resource.create({"service.name": service}),
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
        )
        provider.add_span_processor(_RequestIds())
        if store is not None:
            provider.add_span_processor(
                BatchSpanProcessor(StoreExporter(store), schedule_delay_millis=STORE_DELAY_MS)
            )
        chosen = exporter or self._configured_exporter()
        if chosen is not None:
            provider.add_span_processor(BatchSpanProcessor(chosen))
        self._provider = provider

    @classmethod
    def off(cls) -> Tracing:
        """Tracing that makes no spans."""
        return cls(TracingConfig(enabled=False), "ember")

    @property
    def enabled(self) -> bool:
        return self._provider is not None

    @property
    def capture_content(self) -> bool:
        """Whether agents' tool arguments and results may be recorded on spans."""
        return self.enabled and self.config.capture_content

    def tracer(self, scope: str) -> Tracer:
        """The tracer of instrumentation scope ``scope`` (a module's name)."""
        if self._provider is None:
            return NoOpTracer()
        return self._provider.get_tracer(scope, schema_url=SCHEMA_URL)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Send every finished span now; whether all were sent within ``timeout_s``."""
        if self._provider is None:
            return True
        return self._provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        """Send what is pending and stop; later spans are dropped."""
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def _configured_exporter(self) -> SpanExporter | None:
        config = self.config
        if config.exporter == "console":
            return ConsoleSpanExporter(service_name=self.service, out=_stderr())
        if config.exporter == "file":
            assert config.file is not None
            path = config.file.expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
            return ConsoleSpanExporter(
                out=self._file, formatter=lambda span: span.to_json(indent=None) + "\n"
            )
        if config.exporter == "otlp":
            if config.otlp_protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                    OTLPSpanExporter as GrpcExporter,
                )

                return GrpcExporter(endpoint=config.endpoint)
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HttpExporter,
            )

            return HttpExporter(endpoint=config.endpoint)
        return None


def _stderr() -> IO[str]:
    import sys

    return sys.stderr


@contextmanager
def span(
    tracer: Tracer,
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    context: Context | None = None,
) -> Iterator[Span]:
    """A span made current for the block; an exception leaving it marks it failed
    (:func:`failed`) and goes on. ``context`` parents it elsewhere than the current span."""
    with tracer.start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            failed(current, exc)
            raise


def failed(current: Span, exc: BaseException) -> None:
    """Mark ``current`` failed by ``exc``: status ``error`` with its detail, ``error.type`` its
    stable code (an :class:`~ember.errors.EmberError`) or class name; a cancellation is
    ``error.type: cancelled``."""
    if not current.is_recording():
        return
    if isinstance(exc, EmberError):
        kind, detail = exc.code, exc.detail
    elif isinstance(exc, GeneratorExit):
        return
    elif type(exc).__name__ == "CancelledError":
        kind, detail = "cancelled", "cancelled"
    else:
        kind, detail = type(exc).__qualname__, str(exc)
    current.set_attribute("error.type", kind)
    current.set_status(Status(StatusCode.ERROR, detail[:500]))


def trace_id() -> str | None:
    """The current trace's id (32 hex digits), or ``None`` outside a sampled span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return trace.format_trace_id(context.trace_id)


def carrier(context: Context | None = None) -> dict[str, str]:
    """The W3C ``traceparent`` (and ``tracestate``) of the current span, or of ``context``'s;
    empty outside a recorded span."""
    out: dict[str, str] = {}
    _PROPAGATOR.inject(out, context=context)
    return out


def extract(headers: Mapping[str, str] | None) -> Context | None:
    """The remote parent a ``traceparent`` names, or ``None`` (missing or malformed)."""
    if not headers:
        return None
    context = _PROPAGATOR.extract(headers)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


REQUEST_KEY = "ember-request-id"
"""The key of the request id in a :func:`call_context`."""


def call_context() -> dict[str, str]:
    """What a call to another process (a Ray actor) carries so the callee can continue the
    caller's trace: the current span's W3C trace context (:func:`carrier`) and the current
    request id under :data:`REQUEST_KEY`; empty outside both."""
    request_id = REQUEST_ID.get()
    return carrier() | ({REQUEST_KEY: request_id} if request_id else {})


@contextmanager
def served(
    tracer: Tracer,
    name: str,
    context: Mapping[str, str] | None,
    *,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A server span for a call received with ``context`` (a caller's :func:`call_context`):
    a child of the caller's span, made current for the block as :func:`span` does, with the
    caller's request id current too (so the span and this process's log lines carry it)."""
    request_id = (context or {}).get(REQUEST_KEY)
    token = REQUEST_ID.set(request_id) if request_id else None
    try:
        with span(
            tracer, name, kind=SpanKind.SERVER, attributes=attributes, context=extract(context)
        ) as current:
            yield current
    finally:
        if token is not None:
            REQUEST_ID.reset(token)


def inject_headers(headers: MutableMapping[str, str]) -> None:
    """Add the current span's ``traceparent`` to outgoing ``headers`` (nothing outside one)."""
    _PROPAGATOR.inject(headers)


async def traceparent_hook(request: Any) -> None:
    """An httpx ``request`` event hook (async clients): :func:`inject_headers`."""
    inject_headers(request.headers)


def traceparent_hook_sync(request: Any) -> None:
    """An httpx ``request`` event hook (sync clients): :func:`inject_headers`."""
    inject_headers(request.headers)
