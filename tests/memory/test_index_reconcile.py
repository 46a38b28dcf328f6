"""An index whose writer died before flushing is refilled from the table when next opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember.memory.extract import SourceDocument
from ember.memory.service import MemoryService
from ember.storage import BackupTool, Database
from tests.memory.conftest import small_chunk_memory
from tests.memory.test_memory import DOCS, load, sources

pytestmark = pytest.mark.slow


def test_a_stale_index_file_is_refilled_on_open(
    memory: MemoryService, database_url: str, tmp_path: Path, embedder, tokenizer
) -> None:
    load(memory)
    collection = memory.collections.get("notes")
    record, index = memory.indexes.current(collection.id)
    expected = index.count()
    assert expected == memory.store.live_chunk_count(collection.id) >= len(DOCS)
    memory.close()
    (tmp_path / "indexes" / record.id).unlink()

    database = Database(database_url)
    reopened = small_chunk_memory(database, tmp_path, embedder, tokenizer)
    try:
        _, refilled = reopened.indexes.current(collection.id)
        assert refilled.count() == expected
        assert sources(reopened.search("notes", "lava erupting", 1, mode="dense")) == ["volcano.md"]
    finally:
        reopened.close()
        database.dispose()


def test_a_restore_leaves_every_index_as_its_tables(
    memory: MemoryService, database_url: str, tmp_path: Path, embedder, tokenizer
) -> None:
    """Issue 15, defect 1: after a backup, a document changes (its vector count stays the
    same, so the index's size still matches the table); the restore brings the old version back
    into the tables while the index on disk holds the new one's vectors."""
    load(memory)
    backup = BackupTool(Database(database_url)).backup(tmp_path / "ember.bak")
    changed = SourceDocument("volcano.md", b"Sourdough needs a starter and a long rise.")
    assert memory.ingest("notes", [changed]).count("updated") == 1
    memory.close()
    database = Database(database_url)
    BackupTool(database).restore(backup)

    stale = small_chunk_memory(database, tmp_path, embedder, tokenizer)
    try:
        dense = stale.search("notes", "lava erupting", 4, mode="dense")
        assert "volcano.md" not in sources(dense), "the index no longer shows the defect"
        rebuilt = stale.indexes.rebuild_every_live()
        assert [count for _, count in rebuilt] == [
            stale.store.live_chunk_count(rebuilt[0][0].collection_id)
        ]
    finally:
        stale.close()

    restored = small_chunk_memory(database, tmp_path, embedder, tokenizer)
    try:
        assert sources(restored.search("notes", "lava erupting", 1, mode="dense")) == ["volcano.md"]
        assert "sourdough" not in restored.search("notes", "sourdough starter", 1)[0].chunk.text
    finally:
        restored.close()
        database.dispose()
