"""Bulk reindex on Ray Data: a model change re-embeds beside the live index and swaps.

The second model is the bundled MiniLM through a PCA projection to 16 dimensions fitted on the
corpus itself, set by configuration (``embeddings.projection``), so it has its own model id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ember.config import EmberConfig
from ember.memory.extract import SourceDocument
from ember.memory.reindex import ReindexProgress
from ember.memory.service import MemoryService
from ember.pipelines import BulkReindex
from ember.services import memory_plane
from ember.storage import Database
from tests.pipelines.conftest import pipeline_config
from tests.pipelines.test_bulk_ingest import TOPICS

pytestmark = pytest.mark.usefixtures("ray_cluster")


class _Stop(Exception):
    pass


def _load(memory: MemoryService, copies: int = 6) -> int:
    documents = [
        SourceDocument(f"{title.lower()}-{copy}.txt", f"{text} Copy {copy}.".encode(), title=title)
        for copy in range(copies)
        for title, text in TOPICS
    ]
    report = memory.ingest("corpus", documents)
    assert report.count("created") == len(documents)
    return report.chunks


def _fit_projection(memory: MemoryService, path: Path, dim: int = 16) -> Path:
    collection = memory.collections.get("corpus")
    vectors = np.concatenate(
        [batch for _, batch, _ in memory.store.embeddings(collection.id, memory.embedder.model_id)]
    )
    centered = vectors - vectors.mean(axis=0)
    _, _, components = np.linalg.svd(centered, full_matrices=False)
    np.save(path, components[:dim].T.astype(np.float32))
    return path


def _moved(config: EmberConfig, database: Database, projection: Path) -> EmberConfig:
    """``config`` with the projection set: the same home and database, another model."""
    return pipeline_config(
        config.home_dir, str(database.url), EMBER_EMBEDDINGS_PROJECTION=str(projection)
    )


def test_a_model_change_reembeds_beside_the_live_index_resumes_and_swaps(
    plane: tuple[EmberConfig, MemoryService], tmp_path: Path
) -> None:
    config, memory = plane
    chunks = _load(memory)
    database = Database.from_config(config)  # the plane's database, opened a second time
    moved_config = _moved(config, database, _fit_projection(memory, tmp_path / "pca16.npy"))
    moved = memory_plane(moved_config, database)
    collection = memory.collections.get("corpus")
    old_live, _ = memory.indexes.current(collection.id)
    assert moved.embedder.model_id.startswith(f"{memory.embedder.model_id}+proj16-")
    reindex = BulkReindex(moved_config, moved, database, batch_chunks=8, no_progress_timeout_s=120)
    stored: list[int] = []
    answered: list[str] = []

    def stop_after_first(state: ReindexProgress) -> None:
        stored.append(state.done)
        raise _Stop

    def during(state: ReindexProgress) -> None:
        if state.phase == "embed" and not answered:
            live, _ = moved.indexes.current(collection.id)
            assert live.id == old_live.id
            answered.extend(h.chunk.title or "" for h in moved.search("corpus", "lava and ash", 1))

    try:
        with pytest.raises(_Stop):
            reindex.run("corpus", stop_after_first)
        live, _ = moved.indexes.current(collection.id)
        assert live.id == old_live.id
        report = reindex.run("corpus", during)
        live, index = moved.indexes.current(collection.id)
        assert live.id == report.index_id and live.model_id == moved.embedder.model_id
        assert index.dim == 16 and index.count() == chunks
        states = {row.id: row.state for row in moved.indexes._registry.all(collection.id)}
        assert states[old_live.id] == "retired"
        hits = moved.search("corpus", "the moon pulls the oceans", 3, mode="dense")
        assert hits[0].chunk.title == "Tides"
    finally:
        moved.close()
        database.dispose()
    assert 0 < stored[0] < chunks
    assert answered == ["Volcanoes"]
    assert report.from_model == memory.embedder.model_id
    assert report.to_model == moved.embedder.model_id
    assert report.embedded == chunks - stored[0] and report.vectors == chunks
