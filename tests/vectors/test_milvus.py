"""MilvusIndex: the contract against a real Milvus Lite, plus expressions and error mapping."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymilvus import MilvusClient

from ember.errors import DimensionMismatch, InvalidFilter, VectorIndexError
from ember.filters import Condition, parse_filter
from ember.testing.vector_index import DIM, Reopen, VectorIndexContract, unit
from ember.vectors.milvus import MilvusIndex, milvus_expression
from ember.vectors.protocol import VectorIndex

pytestmark = pytest.mark.slow


class TestMilvusLiteIndex(VectorIndexContract):
    @pytest.fixture
    def index(self, tmp_path: Path) -> Iterator[MilvusIndex]:
        index = MilvusIndex(DIM, tmp_path / "milvus.db")
        yield index
        index.close()

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Iterator[Reopen]:
        opened: list[MilvusIndex] = []

        def again(index: VectorIndex) -> VectorIndex:
            index.close()
            opened.append(MilvusIndex(DIM, tmp_path / "milvus.db"))
            return opened[-1]

        yield again
        for index in opened:
            index.close()


def test_expression_quotes_strings_and_keeps_kinds_apart() -> None:
    tree = parse_filter({"note": 'say "hi" \\ now\n', "n": {"$in": [1, True]}})
    assert tree is not None
    assert milvus_expression(tree) == (
        '(metadata["str"]["note"] == "say \\"hi\\" \\\\ now\\n" and '
        '(metadata["num"]["n"] == 1 or metadata["bool"]["n"] == true))'
    )


def test_expression_ne_and_nin_accept_missing_fields() -> None:
    tree = parse_filter({"lang": {"$nin": ["en", "de"]}})
    assert tree is not None
    path = 'metadata["str"]["lang"]'
    assert milvus_expression(tree) == (
        f'(((not exists {path}) or {path} != "en") and ((not exists {path}) or {path} != "de"))'
    )


def test_expression_rejects_infinite_numbers_the_parser_would_have_refused() -> None:
    with pytest.raises(InvalidFilter, match="finite"):
        parse_filter({"year": {"$lt": float("inf")}})
    with pytest.raises(InvalidFilter):
        milvus_expression(Condition("year", "$lt", float("inf")))


def test_reopening_with_another_dimension_raises(tmp_path: Path) -> None:
    MilvusIndex(DIM, tmp_path / "milvus.db").close()
    with pytest.raises(DimensionMismatch):
        MilvusIndex(DIM + 1, tmp_path / "milvus.db")
    again = MilvusIndex(DIM, tmp_path / "milvus.db")
    assert again.count() == 0
    again.close()


def test_a_foreign_collection_is_refused(tmp_path: Path) -> None:
    client = MilvusClient(str(tmp_path / "milvus.db"))
    client.create_collection("theirs", dimension=DIM)
    try:
        with pytest.raises(VectorIndexError, match="fields"):
            MilvusIndex(DIM, client=client, collection="theirs")
    finally:
        client.close()


def test_vendor_errors_become_vector_index_errors(tmp_path: Path) -> None:
    client = MilvusClient(str(tmp_path / "milvus.db"))
    index = MilvusIndex(DIM, client=client, collection="mine")
    index.upsert([1], unit(1, 0, 0, 0).reshape(1, DIM), [{}])
    client.drop_collection("mine")
    calls = (
        index.count,
        lambda: index.search(unit(1, 0, 0, 0), 1),
        lambda: index.upsert([2], unit(0, 1, 0, 0).reshape(1, DIM), [{}]),
        lambda: index.delete([1]),
    )
    for call in calls:
        with pytest.raises(VectorIndexError) as caught:
            call()
        assert type(caught.value.__cause__).__module__.startswith("pymilvus")
    client.close()


def test_close_leaves_an_injected_client_open(tmp_path: Path) -> None:
    client = MilvusClient(str(tmp_path / "milvus.db"))
    index = MilvusIndex(DIM, client=client)
    index.upsert([1], unit(1, 0, 0, 0).reshape(1, DIM), [{}])
    index.close()
    index.close()
    with pytest.raises(VectorIndexError, match="closed"):
        index.count()
    assert client.query("ember_vectors", filter="", output_fields=["count(*)"])[0]["count(*)"] == 1
    client.close()


def test_bad_arguments_raise_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.db"):
        MilvusIndex(DIM, tmp_path / "milvus")
    with pytest.raises(ValueError, match="exactly one"):
        MilvusIndex(DIM)


def test_a_second_process_cannot_open_the_same_lite_path(tmp_path: Path) -> None:
    path = tmp_path / "milvus.db"
    index = MilvusIndex(DIM, path)
    code = (
        "import sys\nfrom ember.errors import VectorIndexError\n"
        "from ember.vectors.milvus import MilvusIndex\n"
        "try:\n    MilvusIndex(4, sys.argv[1])\nexcept VectorIndexError as exc:\n"
        "    print(exc)\nelse:\n    print('opened')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    index.close()
    assert "one process only" in done.stdout
