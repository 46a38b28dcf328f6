"""Vector shards on a real local Ray cluster: a sharded index searches like one FAISS index,
a shard killed with unflushed writes comes back complete from the embeddings table, a stale
store is cleared and rebuilt; FAISS and Milvus Lite."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray

from ember.actors.names import NAMESPACE, shard_actor_name
from ember.actors.vector_shard import (
    RayShardedIndex,
    VectorShardActor,
    retire_shards,
    shard_actors,
    shard_record,
    sharded_index_factory,
)
from ember.config import EmberConfig, load_config
from ember.errors import DimensionMismatch, VectorIndexError
from ember.filters import parse_filter
from ember.memory.extract import SourceDocument
from ember.memory.service import MemoryService
from ember.observability import REQUEST_ID
from ember.observability.traces import RecentTraces
from ember.observability.tracing import Tracing, span
from ember.services import memory_plane
from ember.storage import Database, Migrator, NewChunk, NewVersion
from ember.storage.chunks import chunk_metadata
from ember.storage.indexes import IndexRecord, SqlIndexRegistry
from ember.testing.vector_index import DIM as CONTRACT_DIM
from ember.testing.vector_index import Reopen, VectorIndexContract
from ember.vectors.faiss import FaissIndex
from ember.vectors.protocol import VectorIndex
from ember.vectors.sharded import shard_of
from tests.support.cluster import local_ray
from tests.support.embedders import HashEmbedder, WordTokenizer
from tests.support.hub_traces import named_hub, spans_of

pytestmark = pytest.mark.slow

DIM = 32
WORDS = (
    "river mountain cell energy vaccine sleep coffee paris volcano ash plant light sugar "
    "engine wheel cloud rain snow wind stone iron gold glass paper ink bread salt honey"
).split()


def documents(count: int, seed: int) -> list[SourceDocument]:
    rng = np.random.default_rng(seed)
    return [
        SourceDocument(
            source=f"doc-{seed}-{n}.txt",
            content=" ".join(rng.choice(WORDS, size=60)).encode(),
            media_type="text/plain",
            metadata={"group": "even" if n % 2 == 0 else "odd"},
        )
        for n in range(count)
    ]


def late_version(seed: int, source: str, size: int = 9) -> tuple[NewVersion, np.ndarray]:
    """A version of ``source`` with ``size`` one-line chunks in the ``late`` group."""
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=12)) for _ in range(size)]
    version = NewVersion(
        source=source,
        title=None,
        media_type="text/plain",
        content_hash=f"{source}-{seed}",
        size_bytes=sum(map(len, texts)),
        metadata={"group": "late"},
        chunks=[NewChunk(text, 0, len(text), 12) for text in texts],
    )
    return version, HashEmbedder().embed_documents(texts)


@dataclass
class Ember:
    config: EmberConfig
    database: Database
    memory: MemoryService
    collection: str
    record: IndexRecord

    def table(self) -> FaissIndex:
        """An unsharded exact index over the embeddings table as it is now."""
        whole = FaissIndex(DIM)
        for ids, vectors, metadata in self.memory.store.embeddings(
            self.collection, HashEmbedder.model_id
        ):
            whole.upsert(ids, vectors, metadata)
        return whole

    def expected(self, shard: tuple[int, int] | None = None) -> int:
        return self.memory.store.embedding_count(
            self.collection, HashEmbedder.model_id, shard=shard
        )

    def write(self, version: NewVersion, vectors: np.ndarray) -> tuple[list[int], list[int]]:
        """Write ``version`` to the table only: (its chunk ids, the ids it retired)."""
        written = self.memory.store.write_version(
            self.collection, version, vectors, HashEmbedder.model_id
        )
        return written.chunk_ids, written.retired_chunk_ids


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    with local_ray():
        yield


def start(home: Path, backend: str, shards: int) -> Ember:
    """A memory plane under ``home`` whose index is ``shards`` shard actors, 40 documents in."""
    config = load_config(
        None,
        {
            "EMBER_HOME": str(home),
            "EMBER_MEMORY_VECTOR_BACKEND": backend,
            "EMBER_MEMORY_CHUNK_TOKENS": "16",
            "EMBER_MEMORY_CHUNK_OVERLAP": "4",
        },
    )
    database = Database.from_config(config)
    Migrator(database).upgrade()
    memory = memory_plane(
        config,
        database,
        embedder=(HashEmbedder(), WordTokenizer()),
        index_factory=sharded_index_factory(config, shards),
    )
    collection = memory.collections.create("notes").id
    report = memory.ingest("notes", documents(40, seed=1))
    assert report.index_error is None and report.chunks >= 120
    record = SqlIndexRegistry(database).live(collection)
    assert record is not None and record.backend == backend
    return Ember(config, database, memory, collection, record)


@pytest.fixture
def ember(cluster: None, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Ember]:
    backend, shards = getattr(request, "param", ("faiss", 3))
    found = start(tmp_path, backend, shards)
    try:
        yield found
    finally:
        found.memory.close()
        retire_shards(found.record.id, shards)
        found.database.dispose()


def rewrite_unflushed(ember: Ember, index: RayShardedIndex, seed: int) -> tuple[set, set]:
    """A document written and flushed, then rewritten with as many chunks in the table and
    the shards (as ingest does) but never flushed: (the live chunk ids, the retired ones).

    Every shard's count stays the same, so only the unflushed-writes marker tells a
    restarted shard that its file is stale."""
    source = f"late-{seed}.txt"
    version, vectors = late_version(seed, source)
    ids, _ = ember.write(version, vectors)
    index.upsert(ids, vectors, [chunk_metadata(version)] * len(ids))
    index.flush()
    version, vectors = late_version(seed + 1, source)
    ids, retired = ember.write(version, vectors)
    assert len(retired) == len(ids)
    index.delete(retired)
    index.upsert(ids, vectors, [chunk_metadata(version)] * len(ids))
    return set(ids), set(retired)


def until_restarted(handle: Any, deadline_s: float = 120.0) -> dict[str, Any]:
    """The restarted actor's ``info()``, once Ray has brought it back."""
    stop = time.monotonic() + deadline_s
    while time.monotonic() < stop:
        info: dict[str, Any] = ray.get(handle.info.remote())
        if info["reconstructed"]:
            return info
        time.sleep(0.1)
    raise AssertionError("the shard actor was not restarted")


def assert_searches_like_the_table(ember: Ember, index: RayShardedIndex) -> None:
    whole = ember.table()
    embedder = HashEmbedder()
    where = parse_filter({"group": "odd"})
    for query in ("river mountain rain", "coffee sleep bread", "iron gold glass ink"):
        vector = embedder.embed_query(query)
        got, want = index.search(vector, 12), whole.search(vector, 12)
        assert [hit.id for hit in got] == [hit.id for hit in want]
        assert [hit.score for hit in got] == pytest.approx([hit.score for hit in want], abs=1e-5)
        filtered = [hit.id for hit in index.search(vector, 5, where)]
        assert filtered == [hit.id for hit in whole.search(vector, 5, where)]


def test_sharded_search_equals_one_unsharded_index(ember: Ember) -> None:
    index = sharded_index_factory(ember.config, 3)(ember.record)
    assert isinstance(index, RayShardedIndex) and index.dim == DIM
    assert index.count() == ember.expected() == ember.table().count()
    assert_searches_like_the_table(ember, index)
    query = "river mountain rain"
    hits = ember.memory.search("notes", query, 5, mode="dense")
    dense = ember.table().search(HashEmbedder().embed_query(query), 5)
    assert [hit.chunk.id for hit in hits] == [hit.id for hit in dense]
    handles = shard_actors(ember.config, ember.record, 3)
    infos = ray.get([handle.info.remote() for handle in handles])
    assert [info["index"] for info in infos] == [f"{ember.record.id}-s{s}" for s in range(3)]
    counts = ray.get([handle.count.remote() for handle in handles])
    assert counts == [ember.expected((s, 3)) for s in range(3)]
    assert max(counts) - min(counts) <= 1
    for s in range(3):
        assert (ember.config.home_dir / "indexes" / f"{ember.record.id}-s{s}").is_file()
    index.close()
    with pytest.raises(VectorIndexError, match="closed"):
        index.count()
    assert ray.get(handles[0].count.remote()) == counts[0]


def test_each_shard_serves_a_search_as_a_span_of_the_callers_trace(ember: Ember) -> None:
    with named_hub(ember.config) as store:
        index = sharded_index_factory(ember.config, 3)(ember.record)
        tracing = Tracing(ember.config.tracing, "test", store=RecentTraces())
        token = REQUEST_ID.set("req-shards")
        try:
            with span(tracing.tracer("test"), "caller") as caller:
                index.search(HashEmbedder().embed_query("river"), 4)
        finally:
            REQUEST_ID.reset(token)
            tracing.shutdown()
        context = caller.get_span_context()
        spans = spans_of(store, f"{context.trace_id:032x}", 3)
    assert sorted(s.attributes["ember.vector.index"] for s in spans) == [
        f"{ember.record.id}-s{n}" for n in range(3)
    ]
    for served in spans:
        assert (served.name, served.kind, served.service) == (
            "shard search",
            "server",
            "ember-vector-shard",
        )
        assert served.parent_id == f"{context.span_id:016x}"
        assert served.attributes["ember.request_id"] == "req-shards"
        assert served.attributes["ember.vector.k"] == 4
    assert sum(s.attributes["ember.vector.hits"] for s in spans) >= 4


def everything(index: RayShardedIndex) -> set[int]:
    """Every id the index holds."""
    return {hit.id for hit in index.search(np.ones(DIM, dtype=np.float32), 10_000)}


def test_a_killed_shard_is_rebuilt_from_the_table(ember: Ember) -> None:
    index = sharded_index_factory(ember.config, 3)(ember.record)
    late, retired = rewrite_unflushed(ember, index, seed=7)
    assert index.count() == ember.expected()
    victim = shard_actors(ember.config, ember.record, 3)[1]
    ray.kill(victim, no_restart=False)
    assert index.count() == ember.expected()
    info = until_restarted(victim)
    assert info["rebuilt"] is True
    assert ray.get(victim.count.remote()) == ember.expected((1, 3))
    held = everything(index)
    assert len(held) == ember.expected()
    assert late <= held and not held & retired
    found = index.search(HashEmbedder().embed_query("x"), 100, parse_filter({"group": "late"}))
    assert {hit.id for hit in found} == late
    assert_searches_like_the_table(ember, index)


def test_a_restart_with_a_current_store_keeps_it(ember: Ember) -> None:
    index = sharded_index_factory(ember.config, 3)(ember.record)
    index.flush()
    victim = shard_actors(ember.config, ember.record, 3)[2]
    ray.kill(victim, no_restart=False)
    info = until_restarted(victim)
    assert info["rebuilt"] is False
    assert index.count() == ember.expected()


def test_fresh_actors_clear_a_stale_store(ember: Ember) -> None:
    assert retire_shards(ember.record.id, 3) == 3
    assert retire_shards(ember.record.id, 3) == 0
    folder = ember.config.home_dir / "indexes"
    phantoms = [3 * 10**9, 3 * 10**9 + 3]
    extra = FaissIndex(DIM, path=folder / f"{ember.record.id}-s0")
    extra.upsert(phantoms, np.ones((2, DIM), dtype=np.float32) / DIM**0.5, [{}, {}])
    extra.close()
    short = FaissIndex(DIM, path=folder / f"{ember.record.id}-s1")
    lost = next(
        ember.memory.store.embeddings(ember.collection, HashEmbedder.model_id, shard=(1, 3))
    )
    assert short.delete(lost[0][:5]) == 5
    short.close()
    handles = shard_actors(ember.config, ember.record, 3)
    infos = ray.get([handle.info.remote() for handle in handles])
    assert [info["rebuilt"] for info in infos] == [True, True, False]
    assert not any(info["reconstructed"] for info in infos)
    index = RayShardedIndex(handles, DIM)
    held = everything(index)
    assert len(held) == index.count() == ember.expected()
    assert not held & set(phantoms) and set(lost[0][:5]) <= held
    assert_searches_like_the_table(ember, index)


def test_shard_errors_surface_as_themselves(ember: Ember) -> None:
    index = sharded_index_factory(ember.config, 3)(ember.record)
    with pytest.raises(DimensionMismatch):
        index.search(np.ones(DIM + 1, dtype=np.float32), 3)
    with pytest.raises(ValueError, match="repeats"):
        index.upsert([1, 1], np.ones((2, DIM), dtype=np.float32), [{}, {}])
    retire_shards(ember.record.id, 3)
    with pytest.raises(VectorIndexError, match="gone"):
        index.count()


@pytest.mark.parametrize("ember", [("milvus", 2)], indirect=True, ids=["milvus-lite"])
def test_milvus_lite_shards_survive_a_kill(ember: Ember) -> None:
    index = sharded_index_factory(ember.config, 2)(ember.record)
    assert index.count() == ember.expected()
    for s in range(2):
        assert (ember.config.home_dir / "milvus" / f"{ember.record.id}-s{s}.db").is_dir()
    vector = HashEmbedder().embed_query("river mountain rain")
    want = [hit.id for hit in ember.table().search(vector, 10)]
    assert [hit.id for hit in index.search(vector, 10)] == want
    late, retired = rewrite_unflushed(ember, index, seed=9)
    victim = shard_actors(ember.config, ember.record, 2)[0]
    ray.kill(victim, no_restart=False)
    info = until_restarted(victim)
    assert info["rebuilt"] is True
    assert index.count() == ember.expected()
    assert ray.get(victim.count.remote()) == ember.expected((0, 2))
    held = everything(index)
    assert late <= held and not held & retired
    assert [hit.id for hit in index.search(vector, 10)] == [
        hit.id for hit in ember.table().search(vector, 10)
    ]


def test_shard_records_and_names() -> None:
    record = IndexRecord("abc", "c", "m", DIM, "faiss", "live", {})
    assert shard_record(record, 0, 1) is record
    assert shard_record(record, 2, 3).id == "abc-s2"
    assert shard_record(record, 2, 3).collection_id == "c"
    with pytest.raises(ValueError, match="shard"):
        shard_record(record, 3, 3)
    assert shard_actor_name("abc", 1) == "ember-shard-abc-1"
    assert NAMESPACE == "ember"


def test_the_plain_shard_rebuilds_and_reloads_without_ray(tmp_path: Path) -> None:
    config = load_config(None, {"EMBER_HOME": str(tmp_path)})
    database = Database.from_config(config)
    Migrator(database).upgrade()
    memory = memory_plane(config, database, embedder=(HashEmbedder(), WordTokenizer()))
    collection = memory.collections.create("notes").id
    memory.ingest("notes", documents(12, seed=3))
    memory.close()
    record = SqlIndexRegistry(database).live(collection)
    assert record is not None
    shards = [VectorShardActor(config, record, s, 2) for s in range(2)]
    assert [shard.info()["rebuilt"] for shard in shards] == [True, True]
    assert not any(shard.info()["reconstructed"] for shard in shards)
    counts = [shard.count() for shard in shards]
    store = memory.store
    assert counts == [
        store.embedding_count(collection, record.model_id, shard=(s, 2)) for s in range(2)
    ]
    for shard in shards:
        shard.close()
    again = VectorShardActor(config, record, 1, 2)
    assert again.info()["rebuilt"] is False
    assert again.count() == counts[1]
    ids = [i for batch in store.embeddings(collection, record.model_id) for i in batch[0]]
    assert {shard_of(i, 2) for i in ids} == {0, 1}
    again.close()
    database.dispose()


CONTRACT_SHARDS = 2


@pytest.fixture(scope="class")
def contract_shards(
    cluster: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EmberConfig, IndexRecord]]:
    """Shard actors of an index of the contract's dimension over a collection without
    embeddings (so no shard rebuilds anything), started once for the class (their handles
    held meanwhile: Ray ends an actor nobody holds, named or not)."""
    home = tmp_path_factory.mktemp("contract-shards")
    config = load_config(None, {"EMBER_HOME": str(home)})
    database = Database.from_config(config)
    Migrator(database).upgrade()
    record = IndexRecord(
        f"contract-{uuid.uuid4().hex[:8]}", "none", "none", CONTRACT_DIM, "faiss", "live", {}
    )
    held = shard_actors(config, record, CONTRACT_SHARDS)
    try:
        yield config, record
        del held
    finally:
        retire_shards(record.id, CONTRACT_SHARDS)
        database.dispose()


def emptied(index: RayShardedIndex) -> RayShardedIndex:
    """``index`` with every entry deleted (the shard actors outlive each test)."""
    held = index.count()
    if held:
        hits = index.search(np.ones(CONTRACT_DIM, dtype=np.float32), held)
        index.delete([hit.id for hit in hits])
    assert index.count() == 0
    return index


class TestRayShardedIndex(VectorIndexContract):
    """The VectorIndex contract over two FAISS shard actors, shared by the class's tests and
    emptied before each. ``reopen`` closes the index (which releases its handles only) and
    opens another over the same running actors, as a second process would: a restarted
    actor rebuilds its shard from the embeddings table, and these entries are not in it."""

    @pytest.fixture
    def index(self, contract_shards: tuple[EmberConfig, IndexRecord]) -> Iterator[RayShardedIndex]:
        config, record = contract_shards
        handles = shard_actors(config, record, CONTRACT_SHARDS)
        index = emptied(RayShardedIndex(handles, CONTRACT_DIM))
        yield index
        index.close()

    @pytest.fixture
    def reopen(self, contract_shards: tuple[EmberConfig, IndexRecord]) -> Reopen:
        config, record = contract_shards

        def again(index: VectorIndex) -> VectorIndex:
            index.close()
            return RayShardedIndex(shard_actors(config, record, CONTRACT_SHARDS), CONTRACT_DIM)

        return again
