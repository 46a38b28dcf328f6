"""Trust over real HTTP on each database (SQLite and a real Postgres server): workspaces hide
each other's collections and jobs, a job needs the scopes of its kind, and bad input is a 4xx
with a stable code, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ember.auth import SqlWorkspaceRepository
from tests.support.live_app import LiveApp, live_app

pytestmark = pytest.mark.slow

MEMBER = ["jobs:read", "jobs:write", "memory:read", "memory:write", "models:use"]


@dataclass
class World:
    app: LiveApp
    a: httpx.Client
    b: httpx.Client
    reader: httpx.Client


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    with live_app(tmp_path, {"EMBER_DATABASE_URL": database_url}) as app:
        services = app.services
        SqlWorkspaceRepository(services.database).create("team-b")

        def client(*scopes: str, workspace: str = "default", name: str) -> httpx.Client:
            secret = services.tokens.create(name, name, list(scopes), workspace=workspace)[1]
            return httpx.Client(
                base_url=app.url, headers={"Authorization": f"Bearer {secret}"}, timeout=60
            )

        clients = (
            client(*MEMBER, name="alice"),
            client(*MEMBER, workspace="team-b", name="bea"),
            client("jobs:read", "jobs:write", "memory:read", "models:use", name="rita"),
        )
        try:
            yield World(app, *clients)
        finally:
            for each in clients:
                each.close()


def until_done(client: httpx.Client, job_id: str) -> dict[str, object]:
    with client.stream("GET", f"/jobs/{job_id}/events") as stream:
        for _ in stream.iter_lines():
            pass
    job: dict[str, object] = client.get(f"/jobs/{job_id}").json()
    return job


def test_workspaces_hide_collections_and_jobs(world: World) -> None:
    a, b = world.a, world.b
    assert a.post("/collections", json={"name": "kb"}).status_code == 201
    docs = {"documents": [{"source": "s.txt", "text": "The vault code is 0451."}]}
    assert a.post("/collections/kb/documents", json=docs).status_code == 200
    job = a.post(
        "/jobs",
        json={"kind": "ingest", "input": {"collection": "kb", "documents": docs["documents"]}},
    ).json()
    assert until_done(a, job["id"])["state"] == "succeeded"
    assert "kb" not in {c["name"] for c in b.get("/collections").json()["items"]}
    for response in (
        b.get("/collections/kb"),
        b.post("/collections/kb/search", json={"query": "vault code"}),
        b.post("/collections/kb/documents", json=docs),
        b.delete("/collections/kb"),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "collection_not_found"
    for path in (f"/jobs/{job['id']}", f"/jobs/{job['id']}/events"):
        hidden = b.get(path)
        assert hidden.status_code == 404 and hidden.json()["code"] == "job_not_found"
    assert job["id"] not in {j["id"] for j in b.get("/jobs").json()["jobs"]}
    assert b.post("/collections", json={"name": "kb"}).status_code == 201
    hits = a.post("/collections/kb/search", json={"query": "vault code"}).json()["hits"]
    assert [hit["source"] for hit in hits] == ["s.txt"]


def test_a_job_needs_the_scopes_of_its_kind(world: World) -> None:
    refused = world.reader.post(
        "/jobs",
        json={"kind": "ingest", "input": {"collection": "x", "create": True, "documents": []}},
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["required_scope"] == "memory:write"
    allowed = world.reader.post("/jobs", json={"kind": "generate", "input": {"prompt": "hi"}})
    assert allowed.status_code == 201, allowed.text


def test_bad_input_is_a_4xx_with_a_stable_code(world: World) -> None:
    a = world.a
    assert a.post("/collections", json={"name": "kb"}).status_code == 201
    huge = a.post("/collections/kb/search", json={"query": "x", "filter": {"n": 2**70}})
    assert huge.status_code == 422 and huge.json()["code"] == "invalid_filter"
    wide = a.post(
        "/collections/kb/search",
        json={"query": "x", "filter": {"n": {"$in": list(range(1200))}}},
    )
    assert wide.status_code == 422 and wide.json()["code"] == "invalid_filter"
    forged = a.get("/jobs", params={"cursor": "bm90IGEgY3Vyc29y"})
    assert forged.status_code == 400 and forged.json()["code"] == "invalid_cursor"
    job = a.post("/jobs", json={"kind": "generate", "input": {"prompt": "hi"}}).json()
    beyond = a.get(f"/jobs/{job['id']}/events", params={"after": 2**63})
    assert beyond.status_code == 422 and beyond.json()["code"] == "validation_failed"
