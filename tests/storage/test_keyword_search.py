"""The database's keyword search over live chunks: FTS5 on SQLite, tsvector on Postgres."""

from __future__ import annotations

import pytest

from ember.filters import parse_filter
from ember.storage import (
    Database,
    SqlChunkReader,
    SqlCollectionRepository,
    SqlKeywordSearch,
    SqlVersionStore,
)
from tests.storage.conftest import vectors, version

pytestmark = pytest.mark.slow


@pytest.fixture
def keyword(database: Database) -> SqlKeywordSearch:
    return SqlKeywordSearch(database)


def test_keyword_search_ranks_stems_and_filters(
    versions: SqlVersionStore, keyword: SqlKeywordSearch, collection_id: str, database: Database
) -> None:
    cid, reader = collection_id, SqlChunkReader(database)
    versions.write_version(
        cid,
        version("1", "Running shoes for marathon runners", lang="en", year=2021),
        vectors(1),
        "m",
    )
    versions.write_version(
        cid, version("2", "A runner eats pasta", lang="en", year=2019), vectors(1), "m"
    )
    versions.write_version(
        cid, version("3", "Kochen mit Pasta", lang="de", year=2021), vectors(1), "m"
    )
    sources = lambda hits: [reader.chunks([h[0]])[h[0]].source for h in hits]  # noqa: E731
    hits = keyword.keyword_search(cid, "marathon runner", 10)
    assert sources(hits)[0] == "1"
    assert set(sources(hits)) == {"1", "2"}
    assert hits[0][1] >= hits[1][1]
    assert sources(keyword.keyword_search(cid, "pasta", 10, parse_filter({"lang": "de"}))) == ["3"]
    assert set(
        sources(
            keyword.keyword_search(cid, "pasta runner", 10, parse_filter({"year": {"$gte": 2020}}))
        )
    ) == {"3", "1"}
    assert keyword.keyword_search(cid, "  ?! ", 10) == []
    assert keyword.keyword_search(cid, 'quote" OR injection', 10) == []


def test_title_counts_in_keyword_search(
    versions: SqlVersionStore, keyword: SqlKeywordSearch, collection_id: str, database: Database
) -> None:
    cid, reader = collection_id, SqlChunkReader(database)
    versions.write_version(
        cid, version("t", "unrelated body text", title="Photosynthesis"), vectors(1), "m"
    )
    versions.write_version(cid, version("u", "plain body words"), vectors(1), "m")
    hits = keyword.keyword_search(cid, "photosynthesis", 5)
    assert [reader.chunks([h[0]])[h[0]].source for h in hits] == ["t"]


def test_keyword_search_is_per_collection(
    versions: SqlVersionStore, keyword: SqlKeywordSearch, database: Database
) -> None:
    repo = SqlCollectionRepository(database)
    a, b = repo.create("a").id, repo.create("b").id
    versions.write_version(a, version("x", "zebra stripes"), vectors(1), "m")
    assert keyword.keyword_search(b, "zebra", 5) == []
    assert len(keyword.keyword_search(a, "zebra", 5)) == 1
