"""Tracing: spans into the store of recent traces and out through the configured exporter;
W3C context in and out; trace ids in logs; the store's bounds; the tree."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracer, SpanKind
from pydantic import ValidationError

from ember.config import TracingConfig
from ember.errors import EmberError, ProviderTimeout
from ember.observability import JsonFormatter
from ember.observability.traces import RecentTraces, SpanRecord, render_tree, span_tree
from ember.observability.tracing import (
    SCHEMA_URL,
    Tracing,
    carrier,
    extract,
    inject_headers,
    span,
    trace_id,
)

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def traced() -> tuple[Tracing, RecentTraces, InMemorySpanExporter]:
    store = RecentTraces()
    exported = InMemorySpanExporter()
    tracing = Tracing(TracingConfig(), "ember-test", store=store, exporter=exported)
    yield tracing, store, exported
    tracing.shutdown()


def record(trace: str, span_id: str, parent: str | None, start: int) -> SpanRecord:
    end = start + 10_000_000
    return SpanRecord(trace, span_id, parent, f"s{span_id}", "internal", "t", start, end)


def test_spans_reach_the_store_and_the_exporter_with_parents_and_the_schema(traced) -> None:
    tracing, store, exported = traced
    tracer = tracing.tracer("ember.test")
    with span(tracer, "outer", kind=SpanKind.SERVER, attributes={"a": 1}):
        current = trace_id()
        with span(tracer, "inner"):
            assert trace_id() == current
    assert trace_id() is None
    assert tracing.flush()
    spans = store.get(current)
    assert [s.name for s in spans] == ["outer", "inner"]
    outer, inner = spans
    assert inner.parent_id == outer.span_id and outer.parent_id is None
    assert (outer.kind, outer.service, outer.attributes) == ("server", "ember-test", {"a": 1})
    assert {s.name for s in exported.get_finished_spans()} == {"outer", "inner"}
    scope = exported.get_finished_spans()[0].instrumentation_scope
    assert scope.schema_url == SCHEMA_URL == "https://opentelemetry.io/schemas/1.44.0"


def test_an_error_leaving_a_span_marks_it_with_its_code_and_goes_on(traced) -> None:
    tracing, store, _ = traced
    tracer = tracing.tracer("ember.test")
    seen: list[str | None] = []

    def fail(name: str, error: Exception) -> None:
        with span(tracer, name):
            seen.append(trace_id())
            raise error

    with pytest.raises(ProviderTimeout):
        fail("call", ProviderTimeout("slow upstream"))
    with pytest.raises(ValueError, match="bad"):
        fail("crash", ValueError("bad"))
    current, other = seen
    tracing.flush()
    (call,) = store.get(current)
    assert (call.status, call.status_detail) == ("error", "slow upstream")
    assert call.attributes["error.type"] == "provider_timeout"
    assert store.get(other)[0].attributes["error.type"] == "ValueError"


def test_a_traceparent_continues_the_callers_trace_and_goes_out_again(traced) -> None:
    tracing, store, _ = traced
    tracer = tracing.tracer("ember.test")
    parent = extract({"traceparent": PARENT})
    assert parent is not None
    with span(tracer, "served", context=parent):
        assert trace_id() == "0af7651916cd43dd8448eb211c80319c"
        headers: dict[str, str] = {}
        inject_headers(headers)
        sent = carrier()
    assert headers == sent
    assert headers["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    tracing.flush()
    (served,) = store.get("0af7651916cd43dd8448eb211c80319c")
    assert served.parent_id == "b7ad6b7169203331"
    assert headers["traceparent"].split("-")[2] == served.span_id


@pytest.mark.parametrize("bad", [None, {}, {"traceparent": "nonsense"}, {"other": PARENT}])
def test_no_or_a_malformed_traceparent_is_no_parent(bad) -> None:
    assert extract(bad) is None


def test_outside_a_span_nothing_is_sent() -> None:
    headers: dict[str, str] = {}
    inject_headers(headers)
    assert headers == {} and carrier() == {}


def test_tracing_off_makes_no_spans_and_costs_no_provider() -> None:
    store = RecentTraces()
    tracing = Tracing(TracingConfig(enabled=False), "x", store=store)
    assert isinstance(tracing.tracer("t"), NoOpTracer) and not tracing.enabled
    with span(tracing.tracer("t"), "nothing"):
        assert trace_id() is None
    assert tracing.flush() and len(store) == 0
    assert not Tracing.off().capture_content


def test_sample_ratio_zero_records_new_traces_not_but_honours_a_sampled_parent() -> None:
    store = RecentTraces()
    tracing = Tracing(TracingConfig(sample_ratio=0.0), "x", store=store)
    tracer = tracing.tracer("t")
    with span(tracer, "dropped"):
        assert trace_id() is None
    with span(tracer, "kept", context=extract({"traceparent": PARENT})):
        pass
    tracing.flush()
    assert len(store) == 1 and store.get(PARENT.split("-")[1])[0].name == "kept"
    tracing.shutdown()


def test_the_file_exporter_writes_one_json_span_per_line(tmp_path: Path) -> None:
    path = tmp_path / "spans" / "out.jsonl"
    tracing = Tracing(TracingConfig(exporter="file", file=path), "ember-file")
    with span(tracing.tracer("t"), "written"):
        pass
    tracing.shutdown()
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    written = json.loads(lines[0])
    assert written["name"] == "written"
    assert written["resource"]["attributes"]["service.name"] == "ember-file"


def test_the_file_exporter_needs_a_file() -> None:
    with pytest.raises(ValidationError, match=r"tracing\.file is not set"):
        TracingConfig(exporter="file")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_the_otlp_exporter_is_built_for_either_protocol(protocol: str) -> None:
    config = TracingConfig(exporter="otlp", otlp_protocol=protocol, endpoint="127.0.0.1:1")
    tracing = Tracing(config, "x")
    try:
        assert tracing.enabled
    finally:
        tracing.shutdown()


def test_the_store_evicts_the_least_recent_trace_and_caps_spans_per_trace() -> None:
    store = RecentTraces(max_traces=2, max_spans=3)
    store.add([record("a", "1", None, 0), record("b", "2", None, 0)])
    store.add([record("a", str(n), "1", n) for n in range(3, 6)])
    assert store.dropped == 1 and len(store.get("a")) == 3
    store.add([record("c", "9", None, 0)])
    assert store.get("b") == [] and len(store.get("a")) == 3 and len(store) == 2


def test_the_tree_nests_children_in_start_order_and_orphans_are_roots() -> None:
    spans = [
        record("t", "1", None, 0),
        record("t", "3", "1", 20),
        record("t", "2", "1", 10),
        record("t", "4", "gone", 5),
    ]
    roots = span_tree(spans)
    assert [r["span_id"] for r in roots] == ["1", "4"]
    assert [c["span_id"] for c in roots[0]["children"]] == ["2", "3"]
    assert roots[0]["duration_ms"] == 10.0
    text = render_tree(spans)
    assert text.splitlines()[1].startswith("  s2  [t]")


def test_log_lines_carry_the_trace_id_inside_a_span(traced) -> None:
    tracing, _, _ = traced
    formatter = JsonFormatter("ember-api")
    logger = logging.getLogger("ember.test")

    def line() -> dict[str, object]:
        rec = logger.makeRecord("ember.test", logging.INFO, "f.py", 1, "hi", (), None)
        return json.loads(formatter.format(rec))

    assert "traceId" not in line()
    with span(tracing.tracer("t"), "logged"):
        inside = line()
        assert inside["traceId"] == trace_id()
    assert list(inside)[:5] == ["ts", "level", "service", "requestId", "traceId"]


def test_a_store_that_fails_loses_the_batch_not_the_work(caplog) -> None:
    class Broken(RecentTraces):
        def add(self, spans) -> None:
            raise EmberError("store down")

    tracing = Tracing(TracingConfig(), "x", store=Broken())
    with span(tracing.tracer("t"), "lost"):
        pass
    with caplog.at_level(logging.WARNING, logger="ember.observability.tracing"):
        tracing.flush()
    tracing.shutdown()
    assert "did not take 1 spans" in caplog.text
