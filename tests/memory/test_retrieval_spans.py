"""Spans of the memory plane (SQLite, FAISS, a hash embedder): a search is ``retrieval
{collection}`` with ``dense``, ``keyword`` (run in a worker thread, still its child) and
``fusion`` children; a context call holds that search and ``pack``; no query or chunk text is
recorded; workspace copies keep the tracer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ember.config.tracing import TracingConfig
from ember.errors import CollectionNotFound
from ember.memory.extract import SourceDocument
from ember.memory.service import MemoryService
from ember.observability.traces import RecentTraces, SpanRecord
from ember.observability.tracing import Tracing, span, trace_id
from tests.support.planes import DOCS, documents, small_plane

QUERY = "otters sleep holding hands"


@pytest.fixture
def store() -> RecentTraces:
    return RecentTraces()


@pytest.fixture
def tracing(store: RecentTraces) -> Iterator[Tracing]:
    tracing = Tracing(TracingConfig(), "test", store=store)
    try:
        yield tracing
    finally:
        tracing.shutdown()


@pytest.fixture
def memory(tmp_path: Path, tracing: Tracing) -> Iterator[MemoryService]:
    with small_plane(tmp_path, tracer=tracing.tracer("ember.memory")) as service:
        report = service.ingest("notes", documents())
        assert report.count("created") == len(DOCS), report.outcomes
        yield service


def traced(
    tracing: Tracing, store: RecentTraces, call: Callable[[], object]
) -> tuple[SpanRecord, dict[str, SpanRecord]]:
    """Run ``call`` under a root span; the root and the other spans of its trace by name (each
    name once)."""
    with span(tracing.tracer("test"), "test root"):
        found = trace_id()
        assert found is not None
        call()
    assert tracing.flush()
    spans = store.get(found)
    names = [record.name for record in spans]
    assert len(names) == len(set(names)), names
    by_name = {record.name: record for record in spans}
    root = by_name.pop("test root")
    assert root.parent_id is None
    return root, by_name


def no_text(spans: dict[str, SpanRecord]) -> None:
    for record in spans.values():
        for value in record.attributes.values():
            assert "otters" not in str(value) and "Sea otters" not in str(value), record


def test_a_hybrid_search_is_a_retrieval_span_with_dense_keyword_and_fusion_children(
    memory: MemoryService, tracing: Tracing, store: RecentTraces
) -> None:
    hits: list[object] = []
    root, spans = traced(tracing, store, lambda: hits.extend(memory.search("notes", QUERY, 2)))
    assert set(spans) == {"retrieval notes", "dense", "keyword", "fusion"}
    retrieval = spans["retrieval notes"]
    assert retrieval.parent_id == root.span_id
    assert retrieval.kind == "internal" and retrieval.status == "unset"
    assert retrieval.attributes == {
        "gen_ai.operation.name": "retrieval",
        "gen_ai.data_source.id": "notes",
        "ember.collection": "notes",
        "ember.search.mode": "hybrid",
        "ember.search.k": 2,
        "ember.search.hits": len(hits),
    }
    assert len(hits) == 2
    for child in ("dense", "keyword", "fusion"):
        assert spans[child].parent_id == retrieval.span_id, child
        assert spans[child].trace_id == retrieval.trace_id
    assert spans["dense"].attributes == {"ember.candidates": len(DOCS)}
    keyword = spans["keyword"].attributes["ember.candidates"]
    assert 1 <= keyword < len(DOCS)
    assert spans["fusion"].attributes == {"ember.search.fusion": "relative"}
    no_text(spans)


def test_a_dense_search_has_no_keyword_or_fusion_span(
    memory: MemoryService, tracing: Tracing, store: RecentTraces
) -> None:
    root, spans = traced(tracing, store, lambda: memory.search("notes", QUERY, 5, mode="dense"))
    assert set(spans) == {"retrieval notes", "dense"}
    assert spans["retrieval notes"].parent_id == root.span_id
    assert spans["retrieval notes"].attributes["ember.search.mode"] == "dense"
    assert spans["retrieval notes"].attributes["ember.search.hits"] == len(DOCS)
    assert spans["dense"].parent_id == spans["retrieval notes"].span_id


def test_a_keyword_search_has_no_dense_span(
    memory: MemoryService, tracing: Tracing, store: RecentTraces
) -> None:
    _, spans = traced(tracing, store, lambda: memory.search("notes", "tides", 5, mode="keyword"))
    assert set(spans) == {"retrieval notes", "keyword"}
    assert spans["keyword"].parent_id == spans["retrieval notes"].span_id
    assert spans["keyword"].attributes == {"ember.candidates": 1}
    assert spans["retrieval notes"].attributes["ember.search.hits"] == 1


def test_a_context_call_holds_its_search_then_the_pack(
    memory: MemoryService, tracing: Tracing, store: RecentTraces
) -> None:
    packed = []
    root, spans = traced(
        tracing, store, lambda: packed.append(memory.context("notes", QUERY, 30, k=3)[0])
    )
    assert set(spans) == {"context notes", "retrieval notes", "dense", "keyword", "fusion", "pack"}
    context = spans["context notes"]
    assert context.parent_id == root.span_id
    assert context.attributes == {"ember.collection": "notes"}
    assert spans["retrieval notes"].parent_id == context.span_id
    assert spans["retrieval notes"].attributes["ember.search.k"] == 3
    assert spans["keyword"].parent_id == spans["retrieval notes"].span_id
    pack = spans["pack"]
    assert pack.parent_id == context.span_id
    assert pack.start_ns >= spans["retrieval notes"].end_ns
    (result,) = packed
    assert 0 < len(result.chunks) < 3 and result.dropped
    assert pack.attributes == {
        "ember.pack.budget_tokens": 30,
        "ember.pack.used_tokens": result.tokens_used,
        "ember.pack.chunks": len(result.chunks),
        "ember.pack.dropped": len(result.dropped),
    }
    no_text(spans)


def test_a_workspace_copy_keeps_the_tracer(
    memory: MemoryService, tracing: Tracing, store: RecentTraces
) -> None:
    team = memory.in_workspace("team")
    team.collections.create("kb")
    team.ingest("kb", [SourceDocument("a.md", b"Penguins slide on ice.", "text/markdown")])
    _, spans = traced(tracing, store, lambda: team.context("kb", "penguins", 50))
    assert {"context kb", "retrieval kb", "dense", "keyword", "fusion", "pack"} == set(spans)


def test_a_failed_search_marks_its_span(
    memory: MemoryService, tracing: Tracing, store: RecentTraces
) -> None:
    def missing() -> None:
        with pytest.raises(CollectionNotFound):
            memory.search("nowhere", QUERY)

    _, spans = traced(tracing, store, missing)
    assert set(spans) == {"retrieval nowhere"}
    assert spans["retrieval nowhere"].status == "error"
    assert spans["retrieval nowhere"].attributes["error.type"] == "collection_not_found"


def test_without_a_tracer_a_plane_makes_no_spans(
    tmp_path: Path, tracing: Tracing, store: RecentTraces
) -> None:
    with small_plane(tmp_path / "plain") as plain:
        plain.ingest("notes", [SourceDocument("a.md", b"Otters sleep.", "text/markdown")])
        _, spans = traced(tracing, store, lambda: plain.context("notes", "otters", 50))
        assert spans == {}
