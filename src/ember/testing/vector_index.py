"""The :class:`~ember.vectors.protocol.VectorIndex` contract as a pytest mixin.

An adapter's test module subclasses :class:`VectorIndexContract` and provides two fixtures::

    class TestFaissIndex(VectorIndexContract):
        @pytest.fixture
        def index(self, tmp_path): ...          # an empty index of dimension DIM, closed after

        @pytest.fixture
        def reopen(self, tmp_path): ...         # index -> the same store, closed and opened again

Every test uses hand-made vectors of dimension :data:`DIM` whose exact ranking is known, and
checks filters against hand-written answers (cross-checked with
:func:`ember.filters.matches`, the reference semantics).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from ember.errors import DimensionMismatch
from ember.filters import matches, parse_filter
from ember.vectors.protocol import Vector, VectorHit, VectorIndex

__all__ = ["DIM", "FILTER_CASES", "ROWS", "Reopen", "VectorIndexContract", "unit"]

DIM = 4
Reopen = Callable[[VectorIndex], VectorIndex]


def unit(*values: float) -> Vector:
    """A float32 vector scaled to length 1."""
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


QUERY = unit(1, 0, 0, 0)
NOTE = "he said \"hi\", \\ then 'bye'\n"
ROWS: dict[int, tuple[Vector, dict[str, Any]]] = {
    1: (unit(1, 0, 0, 0), {"lang": "en", "year": 2020, "tag": "a", "flag": True}),
    2: (unit(0.8, 0.6, 0, 0), {"lang": "de", "year": 2021, "tag": "b"}),
    3: (unit(0.6, 0.8, 0, 0), {"lang": "en", "year": 2022, "tag": "c", "note": NOTE}),
    4: (unit(0, 1, 0, 0), {"lang": "fr", "year": 2019.5, "tags": ["x", "y"]}),
    5: (unit(-0.6, 0, 0.8, 0), {"year": "2020", "flag": 1, "lang": None}),
    6: (unit(-1, 0, 0, 0), {}),
}
"""id -> (vector, metadata); against :data:`QUERY` the scores are 1, .8, .6, 0, -.6, -1."""

FILTER_CASES: list[tuple[dict[str, Any], set[int]]] = [
    ({"lang": "en"}, {1, 3}),
    ({"lang": {"$ne": "en"}}, {2, 4, 5, 6}),
    ({"year": {"$gt": 2020}}, {2, 3}),
    ({"year": {"$gte": 2020}}, {1, 2, 3}),
    ({"year": {"$lt": 2020}}, {4}),
    ({"year": {"$lte": 2020}}, {1, 4}),
    ({"year": {"$gte": 2020, "$lt": 2022}}, {1, 2}),
    ({"year": {"$in": [2019.5, 2022]}}, {3, 4}),
    ({"tag": {"$in": ["a", "c"]}}, {1, 3}),
    ({"tag": {"$nin": ["a", "c"]}}, {2, 4, 5, 6}),
    ({"$or": [{"lang": "de"}, {"year": {"$lt": 2020}}]}, {2, 4}),
    ({"$and": [{"lang": "en"}, {"$or": [{"tag": "a"}, {"year": {"$gt": 2021}}]}]}, {1, 3}),
    ({"lang": {"$nin": ["en", "de"]}, "year": {"$ne": 2019.5}}, {5, 6}),
    ({"year": "2020"}, {5}),
    ({"year": 2020}, {1}),
    ({"flag": True}, {1}),
    ({"flag": 1}, {5}),
    ({"flag": {"$ne": True}}, {2, 3, 4, 5, 6}),
    ({"note": NOTE}, {3}),
    ({"tags": {"$ne": "x"}}, {1, 2, 3, 4, 5, 6}),
    ({"lang": {"$ne": "xx"}, "year": {"$lt": 1900}}, set()),
    ({"lang": "xx"}, set()),
]
"""(filter JSON, ids it selects from :data:`ROWS`): every operator, kinds kept apart (the
string "2020" is not the number 2020, ``True`` is not ``1``), missing, null and list values
matching only ``$ne``/``$nin``, quotes and backslashes in strings, nesting."""


def _fill(index: VectorIndex, rows: Mapping[int, tuple[Vector, dict[str, Any]]]) -> None:
    ids = list(rows)
    index.upsert(ids, np.stack([rows[i][0] for i in ids]), [rows[i][1] for i in ids])


def _ids(hits: Sequence[VectorHit]) -> list[int]:
    return [hit.id for hit in hits]


class VectorIndexContract:
    """Tests every :class:`~ember.vectors.protocol.VectorIndex` must pass.

    Needs an ``index`` fixture (an empty index of dimension :data:`DIM`) and a ``reopen``
    fixture (a :data:`Reopen` callable). ``score_tolerance`` may be loosened by a subclass
    whose backend stores vectors with less precision.
    """

    score_tolerance = 1e-5

    def assert_ranked(self, hits: Sequence[VectorHit], expected: Sequence[int]) -> None:
        """``hits`` are exactly ``expected`` in order, with their exact inner products."""
        assert _ids(hits) == list(expected)
        for hit in hits:
            assert isinstance(hit.id, int)
            assert isinstance(hit.score, float)
            exact = float(ROWS[hit.id][0] @ QUERY) if hit.id in ROWS else hit.score
            assert hit.score == pytest.approx(exact, abs=self.score_tolerance)

    def test_dim(self, index: VectorIndex) -> None:
        assert index.dim == DIM

    def test_empty_index(self, index: VectorIndex) -> None:
        assert index.count() == 0
        assert index.search(QUERY, 3) == []

    def test_add_and_search_ranks_exactly(self, index: VectorIndex) -> None:
        _fill(index, ROWS)
        assert index.count() == len(ROWS)
        self.assert_ranked(index.search(QUERY, 3), [1, 2, 3])
        assert _ids(index.search(unit(0, 1, 0, 0), 2)) == [4, 3]

    def test_search_accepts_a_row_vector(self, index: VectorIndex) -> None:
        _fill(index, ROWS)
        assert _ids(index.search(QUERY.reshape(1, DIM), 1)) == [1]

    def test_k_larger_than_count_returns_everything(self, index: VectorIndex) -> None:
        _fill(index, ROWS)
        self.assert_ranked(index.search(QUERY, 100), [1, 2, 3, 4, 5, 6])

    def test_k_zero_returns_nothing(self, index: VectorIndex) -> None:
        _fill(index, ROWS)
        assert index.search(QUERY, 0) == []

    def test_large_ids(self, index: VectorIndex) -> None:
        big = 2**63 - 1
        index.upsert([big, 0], np.stack([unit(1, 0, 0, 0), unit(0, 1, 0, 0)]), [{}, {}])
        assert _ids(index.search(QUERY, 2)) == [big, 0]
        assert index.delete([big]) == 1
        assert _ids(index.search(QUERY, 2)) == [0]

    def test_upsert_replaces_vector_and_metadata(self, index: VectorIndex) -> None:
        _fill(index, ROWS)
        moved = unit(-0.2, 0, 0, 1)
        index.upsert([1], moved.reshape(1, DIM), [{"lang": "de"}])
        assert index.count() == len(ROWS)
        assert _ids(index.search(QUERY, 100)) == [2, 3, 4, 1, 5, 6]
        hits = index.search(unit(0, 0, 0, 1), 1)
        assert _ids(hits) == [1]
        assert hits[0].score == pytest.approx(float(moved[3]), abs=self.score_tolerance)
        assert set(_ids(index.search(QUERY, 10, parse_filter({"lang": "en"})))) == {3}
        assert set(_ids(index.search(QUERY, 10, parse_filter({"lang": "de"})))) == {1, 2}

    def test_upsert_many_times_keeps_one_entry(self, index: VectorIndex) -> None:
        for step in range(5):
            index.upsert([7], unit(1, step, 0, 0).reshape(1, DIM), [{"step": step}])
        assert index.count() == 1
        assert _ids(index.search(QUERY, 10)) == [7]
        assert _ids(index.search(QUERY, 10, parse_filter({"step": 4}))) == [7]
        assert index.search(QUERY, 10, parse_filter({"step": 3})) == []

    def test_delete(self, index: VectorIndex) -> None:
        _fill(index, ROWS)
        assert index.delete([1, 2, 999]) == 2
        assert index.count() == len(ROWS) - 2
        self.assert_ranked(index.search(QUERY, 100), [3, 4, 5, 6])
        assert _ids(index.search(QUERY, 10, parse_filter({"lang": "en"}))) == [3]
        assert index.delete([1, 2]) == 0
        assert index.delete([]) == 0
        assert index.count() == len(ROWS) - 2

    def test_delete_then_add_back(self, index: VectorIndex) -> None:
        _fill(index, ROWS)
        index.delete([1])
        index.upsert([1], unit(0, 0, 1, 0).reshape(1, DIM), [{"lang": "en"}])
        assert index.count() == len(ROWS)
        assert _ids(index.search(unit(0, 0, 1, 0), 1)) == [1]
        assert _ids(index.search(QUERY, 2)) == [2, 3]

    @pytest.mark.parametrize(
        ("where", "expected"), FILTER_CASES, ids=[str(case[0]) for case in FILTER_CASES]
    )
    def test_filter(self, index: VectorIndex, where: dict[str, Any], expected: set[int]) -> None:
        tree = parse_filter(where)
        assert {i for i, (_, meta) in ROWS.items() if matches(tree, meta)} == expected
        _fill(index, ROWS)
        hits = index.search(QUERY, 10, tree)
        self.assert_ranked(hits, sorted(expected, key=lambda i: -float(ROWS[i][0] @ QUERY)))

    def test_filter_keeps_k(self, index: VectorIndex) -> None:
        _fill(index, ROWS)
        assert _ids(index.search(QUERY, 1, parse_filter({"lang": "en"}))) == [1]
        assert _ids(index.search(QUERY, 1, parse_filter({"lang": {"$ne": "en"}}))) == [2]

    def test_selective_filter_is_applied_inside_the_search(self, index: VectorIndex) -> None:
        rng = np.random.default_rng(7)
        near = rng.normal(size=(290, DIM)).astype(np.float32) * 0.05 + QUERY
        far = rng.normal(size=(10, DIM)).astype(np.float32) * 0.05 - QUERY
        vectors = np.vstack([near, far])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        groups = ["near"] * 290 + ["rare"] * 10
        ids = list(range(1000, 1300))
        index.upsert(ids, vectors, [{"group": group} for group in groups])
        assert set(_ids(index.search(QUERY, 10))) <= set(ids[:290])
        hits = index.search(QUERY, 5, parse_filter({"group": "rare"}))
        expected = np.argsort(-(vectors[290:] @ QUERY))[:5] + 1290
        assert _ids(hits) == expected.tolist()

    def test_persist_and_reload(self, index: VectorIndex, reopen: Reopen) -> None:
        _fill(index, ROWS)
        index.delete([2])
        index.flush()
        before = index.search(QUERY, 10)
        filtered = index.search(QUERY, 10, parse_filter({"lang": "en"}))
        again = reopen(index)
        assert again.count() == len(ROWS) - 1
        assert _ids(again.search(QUERY, 10)) == _ids(before)
        assert [h.score for h in again.search(QUERY, 10)] == pytest.approx(
            [h.score for h in before], abs=self.score_tolerance
        )
        assert _ids(again.search(QUERY, 10, parse_filter({"lang": "en"}))) == _ids(filtered)
        again.upsert([2], unit(1, 0, 0, 0).reshape(1, DIM), [{}])
        assert again.count() == len(ROWS)

    def test_upsert_dimension_mismatch_writes_nothing(self, index: VectorIndex) -> None:
        _fill(index, ROWS)
        with pytest.raises(DimensionMismatch):
            index.upsert([7, 8], np.ones((2, DIM + 1), dtype=np.float32), [{}, {}])
        with pytest.raises(DimensionMismatch):
            index.upsert([1], np.ones((1, DIM - 1), dtype=np.float32), [{}])
        assert index.count() == len(ROWS)
        self.assert_ranked(index.search(QUERY, 100), [1, 2, 3, 4, 5, 6])

    def test_search_dimension_mismatch(self, index: VectorIndex) -> None:
        _fill(index, ROWS)
        with pytest.raises(DimensionMismatch):
            index.search(np.ones(DIM + 1, dtype=np.float32), 3)
        with pytest.raises(DimensionMismatch):
            index.search(np.ones((2, DIM), dtype=np.float32), 3)

    @pytest.mark.parametrize(
        ("ids", "rows", "metadata"),
        [([1, 2], 3, 3), ([1, 2, 3], 3, 2), ([1, 2], 1, 2), ([1, 1], 2, 2), ([-1], 1, 1)],
        ids=["ids", "metadata", "vectors", "repeated id", "negative id"],
    )
    def test_bad_batches_raise_value_error(
        self, index: VectorIndex, ids: list[int], rows: int, metadata: int
    ) -> None:
        _fill(index, ROWS)
        with pytest.raises(ValueError, match=r"."):
            index.upsert(ids, np.ones((rows, DIM), dtype=np.float32), [{}] * metadata)
        assert index.count() == len(ROWS)
        self.assert_ranked(index.search(QUERY, 100), [1, 2, 3, 4, 5, 6])
