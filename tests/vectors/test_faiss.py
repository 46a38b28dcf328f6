"""FaissIndex: the contract for ``flat`` and ``hnsw``, plus tombstones, rebuilds and files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest

from ember.errors import DimensionMismatch, VectorIndexError
from ember.filters import parse_filter
from ember.testing.vector_index import DIM, Reopen, VectorIndexContract, unit
from ember.vectors.faiss import FaissIndex, Kind
from ember.vectors.protocol import VectorIndex


class TestFlatFaissIndex(VectorIndexContract):
    kind: Kind = "flat"
    exact_below = 2048

    def open(self, path: Path) -> FaissIndex:
        return FaissIndex(DIM, kind=self.kind, path=path, exact_below=self.exact_below)

    @pytest.fixture
    def index(self, tmp_path: Path) -> Iterator[FaissIndex]:
        index = self.open(tmp_path / "vectors.npz")
        yield index
        index.close()

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Iterator[Reopen]:
        opened: list[FaissIndex] = []

        def again(index: VectorIndex) -> VectorIndex:
            index.close()
            opened.append(self.open(tmp_path / "vectors.npz"))
            return opened[-1]

        yield again
        for index in opened:
            index.close()


class TestHnswFaissIndex(TestFlatFaissIndex):
    kind: Kind = "hnsw"


class TestHnswGraphFilteredFaissIndex(TestFlatFaissIndex):
    """Filtered HNSW searches through the graph walk, never the exact shortcut."""

    kind: Kind = "hnsw"
    exact_below = 0


def _random_unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _exact_top(vectors: dict[int, np.ndarray], query: np.ndarray, k: int) -> list[int]:
    ids = list(vectors)
    scores = np.stack([vectors[i] for i in ids]) @ query
    return [ids[j] for j in np.argsort(-scores)[:k]]


def test_hnsw_upsert_tombstones_the_old_row() -> None:
    index = FaissIndex(DIM, kind="hnsw", rebuild_fraction=0.5)
    index.upsert([1, 2], np.stack([unit(1, 0, 0, 0), unit(0, 1, 0, 0)]), [{}, {}])
    index.upsert([1], unit(0, 0, 1, 0).reshape(1, DIM), [{}])
    assert index.tombstones == 1
    assert index.count() == 2
    hits = index.search(unit(1, 1, 0, 0), 5)
    assert [hit.id for hit in hits] == [2, 1]
    assert [hit.score for hit in hits] == pytest.approx([0.5**0.5, 0], abs=1e-6)


def test_hnsw_stays_right_through_many_deletes_and_rebuilds() -> None:
    rng = np.random.default_rng(3)
    dim, n = 16, 1500
    index = FaissIndex(dim, kind="hnsw", exact_below=0)
    vectors = _random_unit(rng, n, dim)
    index.upsert(list(range(n)), vectors, [{"even": i % 2 == 0} for i in range(n)])
    live = dict(enumerate(vectors))
    deleted: set[int] = set()
    queries = _random_unit(rng, 20, dim)
    for start in range(0, 1200, 100):
        gone = list(range(start, start + 100))
        assert index.delete(gone) == 100
        deleted.update(gone)
        for i in gone:
            del live[i]
        assert index.tombstones <= 0.2 * (index.count() + index.tombstones)
        assert index.count() == len(live)
        found = 0
        for query in queries:
            hits = [hit.id for hit in index.search(query, 10)]
            assert not deleted & set(hits)
            found += len(set(hits) & set(_exact_top(live, query, 10)))
            even = [hit.id for hit in index.search(query, 10, parse_filter({"even": True}))]
            assert len(even) == 10
            assert all(i % 2 == 0 and i not in deleted for i in even)
        assert found / (10 * len(queries)) >= 0.9
    assert index.tombstones < 100


def test_hnsw_selective_filter_through_the_graph_returns_k_hits() -> None:
    rng = np.random.default_rng(5)
    index = FaissIndex(8, kind="hnsw", exact_below=0, ef_search=16)
    vectors = _random_unit(rng, 3000, 8)
    index.upsert(list(range(3000)), vectors, [{"rare": i % 500 == 0} for i in range(3000)])
    hits = index.search(vectors[1], 6, parse_filter({"rare": True}))
    assert sorted(hit.id for hit in hits) == [0, 500, 1000, 1500, 2000, 2500]


def test_flush_writes_one_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "vectors.npz"
    index = FaissIndex(DIM, kind="hnsw", path=path)
    index.upsert([1], unit(1, 0, 0, 0).reshape(1, DIM), [{"lang": "en"}])
    index.flush()
    assert sorted(p.name for p in path.parent.iterdir()) == ["vectors.npz"]
    index.close()
    again = FaissIndex(DIM, kind="hnsw", path=path)
    assert [hit.id for hit in again.search(unit(1, 0, 0, 0), 1, parse_filter({"lang": "en"}))] == [
        1
    ]


def test_close_flushes_and_later_calls_fail(tmp_path: Path) -> None:
    path = tmp_path / "vectors.npz"
    index = FaissIndex(DIM, path=path)
    index.upsert([1], unit(1, 0, 0, 0).reshape(1, DIM), [{}])
    index.close()
    index.close()
    with pytest.raises(VectorIndexError):
        index.count()
    assert FaissIndex(DIM, path=path).count() == 1


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_loading_another_dimension_raises(tmp_path: Path, kind: Kind) -> None:
    path = tmp_path / "vectors.npz"
    index = FaissIndex(8, kind=kind, path=path)
    index.upsert([1], np.ones((1, 8), dtype=np.float32), [{}])
    index.close()
    with pytest.raises(DimensionMismatch):
        FaissIndex(DIM, kind=kind, path=path)


def test_loading_another_kind_raises(tmp_path: Path) -> None:
    path = tmp_path / "vectors.npz"
    index = FaissIndex(DIM, kind="flat", path=path)
    index.upsert([1], unit(1, 0, 0, 0).reshape(1, DIM), [{}])
    index.close()
    with pytest.raises(VectorIndexError, match="flat"):
        FaissIndex(DIM, kind="hnsw", path=path)


def test_unreadable_file_raises_vector_index_error(tmp_path: Path) -> None:
    path = tmp_path / "vectors.npz"
    path.write_bytes(b"not an index")
    with pytest.raises(VectorIndexError):
        FaissIndex(DIM, path=path)


def test_memory_only_index_flushes_nothing(tmp_path: Path) -> None:
    index = FaissIndex(DIM)
    index.upsert([1], unit(1, 0, 0, 0).reshape(1, DIM), [{}])
    index.flush()
    index.close()
    assert list(tmp_path.iterdir()) == []


def test_bad_settings_raise() -> None:
    with pytest.raises(ValueError, match="dim"):
        FaissIndex(0)
    with pytest.raises(ValueError, match="kind"):
        FaissIndex(DIM, kind="ivf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="use_gpu"):
        FaissIndex(DIM, kind="hnsw", use_gpu=True)


@pytest.mark.skipif(faiss.get_num_gpus() > 0, reason="this machine has a GPU")
def test_use_gpu_without_a_gpu_raises() -> None:
    with pytest.raises(VectorIndexError, match="GPU"):
        FaissIndex(DIM, use_gpu=True)
    assert FaissIndex(DIM).search(unit(1, 0, 0, 0), 1) == []
