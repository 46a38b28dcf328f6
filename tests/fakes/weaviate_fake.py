"""``FakeWeaviateServer``: a fake Weaviate in threads of the test process, on free ports.

It speaks the slice of Weaviate's protocol that ``ember.vectors.weaviate`` uses, with real
semantics (brute-force search, filters evaluated on typed properties, deletes, counts):

- REST on ``http_port``: ``GET /v1/meta``, ``GET /v1/.well-known/ready``,
  ``GET|DELETE /v1/schema/{class}``, ``POST /v1/schema``, ``POST /v1/schema/{class}/properties``.
- gRPC on ``grpc_port``: ``weaviate.v1.Weaviate`` ``BatchObjects``, ``BatchDelete``,
  ``Search`` (``near_vector``, distances ``dot`` and ``cosine``) and ``Aggregate`` (object
  count), and ``grpc.health.v1.Health/Check``.

Like a Weaviate with auto-schema off, it refuses properties the schema does not declare and
values of the wrong type. Filters support And, Or, Not, Equal, NotEqual, the four range
operators and ContainsAny; anything else answers 404 or ``UNIMPLEMENTED``.
"""

from __future__ import annotations

import json
import threading
import uuid
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import numpy as np
from google.protobuf.json_format import MessageToDict
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    batch_delete_pb2,
    batch_pb2,
    health_weaviate_pb2,
    search_get_pb2,
    weaviate_pb2_grpc,
)

VERSION = "1.33.0"
_HNSW_DEFAULTS = {
    "skip": False,
    "cleanupIntervalSeconds": 300,
    "maxConnections": 32,
    "efConstruction": 128,
    "ef": -1,
    "dynamicEfMin": 100,
    "dynamicEfMax": 500,
    "dynamicEfFactor": 8,
    "vectorCacheMaxObjects": 1_000_000_000_000,
    "flatSearchCutoff": 40000,
    "distance": "cosine",
}
_OPS = base_pb2.Filters


class _Refused(Exception):
    """A request the fake answers with an error, like Weaviate would."""


@dataclass
class _Collection:
    schema: dict[str, Any]
    objects: dict[uuid.UUID, tuple[dict[str, Any], np.ndarray]] = field(default_factory=dict)

    def types(self) -> dict[str, str]:
        return {p["name"]: p["dataType"][0] for p in self.schema["properties"]}


def _class_name(name: str) -> str:
    return name[:1].upper() + name[1:]


def _complete_property(prop: dict[str, Any]) -> dict[str, Any]:
    text = prop["dataType"][0] == "text"
    done = {"indexFilterable": True, "indexSearchable": text, "indexRangeFilters": False, **prop}
    if text:
        done.setdefault("tokenization", "word")
    return done


def _test_value(node: base_pb2.Filters) -> Any:
    kind = node.WhichOneof("test_value")
    if kind is None:
        return None
    value = getattr(node, kind)
    return list(value.values) if kind.endswith("_array") else value


def _matches(node: base_pb2.Filters, key: uuid.UUID, props: dict[str, Any]) -> bool:
    op = node.operator
    if op == _OPS.OPERATOR_AND:
        return all(_matches(child, key, props) for child in node.filters)
    if op == _OPS.OPERATOR_OR:
        return any(_matches(child, key, props) for child in node.filters)
    if op == _OPS.OPERATOR_NOT:
        return not _matches(node.filters[0], key, props)
    name = node.target.property if node.HasField("target") else node.on[0]
    expected = _test_value(node)
    actual: Any = str(key) if name == "_id" else props.get(name)
    if op == _OPS.OPERATOR_CONTAINS_ANY:
        return actual is not None and actual in expected
    if actual is None:
        return False
    if isinstance(actual, bool) != isinstance(expected, bool):
        raise _Refused(f"cannot compare property {name} with {expected!r}")
    compare = {
        _OPS.OPERATOR_EQUAL: lambda a, b: a == b,
        _OPS.OPERATOR_NOT_EQUAL: lambda a, b: a != b,
        _OPS.OPERATOR_GREATER_THAN: lambda a, b: a > b,
        _OPS.OPERATOR_GREATER_THAN_EQUAL: lambda a, b: a >= b,
        _OPS.OPERATOR_LESS_THAN: lambda a, b: a < b,
        _OPS.OPERATOR_LESS_THAN_EQUAL: lambda a, b: a <= b,
    }.get(op)
    if compare is None:
        raise _Refused(f"operator {_OPS.Operator.Name(op)} is not implemented by the fake")
    return bool(compare(actual, expected))


def _vector(vectors: Any, raw: bytes) -> np.ndarray:
    data = vectors[0].vector_bytes if len(vectors) else raw
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


class _State:
    """Every collection, behind one lock."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.lock = threading.Lock()
        self.collections: dict[str, _Collection] = {}

    def get(self, name: str) -> _Collection:
        found = self.collections.get(_class_name(name))
        if found is None:
            raise _Refused(f"collection {name} not found")
        return found

    def select(self, request: Any) -> tuple[_Collection, list[uuid.UUID]]:
        collection = self.get(request.collection)
        keys = list(collection.objects)
        if request.HasField("filters"):
            keys = [k for k in keys if _matches(request.filters, k, collection.objects[k][0])]
        return collection, keys

    def put(self, obj: batch_pb2.BatchObject) -> None:
        collection = self.get(obj.collection)
        props = MessageToDict(obj.properties.non_ref_properties)
        types = collection.types()
        for name, value in props.items():
            kind = types.get(name)
            ok = {
                "text": isinstance(value, str),
                "boolean": isinstance(value, bool),
                "number": isinstance(value, int | float) and not isinstance(value, bool),
                "int": isinstance(value, int | float) and float(value).is_integer(),
            }.get(kind or "", False)
            if not ok:
                raise _Refused(f"property {name!r}: {value!r} does not fit type {kind}")
            if kind == "int":
                props[name] = int(value)
        vector = _vector(obj.vectors, obj.vector_bytes)
        dims = {len(v) for _, v in collection.objects.values()}
        if dims and len(vector) not in dims:
            raise _Refused(f"vector lengths don't match: {len(vector)} vs {dims.pop()}")
        collection.objects[uuid.UUID(obj.uuid)] = (props, vector)


class _Grpc(weaviate_pb2_grpc.WeaviateServicer):  # type: ignore[misc]
    def __init__(self, state: _State) -> None:
        self.state = state

    def _fail(self, context: grpc.ServicerContext, exc: _Refused) -> Any:
        context.abort(grpc.StatusCode.UNKNOWN, str(exc))

    def BatchObjects(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        errors = []
        with self.state.lock:
            for index, obj in enumerate(request.objects):
                try:
                    self.state.put(obj)
                except _Refused as exc:
                    errors.append(
                        batch_pb2.BatchObjectsReply.BatchError(index=index, error=str(exc))
                    )
        return batch_pb2.BatchObjectsReply(took=0.0, errors=errors)

    def BatchDelete(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            with self.state.lock:
                collection, keys = self.state.select(request)
                if not request.dry_run:
                    for key in keys:
                        del collection.objects[key]
        except _Refused as exc:
            return self._fail(context, exc)
        return batch_delete_pb2.BatchDeleteReply(
            took=0.0, failed=0, matches=len(keys), successful=len(keys)
        )

    def Aggregate(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            with self.state.lock:
                _, keys = self.state.select(request)
        except _Refused as exc:
            return self._fail(context, exc)
        single = aggregate_pb2.AggregateReply.Single(objects_count=len(keys))
        return aggregate_pb2.AggregateReply(took=0.0, single_result=single)

    def Search(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        if not request.HasField("near_vector"):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "the fake only does near_vector")
        near = request.near_vector
        targets = near.vector_for_targets
        query = _vector(targets[0].vectors, targets[0].vector_bytes) if targets else None
        if query is None:
            query = _vector(near.vectors, near.vector_bytes)
        try:
            with self.state.lock:
                collection, keys = self.state.select(request)
                found = [(key, collection.objects[key][1]) for key in keys]
                metric = next(iter(collection.schema["vectorConfig"].values()))
                metric = metric["vectorIndexConfig"]["distance"]
        except _Refused as exc:
            return self._fail(context, exc)
        results = []
        for key, vector in found:
            if len(vector) != len(query):
                context.abort(grpc.StatusCode.UNKNOWN, "vector lengths don't match")
            dot = float(vector @ query)
            if metric == "cosine":
                dot /= float(np.linalg.norm(vector) * np.linalg.norm(query)) or 1.0
            results.append((-dot if metric == "dot" else 1.0 - dot, key))
        results.sort(key=lambda pair: pair[0])
        reply = search_get_pb2.SearchReply(took=0.0)
        for distance, key in results[: request.limit or 10]:
            meta = search_get_pb2.MetadataResult(
                id=str(key), id_as_bytes=key.bytes, distance=distance, distance_present=True
            )
            reply.results.append(
                search_get_pb2.SearchResult(
                    metadata=meta,
                    properties=search_get_pb2.PropertiesResult(
                        target_collection=collection.schema["class"]
                    ),
                )
            )
        return reply


def _health(request: Any, context: grpc.ServicerContext) -> Any:
    serving = health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING
    return health_weaviate_pb2.WeaviateHealthCheckResponse(status=serving)


class _Rest(BaseHTTPRequestHandler):
    state: _State

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")

    def _route(self, method: str) -> None:
        parts = self.path.split("?")[0].strip("/").split("/")
        try:
            with self.state.lock:
                status, body = self._answer(method, parts)
        except _Refused as exc:
            status, body = 422, {"error": [{"message": str(exc)}]}
        self._send(status, body)

    def _answer(self, method: str, parts: list[str]) -> tuple[int, Any]:
        collections = self.state.collections
        if method == "GET" and parts == ["v1", "meta"]:
            return 200, {"version": self.state.version, "hostname": "fake", "modules": {}}
        if method == "GET" and parts == ["v1", ".well-known", "ready"]:
            return 200, {}
        if parts[:2] != ["v1", "schema"]:
            return 404, {"error": [{"message": f"no route {self.path}"}]}
        if method == "POST" and len(parts) == 2:
            schema = self._body()
            schema["class"] = name = _class_name(schema["class"])
            if name in collections:
                raise _Refused(f"class name {name} already exists")
            schema["properties"] = [_complete_property(p) for p in schema.get("properties", [])]
            for vector in schema.get("vectorConfig", {}).values():
                vector.setdefault("vectorIndexType", "hnsw")
                vector["vectorIndexConfig"] = {
                    **_HNSW_DEFAULTS,
                    **vector.get("vectorIndexConfig", {}),
                }
            collections[name] = _Collection(schema)
            return 200, schema
        found = collections.get(_class_name(parts[2])) if len(parts) > 2 else None
        if found is None:
            return 404, {"error": [{"message": f"no collection {parts[2:]}"}]}
        if method == "GET" and len(parts) == 3:
            return 200, found.schema
        if method == "DELETE" and len(parts) == 3:
            del collections[found.schema["class"]]
            return 200, {}
        if method == "POST" and parts[3:] == ["properties"]:
            prop = _complete_property(self._body())
            if prop["name"] in found.types():
                raise _Refused(f"property {prop['name']} already exists")
            found.schema["properties"].append(prop)
            return 200, prop
        return 404, {"error": [{"message": f"no route {method} {self.path}"}]}

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")


class FakeWeaviateServer:
    """A fake Weaviate on ``127.0.0.1``: REST on :attr:`http_port`, gRPC on :attr:`grpc_port`.

    ``version`` is what ``/v1/meta`` reports.
    """

    def __init__(self, version: str = VERSION) -> None:
        self._state = _State(version)
        handler = type("Rest", (_Rest,), {"state": self._state})
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(_Grpc(self._state), self._grpc)
        health = grpc.unary_unary_rpc_method_handler(
            _health,
            request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
            response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString,
        )
        self._grpc.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": health}),)
        )
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self.http_port = int(self._http.server_address[1])
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The REST base URL, ``http://127.0.0.1:<http_port>``."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> FakeWeaviateServer:
        self._grpc.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(grace=None).wait()

    def object_count(self, collection: str) -> int:
        """How many objects the fake holds in ``collection`` (for white-box checks)."""
        with self._state.lock:
            return len(self._state.get(collection).objects)

    def __enter__(self) -> FakeWeaviateServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
