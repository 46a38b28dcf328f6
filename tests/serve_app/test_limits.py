"""Size and count limits over real HTTP, each at its edge: exactly at the cap passes, one over
is refused with its stable code before any work."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ember.chat import MAX_COMPLETION_TOKENS, MAX_MESSAGES
from tests.serve_app.conftest import Ember, Serve

BODY_CAP = 2048
UPLOAD_CAP = 8192


@pytest.fixture
def small(serve: Serve) -> Ember:
    """An ember with small caps, so that each edge is cheap to reach."""
    return serve(
        EMBER_SERVER_MAX_BODY_BYTES=str(BODY_CAP),
        EMBER_SERVER_MAX_UPLOAD_BYTES=str(UPLOAD_CAP),
        EMBER_SERVER_MAX_JOB_INPUT_BYTES="200",
        EMBER_MEMORY_MAX_DOCUMENT_BYTES="1000",
        EMBER_MEMORY_MAX_METADATA_BYTES="64",
        EMBER_MEMORY_MAX_BEIR_LINES="3",
    )


def padded(document: Any, size: int) -> bytes:
    """``document`` as JSON of exactly ``size`` bytes (trailing whitespace is still JSON)."""
    data = json.dumps(document).encode()
    assert len(data) <= size
    return data + b" " * (size - len(data))


def chunks(data: bytes, size: int = 500) -> Iterator[bytes]:
    """``data`` as a body without Content-Length (sent chunked)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


JSON = {"Content-Type": "application/json"}


def assert_code(reply: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    body: dict[str, Any] = reply.json()
    assert body["code"] == code, body
    return body


def test_a_body_at_the_cap_passes_and_one_byte_over_is_413(small: Ember) -> None:
    url = f"{small.url}/collections"
    at_cap = padded({"name": "at-cap", "description": "d"}, BODY_CAP)
    assert httpx.post(url, content=at_cap, headers=JSON).status_code == 201
    over = padded({"name": "over", "description": "d"}, BODY_CAP + 1)
    body = assert_code(httpx.post(url, content=over, headers=JSON), 413, "request_too_large")
    assert body["limit_bytes"] == BODY_CAP
    assert [c["name"] for c in httpx.get(url).json()["items"]] == ["at-cap"]


def test_a_body_without_content_length_is_counted_as_it_arrives(small: Ember) -> None:
    url = f"{small.url}/collections"
    at_cap = padded({"name": "streamed"}, BODY_CAP)
    reply = httpx.post(url, content=chunks(at_cap), headers=JSON)
    assert reply.status_code == 201, reply.text
    over = padded({"name": "streamed-over"}, BODY_CAP + 1)
    assert_code(httpx.post(url, content=chunks(over), headers=JSON), 413, "request_too_large")
    assert [c["name"] for c in httpx.get(url).json()["items"]] == ["streamed"]


def test_document_uploads_have_their_own_larger_cap(small: Ember) -> None:
    assert httpx.post(f"{small.url}/collections", json={"name": "kb"}).status_code == 201
    documents = [{"source": f"d{i}.txt", "text": f"fact {i} " * 100} for i in range(8)]
    url = f"{small.url}/collections/kb/documents"
    reply = httpx.post(url, content=padded({"documents": documents}, UPLOAD_CAP), headers=JSON)
    assert reply.status_code == 200, reply.text
    assert reply.json()["created"] == 8
    over = padded({"documents": documents}, UPLOAD_CAP + 1)
    body = assert_code(httpx.post(url, content=over, headers=JSON), 413, "request_too_large")
    assert body["limit_bytes"] == UPLOAD_CAP
    search = padded({"query": "fact"}, BODY_CAP + 1)
    reply = httpx.post(f"{small.url}/collections/kb/search", content=search, headers=JSON)
    assert_code(reply, 413, "request_too_large")


def test_document_text_metadata_and_beir_lines_at_their_caps(small: Ember) -> None:
    assert httpx.post(f"{small.url}/collections", json={"name": "kb"}).status_code == 201
    url = f"{small.url}/collections/kb/documents"

    def ingest(document: dict[str, Any]) -> httpx.Response:
        return httpx.post(url, json={"documents": [{"source": "a.txt", **document}]})

    assert ingest({"text": "word " * 200}).json()["created"] == 1
    body = assert_code(ingest({"text": "word " * 200 + "x"}), 413, "document_too_large")
    assert body["limit_bytes"] == 1000
    as_pdf = base64.b64encode(b"x" * 1001).decode()
    assert_code(ingest({"content_base64": as_pdf}), 413, "document_too_large")

    metadata = {"team": "a" * 53}
    assert len(json.dumps(metadata, separators=(",", ":"))) == 64
    reply = ingest({"source": "m.txt", "text": "tagged words", "metadata": metadata})
    assert reply.status_code == 200, reply.text
    metadata = {"team": "a" * 54}
    body = assert_code(ingest({"text": "tagged", "metadata": metadata}), 422, "validation_failed")
    assert body["errors"][0]["path"] == "body.documents.0.metadata"

    lines = [json.dumps({"_id": str(i), "text": f"line {i}"}) for i in range(4)]
    beir = {"source": "corpus.jsonl", "media_type": "application/x-beir+jsonl"}
    reply = ingest({**beir, "text": "\n".join(lines[:3]) + "\n"})
    assert reply.status_code == 200 and reply.json()["created"] == 3, reply.text
    body = assert_code(ingest({**beir, "text": "\n".join(lines)}), 422, "validation_failed")
    assert body["errors"][0]["path"] == "body.documents.0.text"


def test_a_job_input_at_the_cap_passes_and_one_byte_over_is_413(small: Ember) -> None:
    url = f"{small.url}/jobs"
    base = len(json.dumps({"prompt": ""}, separators=(",", ":")))
    prompt = "p" * (200 - base)
    assert (
        httpx.post(url, json={"kind": "generate", "input": {"prompt": prompt}}).status_code == 201
    )
    reply = httpx.post(url, json={"kind": "generate", "input": {"prompt": prompt + "p"}})
    assert assert_code(reply, 413, "request_too_large")["limit_bytes"] == 200


def messages(count: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": "x"}] * count


def test_model_calls_cap_max_tokens_and_messages(serve: Serve) -> None:
    ember = serve()
    url = f"{ember.url}/v1/chat/completions"
    at_cap = {"model": "ticker/m", "messages": messages(MAX_MESSAGES)}
    reply = httpx.post(url, json={**at_cap, "max_tokens": MAX_COMPLETION_TOKENS})
    assert reply.status_code == 200, reply.text
    for over in [
        {**at_cap, "max_tokens": MAX_COMPLETION_TOKENS + 1},
        {**at_cap, "max_completion_tokens": MAX_COMPLETION_TOKENS + 1},
        {**at_cap, "messages": messages(MAX_MESSAGES + 1)},
    ]:
        error = httpx.post(url, json=over).json()["error"]
        assert error["code"] == "validation_failed", over.keys()
    completions = {"model": "ticker/m", "prompt": "x"}
    reply = httpx.post(
        f"{ember.url}/v1/completions", json={**completions, "max_tokens": MAX_COMPLETION_TOKENS}
    )
    assert reply.status_code == 200
    reply = httpx.post(
        f"{ember.url}/v1/completions", json={**completions, "max_tokens": MAX_COMPLETION_TOKENS + 1}
    )
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "validation_failed"

    ollama = {"model": "ticker/m", "stream": False, "messages": messages(MAX_MESSAGES)}
    options = {"num_predict": MAX_COMPLETION_TOKENS}
    reply = httpx.post(f"{ember.url}/api/chat", json={**ollama, "options": options})
    assert reply.status_code == 200, reply.text
    options = {"num_predict": MAX_COMPLETION_TOKENS + 1}
    reply = httpx.post(f"{ember.url}/api/chat", json={**ollama, "options": options})
    assert reply.status_code == 400 and reply.json()["code"] == "validation_failed"
    reply = httpx.post(f"{ember.url}/api/chat", json={**ollama, "messages": messages(1001)})
    assert reply.status_code == 400 and reply.json()["code"] == "validation_failed"
    generate = {"model": "ticker/m", "stream": False, "prompt": "x", "options": options}
    reply = httpx.post(f"{ember.url}/api/generate", json=generate)
    assert reply.status_code == 400 and reply.json()["code"] == "validation_failed"


def test_llm_jobs_cap_max_tokens_and_messages(serve: Serve) -> None:
    ember = serve()
    url = f"{ember.url}/jobs"
    chat = {"model": "ticker/m", "messages": messages(MAX_MESSAGES)}
    job = {"kind": "chat", "input": {**chat, "max_tokens": MAX_COMPLETION_TOKENS}}
    assert httpx.post(url, json=job).status_code == 201
    job = {"kind": "chat", "input": {**chat, "max_tokens": MAX_COMPLETION_TOKENS + 1}}
    assert_code(httpx.post(url, json=job), 422, "validation_failed")
    job = {"kind": "chat", "input": {**chat, "messages": messages(MAX_MESSAGES + 1)}}
    assert_code(httpx.post(url, json=job), 422, "validation_failed")
    job = {"kind": "generate", "input": {"prompt": "x", "max_tokens": MAX_COMPLETION_TOKENS + 1}}
    assert_code(httpx.post(url, json=job), 422, "validation_failed")
