"""An index whose writer died before flushing is refilled from the table when next opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember.memory.service import MemoryService
from ember.storage import Database
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
