"""ShardedIndex: the contract over three FAISS shards, plus routing, splitting and merging."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ember.errors import DimensionMismatch, VectorIndexError
from ember.filters import parse_filter
from ember.testing.vector_index import DIM, Reopen, VectorIndexContract, unit
from ember.vectors.faiss import FaissIndex
from ember.vectors.protocol import VectorHit, VectorIndex
from ember.vectors.sharded import ShardedIndex, merge_hits, shard_of, split, split_ids

SHARDS = 3


def open_sharded(root: Path, kind: str = "flat") -> ShardedIndex:
    return ShardedIndex(
        [FaissIndex(DIM, kind=kind, path=root / f"s{s}.npz") for s in range(SHARDS)]  # type: ignore[arg-type]
    )


class TestShardedFaissIndex(VectorIndexContract):
    kind = "flat"

    @pytest.fixture
    def index(self, tmp_path: Path) -> Iterator[ShardedIndex]:
        index = open_sharded(tmp_path, self.kind)
        yield index
        index.close()

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Iterator[Reopen]:
        opened: list[ShardedIndex] = []

        def again(index: VectorIndex) -> VectorIndex:
            index.close()
            opened.append(open_sharded(tmp_path, self.kind))
            return opened[-1]

        yield again
        for index in opened:
            index.close()


class TestShardedHnswFaissIndex(TestShardedFaissIndex):
    kind = "hnsw"


def test_shard_of_is_id_modulo_shards() -> None:
    assert [shard_of(i, 3) for i in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert shard_of(2**63 - 1, 4) == 3
    assert {shard_of(i, 1) for i in range(10)} == {0}
    with pytest.raises(ValueError, match="positive"):
        shard_of(1, 0)


def test_sequential_ids_balance_the_shards() -> None:
    counts = np.bincount([shard_of(i, 4) for i in range(1001, 2001)], minlength=4)
    assert counts.tolist() == [250, 250, 250, 250]


def test_split_keeps_each_entry_with_its_vector_and_metadata() -> None:
    ids = [5, 3, 9, 4, 0]
    vectors = np.arange(len(ids) * DIM, dtype=np.float32).reshape(len(ids), DIM)
    metadata = [{"n": i} for i in ids]
    parts = split(DIM, ids, vectors, metadata, 3)
    assert [part.ids for part in parts] == [[3, 9, 0], [4], [5]]
    for part in parts:
        assert [meta["n"] for meta in part.metadata] == part.ids
        for i, row in zip(part.ids, part.vectors, strict=True):
            np.testing.assert_array_equal(row, vectors[ids.index(i)])
    assert parts[1].vectors.shape == (1, DIM)


def test_split_checks_the_whole_batch_first() -> None:
    with pytest.raises(DimensionMismatch):
        split(DIM, [1, 2], np.ones((2, DIM + 1), dtype=np.float32), [{}, {}], 2)
    with pytest.raises(ValueError, match="repeats"):
        split(DIM, [1, 1], np.ones((2, DIM), dtype=np.float32), [{}, {}], 2)
    with pytest.raises(ValueError, match="positive"):
        split(DIM, [1], np.ones((1, DIM), dtype=np.float32), [{}], 0)


def test_split_ids_groups_by_shard_in_order() -> None:
    assert split_ids([7, 2, 4, 9, 2], 3) == [[9], [7, 4], [2, 2]]
    assert split_ids([], 2) == [[], []]


def test_merge_hits_is_the_global_top_k_best_first() -> None:
    per_shard = [
        [VectorHit(0.9, 3), VectorHit(0.2, 6)],
        [VectorHit(0.95, 1), VectorHit(0.5, 4), VectorHit(0.1, 7)],
        [],
        [VectorHit(0.6, 2)],
    ]
    assert [hit.id for hit in merge_hits(per_shard, 3)] == [1, 3, 2]
    assert [hit.id for hit in merge_hits(per_shard, 10)] == [1, 3, 2, 4, 6, 7]
    assert merge_hits(per_shard, 0) == []
    assert merge_hits([], 5) == []


def test_each_id_lands_in_exactly_one_shard() -> None:
    shards = [FaissIndex(DIM) for _ in range(SHARDS)]
    index = ShardedIndex(shards)
    rng = np.random.default_rng(11)
    ids = list(range(100, 160))
    vectors = rng.normal(size=(len(ids), DIM)).astype(np.float32)
    index.upsert(ids, vectors, [{"i": i} for i in ids])
    assert [shard.count() for shard in shards] == [20, 20, 20]
    for i, vector in zip(ids, vectors, strict=True):
        holders = [
            s for s, shard in enumerate(shards) if shard.search(vector, 1, parse_filter({"i": i}))
        ]
        assert holders == [shard_of(i, SHARDS)]
    assert index.delete([100, 101, 102, 999]) == 3
    assert [shard.count() for shard in shards] == [19, 19, 19]


def test_search_equals_one_unsharded_index() -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(300, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = list(range(1, 301))
    metadata = [{"even": i % 2 == 0} for i in ids]
    whole, sharded = FaissIndex(DIM), ShardedIndex([FaissIndex(DIM) for _ in range(SHARDS)])
    for index in (whole, sharded):
        index.upsert(ids, vectors, metadata)
    for query in vectors[:5]:
        assert sharded.search(query, 10) == whole.search(query, 10)
        where = parse_filter({"even": True})
        assert sharded.search(query, 7, where) == whole.search(query, 7, where)


def test_a_bad_batch_reaches_no_shard() -> None:
    shards = [FaissIndex(DIM) for _ in range(SHARDS)]
    index = ShardedIndex(shards)
    with pytest.raises(ValueError, match="repeats"):
        index.upsert([1, 2, 3, 3], np.ones((4, DIM), dtype=np.float32), [{}] * 4)
    assert [shard.count() for shard in shards] == [0, 0, 0]


def test_shards_must_share_a_dimension() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        ShardedIndex([FaissIndex(DIM), FaissIndex(DIM + 1)])
    with pytest.raises(ValueError, match="at least one"):
        ShardedIndex([])
    assert ShardedIndex([FaissIndex(8), FaissIndex(8)]).dim == 8


def test_close_closes_every_shard_and_later_calls_fail(tmp_path: Path) -> None:
    index = open_sharded(tmp_path)
    index.upsert([1, 2, 3], np.stack([unit(1, 0, 0, 0)] * 3), [{}] * 3)
    index.close()
    index.close()
    with pytest.raises(VectorIndexError, match="closed"):
        index.count()
    with pytest.raises(VectorIndexError, match="closed"):
        index.upsert([4], unit(1, 0, 0, 0).reshape(1, DIM), [{}])
    assert [FaissIndex(DIM, path=tmp_path / f"s{s}.npz").count() for s in range(SHARDS)] == [
        1,
        1,
        1,
    ]
