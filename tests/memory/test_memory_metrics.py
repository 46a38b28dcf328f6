"""Metrics of the memory plane (SQLite, FAISS, a hash embedder): an ingest counts its
documents by outcome and its chunks and sets the collection's index vectors; the same
documents again count as unchanged; each search observes its time under its mode; a reindex
sets the vectors; workspace copies keep the metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ember.memory.extract import SourceDocument
from ember.memory.service import MemoryService
from ember.observability.metrics import PrometheusMetrics
from ember.testing.metrics import sample
from tests.support.planes import DOCS, documents, small_plane


@pytest.fixture
def metrics() -> PrometheusMetrics:
    return PrometheusMetrics()


@pytest.fixture
def memory(tmp_path: Path, metrics: PrometheusMetrics) -> Iterator[MemoryService]:
    with small_plane(tmp_path, metrics=metrics) as service:
        yield service


def value(metrics: PrometheusMetrics, name: str, **labels: str) -> float | None:
    return sample(metrics.render().decode(), name, labels)


def test_ingests_count_documents_by_outcome_and_chunks_and_set_the_index_vectors(
    memory: MemoryService, metrics: PrometheusMetrics
) -> None:
    first = memory.ingest("notes", documents())
    assert first.count("created") == len(DOCS)
    assert value(metrics, "ember_memory_documents_total", outcome="created") == len(DOCS)
    assert value(metrics, "ember_memory_chunks_total") == first.chunks > 0
    assert value(metrics, "ember_memory_index_vectors", collection="notes") == first.chunks

    again = memory.ingest("notes", documents())
    assert again.count("unchanged") == len(DOCS)
    assert value(metrics, "ember_memory_documents_total", outcome="unchanged") == len(DOCS)
    assert value(metrics, "ember_memory_documents_total", outcome="created") == len(DOCS)
    assert value(metrics, "ember_memory_chunks_total") == first.chunks
    assert value(metrics, "ember_memory_index_vectors", collection="notes") == first.chunks

    changed = [SourceDocument("bees.md", b"Bees sleep in the hive at night.", "text/markdown")]
    assert memory.ingest("notes", changed).count("updated") == 1
    assert value(metrics, "ember_memory_documents_total", outcome="updated") == 1
    live = memory.indexes.current(memory.collections.get("notes").id)
    assert live is not None
    assert value(metrics, "ember_memory_index_vectors", collection="notes") == live[1].count()


def test_each_search_observes_its_time_under_its_mode(
    memory: MemoryService, metrics: PrometheusMetrics
) -> None:
    memory.ingest("notes", documents())
    for mode in ("hybrid", "dense", "keyword", "hybrid"):
        assert memory.search("notes", "otters sleep", 2, mode=mode)
    memory.context("notes", "otters sleep", 50)
    name = "ember_memory_search_duration_seconds_count"
    assert value(metrics, name, mode="hybrid") == 3
    assert value(metrics, name, mode="dense") == 1
    assert value(metrics, name, mode="keyword") == 1
    assert value(metrics, "ember_memory_search_duration_seconds_bucket", mode="dense", le="+Inf")


def test_a_workspace_copy_records_into_the_same_metrics_and_a_reindex_sets_the_vectors(
    memory: MemoryService, metrics: PrometheusMetrics
) -> None:
    other = memory.in_workspace("team")
    other.collections.create("notes")
    report = other.ingest("notes", documents())
    assert value(metrics, "ember_memory_documents_total", outcome="created") == len(DOCS)
    other.search("notes", "bees", 1, mode="keyword")
    assert value(metrics, "ember_memory_search_duration_seconds_count", mode="keyword") == 1

    metrics.set("ember_memory_index_vectors", 0, collection="notes")
    reindexed = other.reindex("notes")
    assert reindexed.vectors == report.chunks
    assert value(metrics, "ember_memory_index_vectors", collection="notes") == report.chunks
