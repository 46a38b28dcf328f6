"""Documents, versions, chunks, embeddings and keyword search: SQLite and Postgres alike."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from ember.errors import DimensionMismatch
from ember.memory.filters import matches, parse_filter
from ember.storage import (
    Database,
    NewChunk,
    NewVersion,
    SqlChunkStore,
    SqlCollectionRepository,
)
from ember.storage.filter_sql import filter_clause
from ember.storage.tables import Chunk, Document

pytestmark = pytest.mark.slow


def version(source: str, text: str, **metadata: Any) -> NewVersion:
    words = text.split(". ")
    chunks, start = [], 0
    for part in words:
        end = start + len(part)
        chunks.append(NewChunk(part, start, end, len(part.split())))
        start = end + 2
    return NewVersion(
        source=source,
        title=metadata.pop("title", None),
        media_type="text/plain",
        content_hash=f"hash-{hash(text)}",
        size_bytes=len(text),
        metadata=metadata,
        chunks=chunks,
    )


def vectors(n: int, dim: int = 4) -> np.ndarray:
    rng = np.random.default_rng(n)
    return rng.standard_normal((n, dim)).astype(np.float32)


@pytest.fixture
def store(database: Database) -> tuple[SqlChunkStore, str]:
    collection = SqlCollectionRepository(database).create("papers")
    return SqlChunkStore(database), collection.id


def test_first_version_then_a_new_one_retires_the_old(store) -> None:
    chunks, cid = store
    first = version("a.txt", "Cats purr softly. Dogs bark loudly", lang="en")
    written = chunks.write_version(cid, first, vectors(2), "m1")
    assert written.version == 1 and len(written.chunk_ids) == 2 and written.retired_chunk_ids == []
    live = chunks.live_version(cid, "a.txt")
    assert live is not None and live.version == 1 and live.content_hash == first.content_hash

    second = version("a.txt", "Cats sleep all day", lang="en")
    rewritten = chunks.write_version(cid, second, vectors(1), "m1")
    assert rewritten.version == 2
    assert rewritten.document_id == written.document_id
    assert sorted(rewritten.retired_chunk_ids) == sorted(written.chunk_ids)
    assert chunks.live_version(cid, "a.txt").content_hash == second.content_hash  # type: ignore[union-attr]
    assert [hit[0] for hit in chunks.keyword_search(cid, "dogs bark", 10)] == []
    assert [hit[0] for hit in chunks.keyword_search(cid, "sleep", 10)] == rewritten.chunk_ids


def test_chunk_records_carry_attribution(store) -> None:
    chunks, cid = store
    written = chunks.write_version(
        cid, version("b.md", "Alpha beta. Gamma delta", title="Greek", year=2020), vectors(2), "m"
    )
    records = chunks.chunks(written.chunk_ids)
    first = records[written.chunk_ids[0]]
    assert (first.source, first.version, first.ordinal, first.title) == ("b.md", 1, 0, "Greek")
    assert (first.char_start, first.char_end, first.text) == (0, 10, "Alpha beta")
    assert first.metadata == {"year": 2020, "source": "b.md", "media_type": "text/plain"}
    assert chunks.chunks([]) == {}


def test_embeddings_roundtrip_live_only_in_batches(store) -> None:
    chunks, cid = store
    first = vectors(3)
    written = chunks.write_version(cid, version("c", "One. Two. Three"), first, "m")
    chunks.write_version(cid, version("d", "Four"), vectors(1) + 5, "m")
    chunks.write_version(cid, version("d", "Five"), vectors(1) + 9, "m")
    chunks.write_version(cid, version("e", "Other model"), vectors(1), "m2")
    batches = list(chunks.embeddings(cid, "m", batch_size=2))
    ids = [i for batch in batches for i in batch[0]]
    assert [len(batch[0]) for batch in batches] == [2, 2]
    assert ids[:3] == written.chunk_ids
    stacked = np.concatenate([batch[1] for batch in batches])
    np.testing.assert_array_equal(stacked[:3], first)
    np.testing.assert_array_equal(stacked[3], (vectors(1) + 9)[0])


def test_embeddings_of_one_shard_and_their_counts(store) -> None:
    chunks, cid = store
    chunks.write_version(
        cid, version("s", "One. Two. Three. Four. Five. Six. Seven"), vectors(7), "m"
    )
    retired = chunks.write_version(cid, version("t", "Old. Older"), vectors(2), "m")
    chunks.write_version(cid, version("t", "New"), vectors(1), "m")
    chunks.write_version(cid, version("u", "Other model. Again"), vectors(2), "m2")
    live = [i for batch in chunks.embeddings(cid, "m") for i in batch[0]]
    assert len(live) == 8 and not set(live) & set(retired.chunk_ids)
    assert chunks.embedding_count(cid, "m") == 8
    assert chunks.embedding_count(cid, "m2") == 2
    assert chunks.embedding_count(cid, "none") == 0
    seen: list[int] = []
    for index in range(3):
        batches = list(chunks.embeddings(cid, "m", batch_size=2, shard=(index, 3)))
        ids = [i for batch in batches for i in batch[0]]
        assert ids == [i for i in live if i % 3 == index]
        assert all(len(batch[0]) == len(batch[1]) == len(batch[2]) for batch in batches)
        assert chunks.embedding_count(cid, "m", shard=(index, 3)) == len(ids)
        seen += ids
    assert sorted(seen) == live
    assert chunks.embedding_count(cid, "m", shard=(0, 1)) == 8


@pytest.mark.parametrize("shard", [(3, 3), (-1, 2), (0, 0)])
def test_a_shard_outside_its_count_is_refused(store, shard: tuple[int, int]) -> None:
    chunks, cid = store
    with pytest.raises(ValueError, match="shard"):
        chunks.embedding_count(cid, "m", shard=shard)
    with pytest.raises(ValueError, match="shard"):
        next(chunks.embeddings(cid, "m", shard=shard))


def test_vectors_must_match_chunks(store) -> None:
    chunks, cid = store
    with pytest.raises(DimensionMismatch):
        chunks.write_version(cid, version("x", "One. Two"), vectors(3), "m")
    assert chunks.live_version(cid, "x") is None


def test_source_with_content_finds_only_live_versions(store) -> None:
    chunks, cid = store
    old = version("f", "Old text")
    chunks.write_version(cid, old, vectors(1), "m")
    chunks.write_version(cid, version("f", "New text"), vectors(1), "m")
    assert chunks.source_with_content(cid, old.content_hash) is None
    assert chunks.source_with_content(cid, version("f", "New text").content_hash) == "f"


def test_keyword_search_ranks_stems_and_filters(store) -> None:
    chunks, cid = store
    chunks.write_version(
        cid,
        version("1", "Running shoes for marathon runners", lang="en", year=2021),
        vectors(1),
        "m",
    )
    chunks.write_version(
        cid, version("2", "A runner eats pasta", lang="en", year=2019), vectors(1), "m"
    )
    chunks.write_version(
        cid, version("3", "Kochen mit Pasta", lang="de", year=2021), vectors(1), "m"
    )
    sources = lambda hits: [chunks.chunks([h[0]])[h[0]].source for h in hits]  # noqa: E731
    hits = chunks.keyword_search(cid, "marathon runner", 10)
    assert sources(hits)[0] == "1"
    assert set(sources(hits)) == {"1", "2"}
    assert hits[0][1] >= hits[1][1]
    assert sources(chunks.keyword_search(cid, "pasta", 10, parse_filter({"lang": "de"}))) == ["3"]
    assert set(
        sources(
            chunks.keyword_search(cid, "pasta runner", 10, parse_filter({"year": {"$gte": 2020}}))
        )
    ) == {"3", "1"}
    assert chunks.keyword_search(cid, "  ?! ", 10) == []
    assert chunks.keyword_search(cid, 'quote" OR injection', 10) == []


def test_title_counts_in_keyword_search(store) -> None:
    chunks, cid = store
    chunks.write_version(
        cid, version("t", "unrelated body text", title="Photosynthesis"), vectors(1), "m"
    )
    chunks.write_version(cid, version("u", "plain body words"), vectors(1), "m")
    hits = chunks.keyword_search(cid, "photosynthesis", 5)
    assert [chunks.chunks([h[0]])[h[0]].source for h in hits] == ["t"]


def test_keyword_search_is_per_collection(database: Database) -> None:
    repo = SqlCollectionRepository(database)
    a, b = repo.create("a").id, repo.create("b").id
    chunks = SqlChunkStore(database)
    chunks.write_version(a, version("x", "zebra stripes"), vectors(1), "m")
    assert chunks.keyword_search(b, "zebra", 5) == []
    assert len(chunks.keyword_search(a, "zebra", 5)) == 1


ROWS: list[dict[str, Any]] = [
    {"lang": "en", "year": 2020, "score": 0.5, "ok": True},
    {"lang": "de", "year": 2021, "score": 1.5, "ok": False},
    {"lang": "en", "year": 2019},
    {"year": "2020", "tags": ["a"]},
    {},
]
FILTERS: list[Any] = [
    {"lang": "en"},
    {"lang": {"$ne": "en"}},
    {"year": {"$gte": 2020}},
    {"year": {"$gt": 2019, "$lt": 2021}},
    {"year": 2020},
    {"year": "2020"},
    {"score": {"$lte": 1.0}},
    {"ok": True},
    {"ok": {"$ne": True}},
    {"lang": {"$in": ["de", "fr"]}},
    {"lang": {"$nin": ["de"]}},
    {"tags": "a"},
    {"tags": {"$ne": "a"}},
    {"$or": [{"lang": "de"}, {"year": {"$lt": 2020}}]},
    {"$and": [{"lang": "en"}, {"$or": [{"ok": True}, {"year": 2019}]}]},
    {"missing": {"$nin": [1, 2]}},
]


@pytest.mark.parametrize("raw", FILTERS, ids=[str(f) for f in FILTERS])
def test_sql_filters_agree_with_python(store, database: Database, raw: Any) -> None:
    chunks, cid = store
    for i, metadata in enumerate(ROWS):
        chunks.write_version(cid, version(f"r{i}", f"row {i}", **metadata), vectors(1), "m")
    tree = parse_filter(raw)
    clause = filter_clause(Chunk.meta, database.dialect, tree)
    got = database.run(
        lambda s: sorted(
            source for (source,) in s.execute(select(Document.source).join(Chunk).where(clause))
        )
    )
    expected = sorted(
        f"r{i}" for i, m in enumerate(ROWS) if matches(tree, {**m, "source": f"r{i}"})
    )
    assert got == expected


def test_unembedded_sql_runs_over_a_plain_dbapi_connection(store, database: Database) -> None:
    chunks, cid = store
    chunks.write_version(cid, version("a", "One. Two. Three"), vectors(3), "m1")
    retired = chunks.write_version(cid, version("b", "Old"), vectors(1), "m1")
    chunks.write_version(cid, version("b", "New. Newer"), vectors(2), "m1")
    first = next(chunks.unembedded(cid, "m2"))
    chunks.add_embeddings([first[0][0]], vectors(1), "m2")
    expected = sorted(row[0] for batch in chunks.unembedded(cid, "m2") for row in batch)
    sql, params = chunks.unembedded_sql(cid, "m2")
    connection = database.dbapi_connector()()
    try:
        cursor = connection.cursor()
        cursor.execute(sql, params)
        columns = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
    finally:
        connection.close()
    assert columns == ["id", "title", "text"]
    assert sorted(row[0] for row in rows) == expected
    assert len(expected) == 4 and not set(expected) & set(retired.chunk_ids)


def test_live_hashes_are_the_current_versions(store) -> None:
    chunks, cid = store
    chunks.write_version(cid, version("a", "First text"), vectors(1), "m")
    latest = version("a", "Second text")
    chunks.write_version(cid, latest, vectors(1), "m")
    other = version("b", "Other")
    chunks.write_version(cid, other, vectors(1), "m")
    assert chunks.live_hashes(cid) == {"a": latest.content_hash, "b": other.content_hash}
