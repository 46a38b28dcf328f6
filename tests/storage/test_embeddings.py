"""Chunk vectors per model: SQLite and Postgres alike."""

from __future__ import annotations

import numpy as np
import pytest

from ember.storage import Database, SqlEmbeddingStore, SqlVersionStore
from tests.storage.conftest import vectors, version

pytestmark = pytest.mark.slow


@pytest.fixture
def embeddings(database: Database) -> SqlEmbeddingStore:
    return SqlEmbeddingStore(database)


def test_embeddings_roundtrip_live_only_in_batches(
    versions: SqlVersionStore, embeddings: SqlEmbeddingStore, collection_id: str
) -> None:
    cid = collection_id
    first = vectors(3)
    written = versions.write_version(cid, version("c", "One. Two. Three"), first, "m")
    versions.write_version(cid, version("d", "Four"), vectors(1) + 5, "m")
    versions.write_version(cid, version("d", "Five"), vectors(1) + 9, "m")
    versions.write_version(cid, version("e", "Other model"), vectors(1), "m2")
    batches = list(embeddings.embeddings(cid, "m", batch_size=2))
    ids = [i for batch in batches for i in batch[0]]
    assert [len(batch[0]) for batch in batches] == [2, 2]
    assert ids[:3] == written.chunk_ids
    stacked = np.concatenate([batch[1] for batch in batches])
    np.testing.assert_array_equal(stacked[:3], first)
    np.testing.assert_array_equal(stacked[3], (vectors(1) + 9)[0])


def test_embeddings_of_one_shard_and_their_counts(
    versions: SqlVersionStore, embeddings: SqlEmbeddingStore, collection_id: str
) -> None:
    cid = collection_id
    versions.write_version(
        cid, version("s", "One. Two. Three. Four. Five. Six. Seven"), vectors(7), "m"
    )
    retired = versions.write_version(cid, version("t", "Old. Older"), vectors(2), "m")
    versions.write_version(cid, version("t", "New"), vectors(1), "m")
    versions.write_version(cid, version("u", "Other model. Again"), vectors(2), "m2")
    live = [i for batch in embeddings.embeddings(cid, "m") for i in batch[0]]
    assert len(live) == 8 and not set(live) & set(retired.chunk_ids)
    assert embeddings.embedding_count(cid, "m") == 8
    assert embeddings.embedding_count(cid, "m2") == 2
    assert embeddings.embedding_count(cid, "none") == 0
    seen: list[int] = []
    for index in range(3):
        batches = list(embeddings.embeddings(cid, "m", batch_size=2, shard=(index, 3)))
        ids = [i for batch in batches for i in batch[0]]
        assert ids == [i for i in live if i % 3 == index]
        assert all(len(batch[0]) == len(batch[1]) == len(batch[2]) for batch in batches)
        assert embeddings.embedding_count(cid, "m", shard=(index, 3)) == len(ids)
        seen += ids
    assert sorted(seen) == live
    assert embeddings.embedding_count(cid, "m", shard=(0, 1)) == 8


@pytest.mark.parametrize("shard", [(3, 3), (-1, 2), (0, 0)])
def test_a_shard_outside_its_count_is_refused(
    embeddings: SqlEmbeddingStore, collection_id: str, shard: tuple[int, int]
) -> None:
    with pytest.raises(ValueError, match="shard"):
        embeddings.embedding_count(collection_id, "m", shard=shard)
    with pytest.raises(ValueError, match="shard"):
        next(embeddings.embeddings(collection_id, "m", shard=shard))


def test_unembedded_query_runs_over_a_plain_dbapi_connection(
    versions: SqlVersionStore,
    embeddings: SqlEmbeddingStore,
    collection_id: str,
    database: Database,
) -> None:
    cid = collection_id
    versions.write_version(cid, version("a", "One. Two. Three"), vectors(3), "m1")
    retired = versions.write_version(cid, version("b", "Old"), vectors(1), "m1")
    versions.write_version(cid, version("b", "New. Newer"), vectors(2), "m1")
    first = next(embeddings.unembedded(cid, "m2"))
    embeddings.add_embeddings([first[0][0]], vectors(1), "m2")
    expected = sorted(row[0] for batch in embeddings.unembedded(cid, "m2") for row in batch)
    query = embeddings.unembedded_query(cid, "m2")
    connection = database.dbapi_connector()()
    try:
        cursor = connection.cursor()
        cursor.execute(query.sql, query.params)
        columns = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
    finally:
        connection.close()
    assert columns == ["id", "title", "text"]
    assert sorted(row[0] for row in rows) == expected
    assert len(expected) == 4 and not set(expected) & set(retired.chunk_ids)
