"""Documents and their versions: SQLite and Postgres alike."""

from __future__ import annotations

import pytest

from ember.errors import DimensionMismatch
from ember.storage import Database, SqlKeywordSearch, SqlVersionStore
from tests.storage.conftest import vectors, version

pytestmark = pytest.mark.slow


def test_first_version_then_a_new_one_retires_the_old(
    versions: SqlVersionStore, collection_id: str, database: Database
) -> None:
    cid, keyword = collection_id, SqlKeywordSearch(database)
    first = version("a.txt", "Cats purr softly. Dogs bark loudly", lang="en")
    written = versions.write_version(cid, first, vectors(2), "m1")
    assert written.version == 1 and len(written.chunk_ids) == 2 and written.retired_chunk_ids == []
    live = versions.live_version(cid, "a.txt")
    assert live is not None and live.version == 1 and live.content_hash == first.content_hash

    second = version("a.txt", "Cats sleep all day", lang="en")
    rewritten = versions.write_version(cid, second, vectors(1), "m1")
    assert rewritten.version == 2
    assert rewritten.document_id == written.document_id
    assert sorted(rewritten.retired_chunk_ids) == sorted(written.chunk_ids)
    assert versions.live_version(cid, "a.txt").content_hash == second.content_hash  # type: ignore[union-attr]
    assert [hit[0] for hit in keyword.keyword_search(cid, "dogs bark", 10)] == []
    assert [hit[0] for hit in keyword.keyword_search(cid, "sleep", 10)] == rewritten.chunk_ids


def test_vectors_must_match_chunks(versions: SqlVersionStore, collection_id: str) -> None:
    with pytest.raises(DimensionMismatch):
        versions.write_version(collection_id, version("x", "One. Two"), vectors(3), "m")
    assert versions.live_version(collection_id, "x") is None


def test_source_with_content_finds_only_live_versions(
    versions: SqlVersionStore, collection_id: str
) -> None:
    cid = collection_id
    old = version("f", "Old text")
    versions.write_version(cid, old, vectors(1), "m")
    versions.write_version(cid, version("f", "New text"), vectors(1), "m")
    assert versions.source_with_content(cid, old.content_hash) is None
    assert versions.source_with_content(cid, version("f", "New text").content_hash) == "f"


def test_live_hashes_are_the_current_versions(
    versions: SqlVersionStore, collection_id: str
) -> None:
    cid = collection_id
    versions.write_version(cid, version("a", "First text"), vectors(1), "m")
    latest = version("a", "Second text")
    versions.write_version(cid, latest, vectors(1), "m")
    other = version("b", "Other")
    versions.write_version(cid, other, vectors(1), "m")
    assert versions.live_hashes(cid) == {"a": latest.content_hash, "b": other.content_hash}
