"""HTTP metrics over real HTTP: requests by route template, method and status class, their
latency and how many are in flight, with no client-chosen path or id among the labels."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ember.testing.metrics import sample
from tests.support.live_app import LiveApp, live_app


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with live_app(tmp_path_factory.mktemp("metrics")) as running:
        yield running


def test_requests_are_counted_by_route_template_not_by_path(app: LiveApp) -> None:
    with httpx.Client(base_url=app.url, headers=app.auth, timeout=30) as http:
        for _ in range(3):
            assert http.get("/jobs/" + uuid.uuid4().hex).status_code == 404
        assert http.get("/health").status_code == 200
        for _ in range(2):
            assert http.get(f"/no/such/{uuid.uuid4().hex}").status_code == 404
        assert http.post("/collections", json={"name": "BAD NAME"}).status_code == 422
        text = http.get("/metrics").text
    count = "ember_http_requests_total"
    job = {"route": "/jobs/{job_id}", "method": "GET", "status": "4xx"}
    assert sample(text, count, job) == 3
    assert sample(text, count, {"route": "/health", "method": "GET", "status": "2xx"}) == 1
    assert sample(text, count, {"route": "unmatched", "method": "GET", "status": "4xx"}) == 2
    assert sample(text, count, {"route": "/collections", "method": "POST", "status": "4xx"}) == 1
    seconds = {"route": "/jobs/{job_id}", "method": "GET"}
    assert sample(text, "ember_http_request_duration_seconds_count", seconds) == 3
    assert sample(text, "ember_http_request_duration_seconds_sum", seconds) > 0
    assert sample(text, "ember_http_requests_in_flight", {"method": "GET"}) == 1, "the scrape"
    assert "/no/such" not in text and "BAD NAME" not in text


def test_label_values_stay_few_whatever_clients_send(app: LiveApp) -> None:
    with httpx.Client(base_url=app.url, headers=app.auth, timeout=30) as http:
        for _ in range(40):
            http.get(f"/jobs/{uuid.uuid4().hex}/events")
            http.get(f"/{uuid.uuid4().hex}", params={"q": uuid.uuid4().hex})
        text = http.get("/metrics").text
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("ember_http"):
            continue
        values = {value for s in family.samples for value in s.labels.values()}
        assert len(family.samples) <= 200, family.name
        assert not any(len(value) >= 32 and "{" not in value for value in values), values
