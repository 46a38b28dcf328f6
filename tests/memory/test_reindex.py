"""Moving a collection to another embedding model, and the index lifecycle it rides on, with
the real bundled model on SQLite and Postgres.

The second model is the bundled MiniLM followed by a fixed random projection to 64 dims
(registered under its own model id): a different vector space of a different width, as a
real model change would be."""

from __future__ import annotations

import numpy as np
import pytest

from ember.errors import Conflict, ReindexRequired
from ember.memory.extract import SourceDocument
from ember.memory.reindex import ReindexProgress
from ember.memory.retrieval import Retriever
from ember.memory.service import MemoryService
from ember.providers.projected import ProjectedEmbedder
from ember.storage.indexes import SqlIndexRegistry
from tests.memory.test_memory import DOCS, load, sources

pytestmark = pytest.mark.slow


def projected_minilm(base, dim: int = 64) -> ProjectedEmbedder:
    """MiniLM projected to ``dim`` dimensions by a fixed orthonormal map."""
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.standard_normal((base.dim, dim)))
    return ProjectedEmbedder(base, q.astype(np.float32))


def _states(memory: MemoryService, collection_id: str) -> dict[str, str]:
    registry = memory.indexes._registry
    rows = registry.all(collection_id)
    return {row.model_id: row.state for row in rows if row.state != "retired"} | {
        "retired": ",".join(sorted(row.model_id for row in rows if row.state == "retired"))
    }


def test_model_change_reembeds_builds_beside_and_swaps(memory: MemoryService, embedder) -> None:
    load(memory)
    collection = memory.collections.get("notes")
    projected = projected_minilm(embedder)
    both = Retriever(
        memory.collections,
        memory.store,
        memory.indexes,
        {embedder.model_id: embedder, projected.model_id: projected},
    )
    old_live, _ = memory.indexes.current(collection.id)
    seen_during_build: list[str] = []
    late = SourceDocument("late.txt", b"Glaciers carve valleys as the ice slowly flows downhill.")

    def during(state: ReindexProgress) -> None:
        if state.phase == "build" and not seen_during_build:
            live, _ = memory.indexes.current(collection.id)
            assert live.id == old_live.id
            seen_during_build.extend(sources(both.search("notes", "lava erupting", 1)))
            memory.ingest("notes", [late])

    report = memory.reindexer.reindex("notes", projected, during)

    assert seen_during_build == ["volcano.md"]
    assert report.from_model == embedder.model_id and report.to_model == projected.model_id
    assert memory.collections.get("notes").embedding_model == projected.model_id
    live, index = memory.indexes.current(collection.id)
    assert live.id == report.index_id and live.model_id == projected.model_id
    assert index.dim == 64 and live.dim == 64
    assert index.count() == memory.store.live_chunk_count(collection.id) == len(DOCS) + 1
    assert report.caught_up == 1
    assert _states(memory, collection.id) == {
        projected.model_id: "live",
        "retired": embedder.model_id,
    }
    hits = both.search("notes", "ice flowing down a valley", 1, mode="dense")
    assert sources(hits) == ["late.txt"]
    assert sources(both.search("notes", "molten rock from a mountain", 1)) == ["volcano.md"]
    with pytest.raises(ReindexRequired, match="collections reindex notes"):
        memory.search("notes", "lava")
    with pytest.raises(ReindexRequired):
        memory.ingest("notes", [SourceDocument("x.txt", b"anything at all here")])


def test_chunks_retired_during_the_build_leave_the_new_index(
    memory: MemoryService, embedder
) -> None:
    load(memory)
    collection = memory.collections.get("notes")
    projected = projected_minilm(embedder)
    changed = SourceDocument("cats.txt", b"Dogs bark at strangers and guard the house at night.")

    def during(state: ReindexProgress) -> None:
        if state.phase == "build":
            memory.ingest("notes", [changed])

    memory.reindexer.reindex("notes", projected, during)
    _, index = memory.indexes.current(collection.id)
    assert index.count() == memory.store.live_chunk_count(collection.id) == len(DOCS)
    retired = memory.store.retired_embedded(collection.id, projected.model_id)
    assert retired and not {
        hit.id for hit in index.search(projected.embed_query("cats"), 10)
    } & set(retired)


def test_reindex_with_the_same_model_rebuilds_from_the_table(memory: MemoryService) -> None:
    load(memory)
    collection = memory.collections.get("notes")
    before = [(h.chunk.id, round(h.score, 5)) for h in memory.search("notes", "tides", 3)]
    report = memory.reindex("notes")
    assert report.embedded == 0 and report.vectors == len(DOCS)
    assert report.from_model == report.to_model
    assert memory.indexes.current(collection.id)[0].id == report.index_id
    assert [(h.chunk.id, round(h.score, 5)) for h in memory.search("notes", "tides", 3)] == before


def test_registry_edges_are_guarded(memory: MemoryService) -> None:
    load(memory, ["cats.txt"])
    collection = memory.collections.get("notes")
    registry: SqlIndexRegistry = memory.indexes._registry
    old = registry.live(collection.id)
    fresh = registry.create(collection.id, old.model_id, old.dim, "faiss", {})
    assert fresh.state == "building"
    registry.promote(fresh.id)
    assert registry.live(collection.id).id == fresh.id
    assert {r.id: r.state for r in registry.all(collection.id)}[old.id] == "retired"
    with pytest.raises(Conflict):
        registry.promote(fresh.id)
    with pytest.raises(Conflict):
        registry.retire(fresh.id)
    failed = registry.create(collection.id, old.model_id, old.dim, "faiss", {})
    registry.retire(failed.id)
    with pytest.raises(Conflict):
        registry.promote(failed.id)
    assert registry.live(collection.id).id == fresh.id


def test_a_failed_build_leaves_the_live_index_serving(memory: MemoryService, embedder) -> None:
    load(memory)
    collection = memory.collections.get("notes")
    old_live, _ = memory.indexes.current(collection.id)

    def boom(state: ReindexProgress) -> None:
        if state.phase == "build":
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        memory.reindexer.reindex("notes", projected_minilm(embedder), boom)
    live, _ = memory.indexes.current(collection.id)
    assert live.id == old_live.id
    assert sources(memory.search("notes", "molten rock from a mountain", 1)) == ["volcano.md"]
    states = {r.state for r in memory.indexes._registry.all(collection.id) if r.id != live.id}
    assert states == {"retired"}
