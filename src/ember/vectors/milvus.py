"""Milvus through pymilvus' ``MilvusClient``: Milvus Lite in a local ``.db`` path, or a server.

``uri`` is either a local path ending in ``.db`` (Milvus Lite: an embedded Milvus whose data
is a directory at that path) or a server URI (``http://host:19530``). Only one process may
open a Milvus Lite path at a time, so exactly one owner (an actor) holds a ``MilvusIndex`` on
it and everyone else goes through that owner.

Collection schema: ``id`` INT64 primary key (the ember id), ``vector`` FLOAT_VECTOR(dim)
indexed for metric IP, and ``metadata`` JSON. The JSON keeps scalar values apart by kind,
``{"str": {...}, "num": {...}, "bool": {...}}``, because Milvus compares ``true == 1`` as equal
while ember's filters never match values of different kinds. :func:`milvus_expression`
translates a filter into a Milvus boolean expression on those paths: ``$in``/``$nin`` become
``==``/``!=`` chains (Milvus Lite has no ``in`` on JSON paths) and ``$ne``/``$nin`` also
accept entries without the field (``not exists``), as :func:`~ember.filters.matches`
does. Non-finite numbers cannot be written in an expression and raise ``InvalidFilter``.

Writes are visible to searches at once (consistency level Strong); :meth:`MilvusIndex.flush`
seals them into indexed segments, which makes searches much faster, so an upsert flushes by
itself after ``auto_flush_rows`` unflushed rows. ``k`` is capped at Milvus' limit of 16384.
Every pymilvus error surfaces as :class:`~ember.errors.VectorIndexError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pymilvus import DataType, MilvusClient, MilvusException  # type: ignore[import-untyped]

from ember.errors import DimensionMismatch, InvalidFilter, VectorIndexError
from ember.filters import And, Condition, Filter, Or, Scalar
from ember.vectors._validation import checked_batch, checked_query, scalar_metadata
from ember.vectors.protocol import Vector, VectorHit

__all__ = ["MilvusIndex", "milvus_expression"]

MAX_K = 16384
_BATCH = 1000
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})


def _kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "bool"
    return "str" if isinstance(value, str) else "num"


def _literal(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.translate(_ESCAPES) + '"'
    if not math.isfinite(value):
        raise InvalidFilter(f"Milvus expressions cannot hold the number {value!r}")
    return repr(value)


def _condition(field: str, op: str, value: Scalar) -> str:
    path = f'metadata["{_kind(value)}"]["{field}"]'
    literal = _literal(value)
    if op == "$ne":
        return f"((not exists {path}) or {path} != {literal})"
    symbol = {"$eq": "==", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
    return f"{path} {symbol} {literal}"


def milvus_expression(node: Filter) -> str:
    """A Milvus boolean expression selecting what ``matches(node, metadata)`` selects.

    :raises InvalidFilter: a number is infinite.
    """
    if isinstance(node, And | Or):
        joiner = " and " if isinstance(node, And) else " or "
        return "(" + joiner.join(milvus_expression(item) for item in node.items) + ")"
    condition: Condition = node
    if condition.op in ("$in", "$nin"):
        assert isinstance(condition.value, tuple)
        single = "$eq" if condition.op == "$in" else "$ne"
        joiner = " or " if condition.op == "$in" else " and "
        parts = (_condition(condition.field, single, value) for value in condition.value)
        return "(" + joiner.join(parts) + ")"
    assert not isinstance(condition.value, tuple)
    return _condition(condition.field, condition.op, condition.value)


def _typed(metadata: Mapping[str, Any]) -> dict[str, dict[str, Scalar]]:
    groups: dict[str, dict[str, Scalar]] = {"str": {}, "num": {}, "bool": {}}
    for key, value in scalar_metadata(metadata).items():
        groups[_kind(value)][key] = value
    return groups


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except MilvusException as exc:
        raise VectorIndexError(f"Milvus {action} failed: {exc}") from exc


class MilvusIndex:
    """A :class:`~ember.vectors.protocol.VectorIndex` in one Milvus collection.

    :param dim: the vector dimension; an existing collection must have it.
    :param uri: a local ``.db`` path (Milvus Lite; its parent is created) or a server URI.
        Ignored when ``client`` is given.
    :param collection: the collection name (created when missing).
    :param token: the server's credentials (``"user:password"`` or an API key).
    :param index_type: the vector index built for a new collection (``AUTOINDEX``, ``FLAT``,
        ``HNSW``, ...), with ``index_params`` such as ``{"M": 32, "efConstruction": 200}``.
    :param search_params: per-search parameters such as ``{"ef": 64}``.
    :param client: an already connected ``MilvusClient``; the caller keeps owning it.
    :param auto_flush_rows: flush by itself once this many upserted rows are unflushed.
    :raises DimensionMismatch: the collection exists with another dimension.
    :raises VectorIndexError: Milvus cannot be opened, or the collection has another schema.
    """

    def __init__(
        self,
        dim: int,
        uri: str | Path | None = None,
        *,
        collection: str = "ember_vectors",
        token: str = "",
        index_type: str = "AUTOINDEX",
        index_params: Mapping[str, Any] | None = None,
        search_params: Mapping[str, Any] | None = None,
        client: Any = None,
        auto_flush_rows: int = 10_000,
    ) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        if (uri is None) == (client is None):
            raise ValueError("give exactly one of uri and client")
        self._dim = dim
        self._name = collection
        self._search_params = dict(search_params or {})
        self._auto_flush_rows = auto_flush_rows
        self._unflushed = 0
        self._lite_path: str | None = None
        if client is None:
            target = str(uri)
            if "://" not in target and not target.startswith("unix:"):
                if not target.endswith(".db"):
                    raise ValueError(f"a Milvus Lite path must end in .db, got {target!r}")
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                self._lite_path = target
            action = (
                "connect" if self._lite_path is None else f"open of {target} (one process only)"
            )
            with _translated(action):
                client = MilvusClient(uri=target, token=token)
            self._owns_client = True
        else:
            self._owns_client = False
        self._client: Any = client
        try:
            self._open_collection(index_type, dict(index_params or {}))
        except BaseException:
            self._release()
            raise

    @property
    def dim(self) -> int:
        """The dimension every vector must have."""
        return self._dim

    def _open(self) -> Any:
        if self._client is None:
            raise VectorIndexError("this MilvusIndex is closed")
        return self._client

    def _open_collection(self, index_type: str, index_params: dict[str, Any]) -> None:
        client = self._open()
        with _translated("open collection"):
            if client.has_collection(self._name):
                described = client.describe_collection(self._name)
                fields = {field["name"]: field for field in described["fields"]}
                if set(fields) != {"id", "vector", "metadata"}:
                    raise VectorIndexError(f"collection {self._name} has fields {sorted(fields)}")
                found = int(fields["vector"]["params"]["dim"])
                if found != self._dim:
                    raise DimensionMismatch(f"collection {self._name} has dimension {found}")
            else:
                schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
                schema.add_field("id", DataType.INT64, is_primary=True)
                schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self._dim)
                schema.add_field("metadata", DataType.JSON)
                index = client.prepare_index_params()
                index.add_index(
                    field_name="vector",
                    index_type=index_type,
                    metric_type="IP",
                    params=index_params,
                )
                client.create_collection(self._name, schema=schema, consistency_level="Strong")
                # Milvus Lite builds the index within the call; waiting would only poll (0.5 s).
                client.create_index(self._name, index, sync=self._lite_path is None)
            client.load_collection(self._name)

    def upsert(
        self, ids: Sequence[int], vectors: Vector, metadata: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert the entries, replacing any with the same id (see ``VectorIndex.upsert``)."""
        keys, matrix = checked_batch(self._dim, ids, vectors, metadata)
        rows = [
            {"id": i, "vector": vector, "metadata": _typed(meta)}
            for i, vector, meta in zip(keys.tolist(), matrix.tolist(), metadata, strict=True)
        ]
        with _translated("upsert"):
            for start in range(0, len(rows), _BATCH):
                self._open().upsert(self._name, rows[start : start + _BATCH])
        self._unflushed += len(rows)
        if self._unflushed >= self._auto_flush_rows:
            self.flush()

    def delete(self, ids: Sequence[int]) -> int:
        """Remove the entries with these ids; unknown ids are ignored. Returns how many went."""
        wanted = sorted({int(i) for i in ids})
        gone = 0
        with _translated("delete"):
            for start in range(0, len(wanted), _BATCH):
                chunk = wanted[start : start + _BATCH]
                found = self._open().query(
                    self._name, filter=f"id in {chunk}", output_fields=["id"], limit=len(chunk)
                )
                present = [int(row["id"]) for row in found]
                if present:
                    self._open().delete(self._name, ids=present)
                gone += len(present)
        return gone

    def search(self, vector: Vector, k: int, where: Filter | None = None) -> list[VectorHit]:
        """The ``k`` entries closest to ``vector`` whose metadata matches ``where``, best first."""
        query = checked_query(self._dim, vector, k)
        expression = "" if where is None else milvus_expression(where)
        if k == 0:
            return []
        with _translated("search"):
            found = self._open().search(
                self._name,
                data=[query[0].tolist()],
                limit=min(k, MAX_K),
                filter=expression,
                output_fields=["id"],
                search_params={"metric_type": "IP", "params": self._search_params},
            )
        hits = [VectorHit(float(hit["distance"]), int(hit["id"])) for hit in found[0]]
        return sorted(hits, reverse=True)

    def count(self) -> int:
        """How many entries the collection holds."""
        with _translated("count"):
            rows = self._open().query(self._name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def flush(self) -> None:
        """Seal every write so far into persisted, indexed segments."""
        with _translated("flush"):
            self._open().flush(self._name)
        self._unflushed = 0

    def close(self) -> None:
        """Flush, then close the client if this index opened it (and stop Milvus Lite)."""
        if self._client is None:
            return
        try:
            self.flush()
        finally:
            self._release()

    def _release(self) -> None:
        client, self._client = self._client, None
        if not self._owns_client or client is None:
            return
        with _translated("close"):
            client.close()
        if self._lite_path is not None:
            from milvus_lite.server_manager import (  # type: ignore[import-untyped]
                server_manager_instance,
            )

            server_manager_instance.release_server(self._lite_path)
