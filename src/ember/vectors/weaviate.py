"""Weaviate through weaviate-client v4: REST for the schema, gRPC for writes and searches.

One collection per index. ember supplies the vectors (a self-provided named vector
``default``, no vectorizer), indexed by HNSW with ``dot`` distance, so a hit's score is minus
its distance: the inner product. The collection description records ``ember dim=<dim>``, which
is how a reopened index knows its dimension. Needs Weaviate 1.33 or later (``Not`` filters).

Ids: object UUID is ``UUID(int=id)``, deterministic and reversible; the id is also stored in
the property ``ember_id`` as decimal text (gRPC batches carry numbers as doubles, which hold
integers exactly only up to 2**53, and ids go up to 2**63 - 1).

Metadata: one property per key and kind, so filters never compare values of different kinds
(as :func:`~ember.filters.matches` does): strings go to ``s_<key>`` (TEXT, ``field``
tokenization, so equality is on the whole string), numbers to ``n_<key>`` (NUMBER; integers
are exact up to 2**53) and booleans to ``b_<key>`` (BOOL). Keys keep ``[A-Za-z0-9]`` and
escape the rest: ``_`` becomes ``__``, ``.`` becomes ``_d`` and ``-`` becomes ``_h``
(``doc.page_no`` -> ``n_doc_dpage__no``); keys outside the filter grammar's field names are not
stored. Properties are added to the schema the first time a key of that kind arrives.

Filters become ``weaviate.classes.query.Filter`` trees: ``$ne`` is ``Not(Equal)`` and ``$nin``
``Not(Or(Equal...))``, so entries without the property match them. Every weaviate-client
error surfaces as :class:`~ember.errors.VectorIndexError`.

Connecting skips the client's start-up checks (one of them asks PyPI for the latest client
version); the constructor reads ``/v1/meta`` instead, which fails fast when the server is
down.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import weaviate
from weaviate.classes.config import (
    Configure,
    DataType,
    Property,
    Tokenization,
    VectorDistances,
)
from weaviate.classes.data import DataObject
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.classes.query import Filter as WeaviateFilter
from weaviate.classes.query import MetadataQuery
from weaviate.collections.classes.filters import _Filters
from weaviate.exceptions import WeaviateBaseError

from ember.errors import DimensionMismatch, VectorIndexError
from ember.filters import And, Condition, Filter, Or, Scalar
from ember.vectors._validation import checked_batch, checked_query, scalar_metadata
from ember.vectors.protocol import Vector, VectorHit

__all__ = ["MAX_K", "WeaviateIndex", "property_name", "weaviate_filter"]

MAX_K = 10_000
_BATCH = 500
_VECTOR = "default"
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_ESCAPES = str.maketrans({"_": "__", ".": "_d", "-": "_h"})
_DIM = re.compile(r"\bember dim=(\d+)\b")
_ID_PROPERTY = Property(name="ember_id", data_type=DataType.TEXT, tokenization=Tokenization.FIELD)
_KINDS: dict[str, tuple[str, DataType]] = {
    "str": ("s_", DataType.TEXT),
    "num": ("n_", DataType.NUMBER),
    "bool": ("b_", DataType.BOOL),
}


def _kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "bool"
    return "str" if isinstance(value, str) else "num"


def property_name(key: str, value: Scalar) -> str:
    """The Weaviate property holding metadata ``key`` when its value has ``value``'s kind."""
    return _KINDS[_kind(value)][0] + key.translate(_ESCAPES)


def _stored(value: Scalar) -> Scalar:
    return float(value) if _kind(value) == "num" else value


def _equal(field: str, value: Scalar) -> _Filters:
    return WeaviateFilter.by_property(property_name(field, value)).equal(_stored(value))


def weaviate_filter(node: Filter) -> _Filters:
    """A Weaviate filter selecting what ``matches(node, metadata)`` selects."""
    if isinstance(node, And):
        return WeaviateFilter.all_of([weaviate_filter(item) for item in node.items])
    if isinstance(node, Or):
        return WeaviateFilter.any_of([weaviate_filter(item) for item in node.items])
    condition: Condition = node
    if isinstance(condition.value, tuple):
        anyone = WeaviateFilter.any_of([_equal(condition.field, v) for v in condition.value])
        return anyone if condition.op == "$in" else WeaviateFilter.not_(anyone)
    value = condition.value
    if condition.op in ("$eq", "$ne"):
        equal = _equal(condition.field, value)
        return equal if condition.op == "$eq" else WeaviateFilter.not_(equal)
    target = WeaviateFilter.by_property(property_name(condition.field, value))
    compare = {
        "$gt": target.greater_than,
        "$gte": target.greater_or_equal,
        "$lt": target.less_than,
        "$lte": target.less_or_equal,
    }[condition.op]
    return compare(_stored(value))


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except WeaviateBaseError as exc:
        raise VectorIndexError(f"Weaviate {action} failed: {exc}") from exc


class WeaviateIndex:
    """A :class:`~ember.vectors.protocol.VectorIndex` in one Weaviate collection.

    :param dim: the vector dimension; an existing collection must have it.
    :param client: an already connected ``weaviate.WeaviateClient``; the caller keeps owning
        it. Without one, the index connects to ``host`` itself and closes the client on close.
    :param host: the server's host, for REST on ``http_port`` and gRPC on ``grpc_port``.
    :param secure: use https and TLS for gRPC.
    :param api_key: the server's API key, if it wants one.
    :param collection: the collection name (Weaviate capitalizes the first letter).
    :param ef: HNSW candidate list length at search time (for a new collection).
    :param max_connections: HNSW neighbours per node (for a new collection).
    :param ef_construction: HNSW candidate list length while adding (for a new collection).
    :param timeout_s: the client's query and insert timeout (connecting gets 5 s).
    :raises DimensionMismatch: the collection exists with another dimension.
    :raises VectorIndexError: the server cannot be reached or is older than 1.33, or the
        collection exists but was not made by ember.
    """

    def __init__(
        self,
        dim: int,
        client: weaviate.WeaviateClient | None = None,
        *,
        host: str = "127.0.0.1",
        http_port: int = 8080,
        grpc_port: int = 50051,
        secure: bool = False,
        api_key: str | None = None,
        collection: str = "EmberVectors",
        ef: int = 64,
        max_connections: int = 32,
        ef_construction: int = 200,
        timeout_s: float = 30.0,
    ) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self._dim = dim
        self._owns_client = client is None
        if client is None:
            with _translated(f"connect to {host}:{http_port}"):
                client = weaviate.connect_to_custom(
                    http_host=host,
                    http_port=http_port,
                    http_secure=secure,
                    grpc_host=host,
                    grpc_port=grpc_port,
                    grpc_secure=secure,
                    auth_credentials=Auth.api_key(api_key) if api_key else None,
                    additional_config=AdditionalConfig(
                        timeout=Timeout(init=5, query=timeout_s, insert=timeout_s)
                    ),
                    skip_init_checks=True,
                )
        self._client: weaviate.WeaviateClient | None = client
        try:
            self._properties = self._open(collection, ef, max_connections, ef_construction)
        except BaseException:
            self._release()
            raise
        self._collection = client.collections.get(collection)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        dim: int,
        collection: str = "EmberVectors",
        grpc_port: int = 50051,
        api_key: str | None = None,
    ) -> WeaviateIndex:
        """Connect to ``http(s)://host[:port]`` (REST) and ``grpc_port`` on the same host."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s)://host[:port] URL, got {url!r}")
        secure = parts.scheme == "https"
        return cls(
            dim,
            host=parts.hostname,
            http_port=parts.port or (443 if secure else 80),
            grpc_port=grpc_port,
            secure=secure,
            api_key=api_key,
            collection=collection,
        )

    @property
    def dim(self) -> int:
        """The dimension every vector must have."""
        return self._dim

    def _live(self) -> weaviate.WeaviateClient:
        if self._client is None:
            raise VectorIndexError("this WeaviateIndex is closed")
        return self._client

    def _open(self, name: str, ef: int, max_connections: int, ef_construction: int) -> set[str]:
        client = self._live()
        with _translated("open collection"):
            version = str(client.get_meta().get("version", "0"))
            if tuple(int(p) for p in re.findall(r"\d+", version)[:2]) < (1, 33):
                raise VectorIndexError(f"Weaviate {version} is too old: ember needs 1.33+")
            if not client.collections.exists(name):
                client.collections.create(
                    name,
                    description=f"ember dim={self._dim}",
                    vector_config=Configure.Vectors.self_provided(
                        name=_VECTOR,
                        vector_index_config=Configure.VectorIndex.hnsw(
                            distance_metric=VectorDistances.DOT,
                            ef=ef,
                            max_connections=max_connections,
                            ef_construction=ef_construction,
                        ),
                    ),
                    properties=[
                        Property(
                            name="ember_id",
                            data_type=DataType.TEXT,
                            tokenization=Tokenization.FIELD,
                        )
                    ],
                )
            config = client.collections.get(name).config.get(simple=True)
        found = _DIM.search(config.description or "")
        if found is None:
            raise VectorIndexError(f"collection {name} was not made by ember (no dim recorded)")
        if int(found.group(1)) != self._dim:
            raise DimensionMismatch(f"collection {name} has dimension {found.group(1)}")
        return {prop.name for prop in config.properties}

    def _ensure_properties(self, rows: Sequence[dict[str, Scalar]]) -> None:
        wanted: dict[str, DataType] = {}
        for row in rows:
            for name, value in row.items():
                if name not in self._properties:
                    wanted[name] = _KINDS[_kind(value)][1]
        for name, data_type in wanted.items():
            tokenization = Tokenization.FIELD if data_type == DataType.TEXT else None
            with _translated(f"add property {name}"):
                self._collection.config.add_property(
                    Property(name=name, data_type=data_type, tokenization=tokenization)
                )
            self._properties.add(name)

    def upsert(
        self, ids: Sequence[int], vectors: Vector, metadata: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert the entries, replacing any with the same id (see ``VectorIndex.upsert``)."""
        self._live()
        keys, matrix = checked_batch(self._dim, ids, vectors, metadata)
        rows: list[dict[str, Scalar]] = [
            {
                property_name(key, value): _stored(value)
                for key, value in scalar_metadata(meta).items()
                if _FIELD.fullmatch(key)
            }
            for meta in metadata
        ]
        self._ensure_properties(rows)
        for i, row in zip(keys.tolist(), rows, strict=True):
            row["ember_id"] = str(i)
        objects = [
            DataObject(
                uuid=uuid.UUID(int=i),
                properties={**row, "ember_id": str(i)},
                vector={_VECTOR: vector},
            )
            for i, vector, row in zip(keys.tolist(), matrix.tolist(), rows, strict=True)
        ]
        with _translated("upsert"):
            for start in range(0, len(objects), _BATCH):
                done = self._collection.data.insert_many(objects[start : start + _BATCH])
                if done.has_errors:
                    first = next(iter(done.errors.values()))
                    raise VectorIndexError(f"Weaviate refused an object: {first.message}")

    def delete(self, ids: Sequence[int]) -> int:
        """Remove the entries with these ids; unknown ids are ignored. Returns how many went."""
        self._live()
        wanted = sorted({int(i) for i in ids})
        gone = 0
        with _translated("delete"):
            for start in range(0, len(wanted), _BATCH):
                uuids = [uuid.UUID(int=i) for i in wanted[start : start + _BATCH]]
                done = self._collection.data.delete_many(
                    where=WeaviateFilter.by_id().contains_any(uuids)
                )
                gone += done.successful
        return gone

    def search(self, vector: Vector, k: int, where: Filter | None = None) -> list[VectorHit]:
        """The ``k`` entries closest to ``vector`` whose metadata matches ``where``, best first.

        ``k`` is capped at Weaviate's query limit of 10000.
        """
        self._live()
        query = checked_query(self._dim, vector, k)
        if k == 0:
            return []
        with _translated("search"):
            found = self._collection.query.near_vector(
                near_vector=query[0].tolist(),
                target_vector=_VECTOR,
                limit=min(k, MAX_K),
                filters=None if where is None else weaviate_filter(where),
                return_metadata=MetadataQuery(distance=True),
                return_properties=[],
            )
        hits = [
            VectorHit(-float(hit.metadata.distance or 0.0), hit.uuid.int) for hit in found.objects
        ]
        return sorted(hits, reverse=True)

    def count(self) -> int:
        """How many entries the collection holds."""
        self._live()
        with _translated("count"):
            total = self._collection.aggregate.over_all(total_count=True).total_count
        return int(total or 0)

    def flush(self) -> None:
        """Nothing to do: Weaviate acknowledges a batch only once it is in its write-ahead log."""
        self._live()

    def close(self) -> None:
        """Close the client if this index opened it; the index is unusable after."""
        self._release()

    def _release(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            with _translated("close"):
                client.close()
