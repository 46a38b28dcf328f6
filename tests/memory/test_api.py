"""The memory routes over HTTP (in-process ASGI), with the real model and FAISS."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ember.config import load_config
from ember.serve_app import build_context, create_app
from ember.services import memory_plane
from ember.storage import Database, Migrator
from tests.memory.test_extract import pdf_with_text

pytestmark = pytest.mark.slow


@pytest.fixture
def client(tmp_path: Path, embedder, tokenizer) -> Iterator[TestClient]:
    config = load_config(
        None, {"EMBER_HOME": str(tmp_path), "EMBER_SERVER_ALLOWED_HOSTS": "testserver"}
    )
    database = Database.from_config(config)
    Migrator(database).upgrade()
    memory = memory_plane(config, database, embedder=(embedder, tokenizer))
    app = create_app(build_context(config, memory=memory))
    with TestClient(app, client=("127.0.0.1", 50000)) as test_client:
        assert test_client.post("/collections", json={"name": "kb"}).status_code == 201
        yield test_client
    memory.close()
    database.dispose()


def test_ingest_search_and_context_over_http(client: TestClient) -> None:
    beir = "\n".join(
        json.dumps({"_id": f"b{i}", "title": f"Fact {i}", "text": text})
        for i, text in enumerate(["Bees make honey.", "Penguins cannot fly."])
    )
    body = {
        "documents": [
            {"source": "a.txt", "text": "Octopuses have three hearts.", "metadata": {"t": "sea"}},
            {
                "source": "p.pdf",
                "content_base64": base64.b64encode(pdf_with_text("Diamonds are carbon")).decode(),
            },
            {"source": "corpus.jsonl", "text": beir, "media_type": "application/x-beir+jsonl"},
            {"source": "broken.bin", "content_base64": base64.b64encode(b"\x00\x00").decode()},
            {"source": "bad64.pdf", "content_base64": "***"},
        ]
    }
    response = client.post("/collections/kb/documents", json=body)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["failed"]) == (4, 2)
    statuses = {d["source"]: d["status"] for d in report["documents"]}
    assert statuses["b0"] == statuses["p.pdf"] == "created"
    codes = {d["error_code"] for d in report["documents"] if d["status"] == "failed"}
    assert codes == {"binary_document", "validation_failed"}

    hits = client.post(
        "/collections/kb/search", json={"query": "how many hearts", "k": 2, "explain": True}
    ).json()["hits"]
    assert hits[0]["source"] == "a.txt" and hits[0]["metadata"]["t"] == "sea"
    assert hits[0]["explain"]["dense_rank"] == 1
    plain = client.post("/collections/kb/search", json={"query": "carbon"}).json()["hits"]
    assert plain[0]["source"] == "p.pdf" and plain[0]["explain"] is None

    packed = client.post(
        "/collections/kb/context", json={"query": "honey bees", "budget_tokens": 40}
    ).json()
    assert packed["tokens_used"] <= 40 and packed["text"].startswith("[1] b0")
    assert packed["chunks"][0]["source"] == "b0"
    assert packed["chunks"][0]["text"] and packed["chunks"][0]["text"] in packed["text"]
    assert {d["reason"] for d in packed["dropped"]} <= {"over_budget", "near_duplicate"}


def test_memory_errors_are_problems(client: TestClient) -> None:
    bad_filter = client.post(
        "/collections/kb/search", json={"query": "x", "filter": {"year": {"$near": 3}}}
    )
    assert bad_filter.status_code == 422
    assert bad_filter.json()["code"] == "invalid_filter"
    assert "$near" in bad_filter.json()["detail"]
    both = client.post(
        "/collections/kb/documents",
        json={"documents": [{"source": "x", "text": "a", "content_base64": "YQ=="}]},
    )
    assert both.status_code == 422 and both.json()["code"] == "validation_failed"
    missing = client.post("/collections/nope/search", json={"query": "x"})
    assert missing.status_code == 404 and missing.json()["code"] == "collection_not_found"
    empty = client.post("/collections/kb/documents", json={"documents": []})
    assert empty.status_code == 422
