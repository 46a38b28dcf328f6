"""Bulk ingest on a real local Ray cluster with the real embedding model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ember.config import EmberConfig
from ember.memory.ingest import IngestProgress
from ember.memory.service import MemoryService
from ember.pipelines import BulkIngest

pytestmark = pytest.mark.usefixtures("ray_cluster")

TOPICS = [
    ("Photosynthesis", "Plants turn sunlight, water and carbon dioxide into sugar and oxygen."),
    ("Volcanoes", "Magma rises through the crust and erupts as lava, ash and gas."),
    ("Vaccines", "A vaccine trains the immune system to recognise a pathogen early."),
    ("Tides", "The moon's gravity pulls the oceans and makes the tides rise and fall."),
    ("Sleep", "Caffeine late in the day shortens deep sleep and worsens its quality."),
]


def _corpus(path: Path, copies: int = 8) -> Path:
    """A BEIR JSONL corpus of ``copies`` times len(TOPICS) distinct documents, one bad line."""
    lines = []
    for copy in range(copies):
        for number, (title, text) in enumerate(TOPICS):
            lines.append(
                json.dumps({"_id": f"d{copy}-{number}", "title": title, "text": f"{text} ({copy})"})
            )
    lines.insert(7, "{not json")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ingests_with_progress_then_skips_what_it_has_and_updates_what_changed(
    plane: tuple[EmberConfig, MemoryService], tmp_path: Path
) -> None:
    config, memory = plane
    folder = tmp_path / "docs"
    folder.mkdir()
    _corpus(folder / "corpus.jsonl")
    for title, text in TOPICS:
        (folder / f"{title.lower()}.md").write_text(f"# {title}\n\n{text}\n")
    (folder / "copy.md").write_text(f"# Tides\n\n{TOPICS[3][1]}\n")
    ingest = BulkIngest(config, memory, part_documents=9, no_progress_timeout_s=120)
    seen: list[IngestProgress] = []
    first = ingest.run("corpus", folder, seen.append)
    assert (first.count("created"), first.count("duplicate"), first.count("failed")) == (45, 1, 1)
    assert [o.source for o in first.outcomes][:3] == ["copy.md", "d0-0", "d0-1"]
    assert seen and seen[-1].done == 47 and seen[-1].written == 45
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    hits = memory.search("corpus", "moon gravity and the oceans", k=3, mode="dense")
    assert hits and hits[0].chunk.title == "Tides"
    assert memory.store.live_chunk_count(memory.collections.get("corpus").id) == first.chunks

    (folder / "sleep.md").write_text("# Sleep\n\nNaps after lunch help some people focus.\n")
    second = ingest.run("corpus", folder)
    assert second.count("updated") == 1 and second.chunks == 1
    assert second.count("unchanged") == 44 and second.count("duplicate") == 1
    assert second.count("failed") == 1
    hits = memory.search("corpus", "a nap after lunch", k=1, mode="dense")
    assert hits[0].chunk.source == "sleep.md" and hits[0].chunk.version == 2


def test_a_pooled_embedder_serves_the_plane_on_the_cluster(tmp_path: Path) -> None:
    from ember.actors.embedding_pool import EmbeddingPool
    from ember.actors.memory_plane import cluster_memory
    from ember.memory.extract import SourceDocument
    from ember.storage import Database, Migrator
    from tests.pipelines.conftest import pipeline_config

    config = pipeline_config(tmp_path / "home", EMBER_EMBEDDINGS_POOL="true")
    database = Database.from_config(config)
    Migrator(database).upgrade()
    memory = cluster_memory(config, database)
    try:
        assert isinstance(memory.embedder, EmbeddingPool)
        memory.collections.create("pooled")
        documents = [SourceDocument(f"{t}.txt", text.encode(), title=t) for t, text in TOPICS]
        assert memory.ingest("pooled", documents).count("created") == len(TOPICS)
        hits = memory.search("pooled", "lava erupting from a mountain", 1, mode="dense")
        assert hits[0].chunk.title == "Volcanoes"
    finally:
        memory.close()
        database.dispose()
    assert memory.embedder.size == 0


def test_links_out_of_the_folder_are_refused_on_the_cluster_too(
    plane: tuple[EmberConfig, MemoryService], tmp_path: Path
) -> None:
    config, memory = plane
    folder, outside = tmp_path / "docs", tmp_path / "outside"
    folder.mkdir()
    (outside / "dir").mkdir(parents=True)
    (folder / "tides.md").write_text(f"# Tides\n\n{TOPICS[3][1]}\n")
    _corpus(outside / "secret.jsonl", copies=1)
    (outside / "dir" / "more.md").write_text("# Secret\n\nzebracorn passphrase\n")
    (folder / "corpus.jsonl").symlink_to(outside / "secret.jsonl")
    (folder / "away").symlink_to(outside / "dir", target_is_directory=True)
    report = BulkIngest(config, memory, no_progress_timeout_s=120).run("corpus", folder)
    assert report.count("created") == 1
    refused = [o for o in report.outcomes if o.status == "failed"]
    assert sorted((o.error_code, (o.error or "").split(":")[0]) for o in refused) == [
        ("path_not_allowed", "away"),
        ("path_not_allowed", "corpus.jsonl"),
    ]
    assert memory.search("corpus", "zebracorn passphrase", k=5, mode="keyword") == []
    assert memory.search("corpus", "Photosynthesis sunlight", k=5, mode="keyword") == []
