"""Bad input at the front door gets a 4xx with a stable code, never a 500 or a silent stream,
and no answer or job row carries the database's SQL: each attack, over real HTTP against the
whole app (:func:`tests.support.live_app.live_app`)."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from ember.jobs.states import TERMINAL, JobState
from tests.support.live_app import LiveApp, live_app

pytestmark = pytest.mark.slow

INT64_MAX = 2**63 - 1
SQL_WORDS = ("SELECT", "sqlite3", "[SQL", "[parameters", "OperationalError", "chunks_fts")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with live_app(tmp_path_factory.mktemp("front-door")) as running:
        yield running


@pytest.fixture(scope="module")
def client(app: LiveApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app.url, headers=app.auth, timeout=30) as http:
        created = http.post("/collections", json={"name": "kb"})
        assert created.status_code == 201, created.text
        ingested = http.post(
            "/collections/kb/documents",
            json={
                "documents": [{"source": "a.txt", "text": "Bees make honey.", "metadata": {"n": 1}}]
            },
        )
        assert ingested.status_code == 200, ingested.text
        yield http


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status
    assert not any(word in response.text for word in SQL_WORDS), response.text
    return body


def until_final(app: LiveApp, job_id: str) -> Any:
    deadline = time.monotonic() + 60
    while (job := app.jobs.get(job_id)).state not in TERMINAL:
        assert time.monotonic() < deadline, f"job {job_id} never finished"
        time.sleep(0.05)
    return job


@pytest.mark.parametrize("route", ["search", "context"])
@pytest.mark.parametrize(
    ("where", "says"),
    [
        ({"n": 2**70}, "integers must fit in 64 bits"),
        ({"n": {"$lt": -(2**63) - 1}}, "integers must fit in 64 bits"),
        ({"n": {"$in": list(range(1200))}}, "more than 256 terms"),
        ({"$or": [{"n": i} for i in range(300)]}, "memory.max_filter_terms"),
        ({"n": "a\x00b"}, "NUL"),
    ],
)
def test_a_filter_past_a_limit_is_invalid_filter(
    client: httpx.Client, route: str, where: dict[str, Any], says: str
) -> None:
    body = {"query": "bees", "filter": where}
    if route == "context":
        body["budget_tokens"] = 50
    answer = problem(client.post(f"/collections/kb/{route}", json=body), 422, "invalid_filter")
    assert says in answer["detail"]


def test_an_infinite_number_is_invalid_filter(client: httpx.Client) -> None:
    raw = b'{"query": "bees", "filter": {"n": {"$gt": -Infinity}}}'
    sent = client.post(
        "/collections/kb/search", content=raw, headers={"Content-Type": "application/json"}
    )
    assert (
        problem(sent, 422, "invalid_filter")["detail"] == "n.$gt: numbers must be finite, got -inf"
    )


def test_filters_at_the_limits_still_search(client: httpx.Client) -> None:
    for where in [{"n": INT64_MAX}, {"n": {"$gte": -(2**63)}}, {"n": 1e308}]:
        found = client.post("/collections/kb/search", json={"query": "bees", "filter": where})
        assert found.status_code == 200, found.text
    widest = {"n": {"$in": list(range(256))}}
    hits = client.post("/collections/kb/search", json={"query": "bees", "filter": widest})
    assert [hit["source"] for hit in hits.json()["hits"]] == ["a.txt"]


def _b64(text: bytes) -> str:
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!!",
        "AAAA",
        _b64(b"2020-01-01T00:00:00|0123"),  # a time without a zone
        _b64(b"0001-01-01T00:00:00+14:00|0123"),  # before year 1 in UTC
        _b64(b"2020-01-01T00:00:00+00:00|' OR 1=1 --"),
        _b64(b"\xff\xfe|x"),
    ],
)
def test_a_forged_job_cursor_is_invalid_cursor(client: httpx.Client, cursor: str) -> None:
    answer = problem(client.get("/jobs", params={"cursor": cursor}), 400, "invalid_cursor")
    assert "not one ember gave out" in answer["detail"]


def test_job_pages_still_follow_their_cursor(client: httpx.Client, app: LiveApp) -> None:
    for text in ("one", "two", "three"):
        submitted = client.post("/jobs", json={"kind": "chat", "input": _chat(text)})
        assert submitted.status_code == 201, submitted.text
    first = client.get("/jobs", params={"limit": 2}).json()
    rest = client.get("/jobs", params={"limit": 2, "cursor": first["next_cursor"]})
    assert rest.status_code == 200, rest.text
    assert {job["id"] for job in first["jobs"]}.isdisjoint(j["id"] for j in rest.json()["jobs"])


@pytest.mark.parametrize("after", ["a\x00b", "Name", "../kb", " kb"])
def test_a_forged_collection_cursor_is_invalid_cursor(client: httpx.Client, after: str) -> None:
    problem(client.get("/collections", params={"after": after}), 400, "invalid_cursor")
    page = client.get("/collections", params={"after": "ka"})
    assert page.status_code == 200 and [c["name"] for c in page.json()["items"]] == ["kb"]


def _chat(text: str) -> dict[str, Any]:
    return {"model": "default", "messages": [{"role": "user", "content": text}]}


def test_a_stream_position_past_64_bits_is_refused_before_the_stream(
    client: httpx.Client, app: LiveApp
) -> None:
    job = client.post("/jobs", json={"kind": "chat", "input": _chat("hello there")}).json()
    assert until_final(app, job["id"]).state is JobState.SUCCEEDED
    events = f"/jobs/{job['id']}/events"
    for params, headers in [
        ({"after": 2**63}, {}),
        ({"after": 2**64 + 5}, {}),
        ({}, {"Last-Event-ID": str(2**63)}),
        ({}, {"Last-Event-ID": "-1"}),
        ({}, {"Last-Event-ID": "nine"}),
    ]:
        answer = problem(
            client.get(events, params=params, headers=headers), 422, "validation_failed"
        )
        assert answer["errors"], answer
    whole = client.get(events)
    assert whole.status_code == 200 and "event: state" in whole.text
    last = client.get(events, headers={"Last-Event-ID": str(INT64_MAX)})
    assert last.status_code == 200, last.text
    assert "event:" not in last.text, "nothing comes after the largest event id"


def test_an_ask_job_never_stores_sql_in_its_error(
    client: httpx.Client, app: LiveApp, tmp_path: Path
) -> None:
    ask = {"collection": "kb", "question": "What do bees make?", "model": "default"}
    refused = client.post("/jobs", json={"kind": "ask", "input": {**ask, "filter": {"n": 2**70}}})
    assert "64 bits" in problem(refused, 422, "validation_failed")["detail"]

    wide = {**ask, "filter": {"n": {"$in": list(range(300))}}}
    job = client.post("/jobs", json={"kind": "ask", "input": wide}).json()
    failed = until_final(app, job["id"])
    assert failed.error_code == "invalid_filter", failed.error_detail
    assert "memory.max_filter_terms" in (failed.error_detail or "")

    database = app.services.config.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as connection:
        connection.execute("ALTER TABLE chunks_fts RENAME TO chunks_fts_away")
    try:
        job = client.post("/jobs", json={"kind": "ask", "input": ask}).json()
        broken = until_final(app, job["id"])
    finally:
        with sqlite3.connect(database) as connection:
            connection.execute("ALTER TABLE chunks_fts_away RENAME TO chunks_fts")
    assert broken.state is JobState.FAILED
    assert broken.error_code == "storage_error", broken.error_detail
    assert broken.error_detail == "the database could not carry out the request"
    result = client.get(f"/jobs/{job['id']}/result")
    problem(result, 500, "storage_error")
    shown = client.get(f"/jobs/{job['id']}").json()
    assert not any(word in str(shown) for word in SQL_WORDS), shown


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/v1/embeddings", {"model": "x", "input": "a", "ember": {"provider": "nope"}}, {}),
        (
            "/v1/chat/completions",
            {"model": "default", "messages": [{"role": "user", "content": "hi"}]},
            {"X-Ember-Provider": "nope"},
        ),
    ],
)
def test_a_provider_that_does_not_exist_is_the_callers_mistake(
    client: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]
) -> None:
    answer = client.post(path, json=body, headers=headers)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "provider_model_not_found"
    assert "no provider is called 'nope'" in answer.json()["error"]["message"]


def test_openapi_declares_every_error_with_its_shape(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    assert (
        "invalid_cursor" in spec["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
    )
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    declared = {
        ("/jobs", "get"): {"400", "422"},
        ("/jobs/{job_id}", "get"): {"404"},
        ("/jobs/{job_id}/events", "get"): {"404", "422"},
        ("/collections", "get"): {"400", "422"},
        ("/collections/{name}/search", "post"): {"400", "404", "413", "422"},
    }
    for (path, method), statuses in declared.items():
        responses = spec["paths"][path][method]["responses"]
        assert statuses <= set(responses), (path, method, sorted(responses))
        for status in statuses:
            content = responses[status]["content"]
            assert content == {"application/problem+json": {"schema": problem_ref}}
    chat = spec["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert set(chat) >= {"400", "404", "429", "502", "503", "504"}
    assert chat["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OpenAIError"
    }


def test_a_websocket_position_past_64_bits_is_refused(client: httpx.Client, app: LiveApp) -> None:
    job = client.post("/jobs", json={"kind": "chat", "input": _chat("socket")}).json()
    until_final(app, job["id"])
    url = app.url.replace("http://", "ws://") + f"/jobs/{job['id']}/ws"
    with pytest.raises(InvalidStatus) as refused:  # a denial before the handshake completes
        connect(f"{url}?after={2**63}", additional_headers=app.auth).close()
    assert refused.value.response.status_code == 422  # validation_failed, as on /events
    with connect(f"{url}?after=0", additional_headers=app.auth) as socket:
        assert json.loads(socket.recv(timeout=30))["seq"] == 1
