"""Chunks read back by id: SQLite and Postgres alike."""

from __future__ import annotations

import pytest

from ember.storage import Database, SqlChunkReader, SqlVersionStore
from tests.storage.conftest import vectors, version

pytestmark = pytest.mark.slow


def test_chunk_records_carry_attribution(
    versions: SqlVersionStore, collection_id: str, database: Database
) -> None:
    chunks = SqlChunkReader(database)
    written = versions.write_version(
        collection_id,
        version("b.md", "Alpha beta. Gamma delta", title="Greek", year=2020),
        vectors(2),
        "m",
    )
    records = chunks.chunks(written.chunk_ids)
    first = records[written.chunk_ids[0]]
    assert (first.source, first.version, first.ordinal, first.title) == ("b.md", 1, 0, "Greek")
    assert (first.char_start, first.char_end, first.text) == (0, 10, "Alpha beta")
    assert first.metadata == {"year": 2020, "source": "b.md", "media_type": "text/plain"}
    assert chunks.chunks([]) == {}
