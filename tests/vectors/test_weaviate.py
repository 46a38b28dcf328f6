"""WeaviateIndex: the contract against the fake server, and a real one when configured.

Set ``EMBER_TEST_WEAVIATE_URL`` (for example ``http://127.0.0.1:8080``; gRPC on
``EMBER_TEST_WEAVIATE_GRPC_PORT``, default 50051) to run every contract test against a real
Weaviate as well. The fake always runs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import weaviate

from ember.errors import DimensionMismatch, VectorIndexError
from ember.filters import parse_filter
from ember.testing.vector_index import DIM, Reopen, VectorIndexContract, unit
from ember.vectors.protocol import VectorIndex
from ember.vectors.weaviate import WeaviateIndex, property_name
from tests.fakes.weaviate_fake import FakeWeaviateServer
from tests.support.postgres import free_port

REAL_URL = os.environ.get("EMBER_TEST_WEAVIATE_URL")
REAL_GRPC_PORT = int(os.environ.get("EMBER_TEST_WEAVIATE_GRPC_PORT", "50051"))
SERVERS = ["fake", "real"] if REAL_URL else ["fake"]


@dataclass
class Target:
    """Where a test's index lives: a server and a collection of its own."""

    url: str
    grpc_port: int
    collection: str

    def open(self, dim: int = DIM) -> WeaviateIndex:
        return WeaviateIndex.from_url(
            self.url, dim=dim, collection=self.collection, grpc_port=self.grpc_port
        )

    def drop(self) -> None:
        host = self.url.split("//")[1].split(":")[0]
        port = int(self.url.rsplit(":", 1)[1])
        with weaviate.connect_to_local(
            host=host, port=port, grpc_port=self.grpc_port, skip_init_checks=True
        ) as client:
            client.collections.delete(self.collection)


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeWeaviateServer]:
    with FakeWeaviateServer() as server:
        yield server


@pytest.fixture(params=SERVERS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "fake":
        server: FakeWeaviateServer = request.getfixturevalue("fake_server")
        url, grpc_port = server.url, server.grpc_port
    else:
        assert REAL_URL is not None
        url, grpc_port = REAL_URL, REAL_GRPC_PORT
    found = Target(url, grpc_port, f"EmberTest{uuid.uuid4().hex[:12]}")
    yield found
    found.drop()


def test_real_server_answers() -> None:
    """Says in the test report whether the contract also ran against a real server."""
    if not REAL_URL:
        pytest.skip("EMBER_TEST_WEAVIATE_URL is not set: the contract ran against the fake only")
    host = REAL_URL.split("//")[1].split(":")[0]
    port = int(REAL_URL.rsplit(":", 1)[1])
    with weaviate.connect_to_local(host=host, port=port, grpc_port=REAL_GRPC_PORT) as client:
        assert client.is_ready()


class TestWeaviateIndex(VectorIndexContract):
    @pytest.fixture
    def index(self, target: Target) -> Iterator[WeaviateIndex]:
        index = target.open()
        yield index
        index.close()

    @pytest.fixture
    def reopen(self, target: Target) -> Iterator[Reopen]:
        opened: list[WeaviateIndex] = []

        def again(index: VectorIndex) -> VectorIndex:
            index.close()
            opened.append(target.open())
            return opened[-1]

        yield again
        for index in opened:
            index.close()


def test_property_names_keep_kinds_apart_and_escape_keys() -> None:
    assert property_name("lang", "en") == "s_lang"
    assert property_name("year", 2020) == "n_year"
    assert property_name("year", 20.5) == "n_year"
    assert property_name("flag", True) == "b_flag"
    assert property_name("doc.page_no", 1) == "n_doc_dpage__no"
    keys = ["a_d", "a.", "a__", "a_", "a-", "a_h", "A"]
    assert len({property_name(key, "x") for key in keys}) == len(keys)


@pytest.fixture
def fake_target(fake_server: FakeWeaviateServer) -> Iterator[Target]:
    found = Target(fake_server.url, fake_server.grpc_port, f"Fake{uuid.uuid4().hex[:12]}")
    yield found
    found.drop()


def test_reopening_with_another_dimension_raises(fake_target: Target) -> None:
    fake_target.open().close()
    with pytest.raises(DimensionMismatch):
        fake_target.open(dim=DIM + 1)


def test_a_collection_not_made_by_ember_is_refused(fake_target: Target) -> None:
    with weaviate.connect_to_local(
        port=int(fake_target.url.rsplit(":", 1)[1]),
        grpc_port=fake_target.grpc_port,
        skip_init_checks=True,
    ) as client:
        client.collections.create(fake_target.collection)
        with pytest.raises(VectorIndexError, match="not made by ember"):
            WeaviateIndex(DIM, client, collection=fake_target.collection)
        assert client.is_connected()


def test_keys_outside_the_grammar_are_not_stored(
    fake_target: Target, fake_server: FakeWeaviateServer
) -> None:
    index = fake_target.open()
    index.upsert([1], unit(1, 0, 0, 0).reshape(1, DIM), [{"bad key": "x", "ok": "y"}])
    hits = index.search(unit(1, 0, 0, 0), 5, parse_filter({"ok": "y"}))
    assert [hit.id for hit in hits] == [1]
    assert fake_server.object_count(fake_target.collection) == 1
    index.close()


def test_vendor_errors_become_vector_index_errors(fake_target: Target) -> None:
    index = fake_target.open()
    index.upsert([1], unit(1, 0, 0, 0).reshape(1, DIM), [{"lang": "en"}])
    fake_target.drop()
    calls = (
        index.count,
        lambda: index.search(unit(1, 0, 0, 0), 1),
        lambda: index.upsert([2], unit(0, 1, 0, 0).reshape(1, DIM), [{}]),
        lambda: index.delete([1]),
    )
    for call in calls:
        with pytest.raises(VectorIndexError) as caught:
            call()
        assert isinstance(caught.value.__cause__, weaviate.exceptions.WeaviateBaseError)
    index.close()
    fake_target.open().close()


def test_an_unreachable_server_raises_vector_index_error() -> None:
    with pytest.raises(VectorIndexError, match="connect"):
        WeaviateIndex(DIM, http_port=free_port(), grpc_port=free_port())


def test_an_old_server_is_refused() -> None:
    with (
        FakeWeaviateServer(version="1.32.9") as server,
        pytest.raises(VectorIndexError, match="old"),
    ):
        WeaviateIndex.from_url(server.url, dim=DIM, grpc_port=server.grpc_port)


def test_close_leaves_an_injected_client_open(fake_target: Target) -> None:
    with weaviate.connect_to_local(
        port=int(fake_target.url.rsplit(":", 1)[1]),
        grpc_port=fake_target.grpc_port,
        skip_init_checks=True,
    ) as client:
        index = WeaviateIndex(DIM, client, collection=fake_target.collection)
        index.upsert([1], np.ones((1, DIM), dtype=np.float32) / 2, [{}])
        index.close()
        index.close()
        with pytest.raises(VectorIndexError, match="closed"):
            index.count()
        collection = client.collections.get(fake_target.collection)
        assert collection.aggregate.over_all(total_count=True).total_count == 1


def test_from_url_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="http"):
        WeaviateIndex.from_url("grpc://127.0.0.1:50051", dim=DIM)
