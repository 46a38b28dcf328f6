"""The :class:`SqlChunkStore` facade: exactly the four chunk contracts, each delegated."""

from __future__ import annotations

import inspect

import pytest

from ember.storage import (
    ChunkReader,
    ChunkStore,
    Database,
    EmbeddingStore,
    KeywordSearch,
    SqlChunkReader,
    SqlChunkStore,
    SqlEmbeddingStore,
    SqlKeywordSearch,
    SqlVersionStore,
    VersionStore,
)
from tests.storage.conftest import vectors, version

PARTS = {
    VersionStore: SqlVersionStore,
    ChunkReader: SqlChunkReader,
    EmbeddingStore: SqlEmbeddingStore,
    KeywordSearch: SqlKeywordSearch,
}


def _methods(cls: type) -> set[str]:
    """The public methods ``cls`` itself defines (not those it inherits)."""
    return {
        name
        for name, value in vars(cls).items()
        if inspect.isfunction(value) and not name.startswith("_")
    }


def test_the_facade_has_exactly_the_methods_of_the_four_contracts() -> None:
    contracts = [_methods(protocol) for protocol in PARTS]
    assert sum(len(names) for names in contracts) == len(set().union(*contracts))
    assert _methods(SqlChunkStore) == set().union(*contracts)
    assert _methods(ChunkStore) == set()  # the union of the four, adding nothing


@pytest.mark.parametrize("protocol", list(PARTS), ids=lambda p: p.__name__)
def test_each_adapter_has_its_contracts_signatures(protocol: type) -> None:
    adapter = PARTS[protocol]
    assert _methods(adapter) == _methods(protocol)
    for name in _methods(protocol):
        expected = inspect.signature(getattr(protocol, name))
        assert inspect.signature(getattr(adapter, name)) == expected
        assert inspect.signature(getattr(SqlChunkStore, name)) == expected


@pytest.mark.slow
def test_the_facade_reaches_every_part(database: Database, collection_id: str) -> None:
    store: ChunkStore = SqlChunkStore(database)
    written = store.write_version(
        collection_id, version("z", "Zebra stripes. Lion manes"), vectors(2), "m"
    )
    assert store.live_hashes(collection_id) == {
        "z": version("z", "Zebra stripes. Lion manes").content_hash
    }
    assert sorted(store.chunks(written.chunk_ids)) == written.chunk_ids
    assert store.live_chunk_count(collection_id) == 2
    assert store.embedding_count(collection_id, "m") == 2
    assert [hit[0] for hit in store.keyword_search(collection_id, "zebra", 5)] == [
        written.chunk_ids[0]
    ]
