"""``GET /collections/{name}/export`` and ``POST /collections/{name}/import`` over HTTP: the
lines ``ember collections export`` writes, a round trip into a new collection that searches
the same, the first bad line named with a stable code, workspaces kept apart, the body cap."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ember.auth import SqlWorkspaceRepository
from ember.config import load_config
from ember.serve_app import AppContext, build_context, create_app
from ember.services import memory_plane
from ember.storage import Database, Migrator
from tests.support.app import TEST_HOST
from tests.support.embedders import HashEmbedder, WordTokenizer
from tests.support.planes import DOCS

REMOTE = ("203.0.113.7", 50000)
NDJSON = {"Content-Type": "application/x-ndjson"}
QUERIES = ["otters sleep", "bees dance flowers", "moon tides"]

Client = Callable[..., TestClient]


@contextmanager
def hashed_context(home: Path, **settings: str) -> Iterator[AppContext]:
    """The app context of an ember at ``home`` whose memory plane embeds with the hash
    embedder (no model to load)."""
    config = load_config(None, {"EMBER_HOME": str(home), **TEST_HOST, **settings})
    database = Database.from_config(config)
    Migrator(database).upgrade()
    memory = memory_plane(config, database, embedder=(HashEmbedder(), WordTokenizer()))
    context = build_context(config, memory=memory)
    try:
        yield context
    finally:
        memory.close()
        context.database.dispose()
        database.dispose()


@pytest.fixture
def context(tmp_path: Path) -> Iterator[AppContext]:
    with hashed_context(tmp_path / "home") as context:
        SqlWorkspaceRepository(context.database).create("team-b")
        yield context


def client_of(context: AppContext) -> Client:
    def make(*scopes: str, workspace: str = "default", name: str = "x") -> TestClient:
        secret = context.tokens.create(name, name, list(scopes), workspace=workspace)[1]
        client = TestClient(create_app(context), raise_server_exceptions=False, client=REMOTE)
        client.headers["Authorization"] = f"Bearer {secret}"
        return client

    return make


@pytest.fixture
def as_(context: AppContext) -> Client:
    return client_of(context)


@pytest.fixture
def writer(as_: Client) -> TestClient:
    """A reader and writer of the default workspace, with ``notes`` holding :data:`DOCS`."""
    client = as_("memory:read", "memory:write", name="alice")
    assert (
        client.post("/collections", json={"name": "notes", "description": "d"}).status_code == 201
    )
    documents = [{"source": source, "text": text.decode()} for source, text in DOCS.items()]
    ingested = client.post("/collections/notes/documents", json={"documents": documents})
    assert ingested.status_code == 200 and ingested.json()["created"] == len(DOCS), ingested.text
    return client


def searched(client: TestClient, collection: str) -> list[list[tuple[str, str, float]]]:
    results = []
    for query in QUERIES:
        answer = client.post(f"/collections/{collection}/search", json={"query": query, "k": 5})
        assert answer.status_code == 200, answer.text
        results.append(
            [(h["source"], h["text"], round(h["score"], 5)) for h in answer.json()["hits"]]
        )
    return results


def problem_of(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["code"] == code, body
    return body


def test_the_export_is_the_lines_the_cli_writes(
    context: AppContext, writer: TestClient, tmp_path: Path
) -> None:
    answer = writer.get("/collections/notes/export")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-ndjson"
    assert answer.headers["content-disposition"] == 'attachment; filename="notes.jsonl"'
    path = tmp_path / "notes.ember.gz"
    assert context.memory.export("notes", path) == len(DOCS)
    with gzip.open(path, "rt", encoding="utf-8") as cli:
        assert answer.text == cli.read()
    header, *documents = answer.text.splitlines()
    assert json.loads(header)["collection"]["name"] == "notes"
    assert sorted(json.loads(line)["source"] for line in documents) == sorted(DOCS)


def test_a_round_trip_into_a_new_collection_gives_the_same_documents_and_searches(
    context: AppContext, writer: TestClient
) -> None:
    exported = writer.get("/collections/notes/export").text
    imported = writer.post("/collections/copy/import", content=exported, headers=NDJSON)
    assert imported.status_code == 201, imported.text
    assert imported.json() == {"collection": "copy", "added": len(DOCS)}
    copy = writer.get("/collections/copy").json()
    assert copy["description"] == "d"
    again = writer.get("/collections/copy/export").text
    assert again.splitlines()[1:] == exported.splitlines()[1:], "the same documents and vectors"
    assert searched(writer, "copy") == searched(writer, "notes")
    hits = writer.post("/collections/copy/search", json={"query": "otters", "k": 1}).json()["hits"]
    assert hits[0]["source"] == "otters.md"
    entries = context.audit.list(action="collection.import")
    assert [(e.actor, e.resource, e.outcome, e.detail) for e in entries] == [
        ("alice", "collection:copy", "ok", {"documents": len(DOCS)})
    ]
    taken = writer.post("/collections/copy/import", content=exported, headers=NDJSON)
    problem_of(taken, 409, "collection_exists")


def _vector(size: int) -> str:
    return base64.b64encode(np.ones(size, np.float32).tobytes()).decode()


def test_a_bad_line_is_422_naming_it_and_nothing_is_imported(writer: TestClient) -> None:
    header, first, *rest = writer.get("/collections/notes/export").text.splitlines()
    short = json.loads(first)
    short["vectors"] = [_vector(8) for _ in short["vectors"]]
    extra = json.loads(first)
    extra["surprise"] = True
    missing = json.loads(first)
    missing["vectors"] = missing["vectors"] * 2
    cases: list[tuple[list[str], int, str, int]] = [
        ([header, first, "this is not json", *rest], 422, "invalid_export_line", 3),
        ([header, first, json.dumps(extra), *rest], 422, "invalid_export_line", 3),
        ([header, json.dumps(missing), *rest], 422, "invalid_export_line", 2),
        ([header, json.dumps(short), *rest], 422, "dimension_mismatch", 2),
        (['{"format": "something-else"}', first], 422, "invalid_export_line", 1),
        ([header.replace('"version": 1', '"version": 9'), first], 422, "invalid_export_line", 1),
        ([], 422, "invalid_export_line", 1),
        ([json.dumps({**json.loads(header), "dim": 0}), first], 422, "invalid_export_line", 1),
    ]
    for lines, status, code, line in cases:
        body = "".join(f"{text}\n" for text in lines)
        answer = writer.post("/collections/broken/import", content=body, headers=NDJSON)
        problem = problem_of(answer, status, code)
        assert problem["line"] == line, (code, problem)
        assert problem["detail"].startswith(f"line {line}: "), problem["detail"]
        assert writer.get("/collections/broken").status_code == 404, "all or nothing"
    latin = (header + "\n" + first + "\n").encode() + b'{"source": "caf\xe9"}\n'
    problem = problem_of(
        writer.post("/collections/broken/import", content=latin, headers=NDJSON),
        422,
        "invalid_export_line",
    )
    assert problem["line"] == 3
    assert writer.get("/collections/broken").status_code == 404


def test_the_body_must_be_json_lines(writer: TestClient) -> None:
    exported = writer.get("/collections/notes/export").text
    answer = writer.post(
        "/collections/other/import", content=exported, headers={"Content-Type": "text/plain"}
    )
    problem_of(answer, 415, "unsupported_media_type")
    as_json = writer.post(
        "/collections/other/import",
        content=exported,
        headers={"Content-Type": "application/x-ndjson; charset=utf-8"},
    )
    assert as_json.status_code == 201, as_json.text
    bad_name = writer.post("/collections/Not%20a%20Name/import", content=exported, headers=NDJSON)
    problem_of(bad_name, 422, "validation_failed")


def test_workspaces_and_scopes_hold(as_: Client, writer: TestClient) -> None:
    exported = writer.get("/collections/notes/export").text
    bob = as_("memory:read", "memory:write", workspace="team-b", name="bob")
    problem_of(bob.get("/collections/notes/export"), 404, "collection_not_found")
    mine = bob.post("/collections/notes/import", content=exported, headers=NDJSON)
    assert mine.status_code == 201, "the name is free in team-b"
    assert [c["name"] for c in bob.get("/collections").json()["items"]] == ["notes"]
    assert bob.get("/collections/notes/export").text.splitlines()[1:] == (exported.splitlines()[1:])
    assert [c["name"] for c in writer.get("/collections").json()["items"]] == ["notes"]
    reader = as_("memory:read", name="reader")
    refused = reader.post("/collections/copy/import", content=exported, headers=NDJSON)
    assert problem_of(refused, 403, "forbidden")["required_scope"] == "memory:write"
    only_writes = as_("memory:write", name="pusher")
    refused = only_writes.get("/collections/notes/export")
    assert problem_of(refused, 403, "forbidden")["required_scope"] == "memory:read"


def test_an_import_is_capped_like_an_upload_before_any_work(tmp_path: Path) -> None:
    """An import may be as large as ``server.max_upload_bytes`` (exports carry vectors), not
    the smaller cap of other bodies; past it, 413 before any work."""
    caps = {"EMBER_SERVER_MAX_BODY_BYTES": "4096", "EMBER_SERVER_MAX_UPLOAD_BYTES": "8192"}
    with hashed_context(tmp_path / "small", **caps) as context:
        client = client_of(context)("memory:read", "memory:write")
        header = json.dumps({"format": "ember-collection", "version": 1})
        within = header + "\n" + "x" * 5000 + "\n"
        answer = client.post("/collections/big/import", content=within, headers=NDJSON)
        assert answer.status_code == 422, "over the body cap, under the upload cap: read"
        body = header + "\n" + "x" * 8192 + "\n"
        answer = client.post("/collections/big/import", content=body, headers=NDJSON)
        problem = problem_of(answer, 413, "request_too_large")
        assert problem["limit_bytes"] == 8192
        assert client.get("/collections/big").status_code == 404
