"""Metrics from every process of a cluster: two Serve replicas and two job workers record
through Ray's metrics pipeline, and one scrape of ``GET /metrics`` shows their sums."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import httpx
import pytest
import ray
from prometheus_client.parser import text_string_to_metric_families

from ember.actors.metrics import RayMetrics, cluster_text
from ember.actors.names import DISPATCHER, NAMESPACE
from ember.observability.metrics import Metrics
from ember.testing.metrics import FAMILIES as CONTRACT_FAMILIES
from ember.testing.metrics import MetricsContract, sample
from tests.support.cluster import ember_config, importable_tests, running_ember

pytestmark = pytest.mark.slow

REQUESTS = 40
JOBS = 6
INTERVAL = "RAY_metrics_report_interval_ms"
"""Ray's report interval, read by every process it starts (1 s instead of 10 s)."""


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    importable_tests()
    before = os.environ.get(INTERVAL)
    os.environ[INTERVAL] = "1000"
    config = ember_config(
        tmp_path_factory.mktemp("metrics"),
        EMBER_RAY_NUM_CPUS="4",
        EMBER_RAY_DASHBOARD="false",
        EMBER_SERVE_NUM_REPLICAS="2",
        EMBER_SERVE_NUM_CPUS="0.1",
        EMBER_JOBS_PLUGINS="tests.jobs.plugin:kinds",
        EMBER_JOBS_WORKERS_MIN="2",
        EMBER_JOBS_SLOTS_PER_WORKER="1",
        EMBER_JOBS_POLL_INTERVAL_S="0.2",
        EMBER_MODELS_BUNDLED="false",
        EMBER_AUTH_RATE_LIMIT_PER_S="0",
    )
    try:
        with running_ember(config) as ember:
            yield ember.url
    finally:
        if before is None:
            os.environ.pop(INTERVAL, None)
        else:
            os.environ[INTERVAL] = before


def scraped(url: str, name: str, labels: dict[str, str], want: float) -> str:
    """``/metrics`` once sample ``name`` reached ``want`` (Ray reports every second)."""
    deadline = time.monotonic() + 60
    while True:
        text = httpx.get(f"{url}/metrics", timeout=30).text
        if sample(text, name, labels) == want or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


def test_one_scrape_sums_two_replicas_and_two_workers(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(REQUESTS):
            assert http.get("/health").status_code == 200
        jobs = [
            http.post("/jobs", json={"kind": "steps", "input": {"steps": 2, "step_s": 0.05}})
            for _ in range(JOBS)
        ]
        assert all(job.status_code == 201 for job in jobs), jobs[0].text
        deadline = time.monotonic() + 120
        for job in jobs:
            while http.get(f"/jobs/{job.json()['id']}").json()["state"] != "succeeded":
                assert time.monotonic() < deadline
                time.sleep(0.1)
    health = {"route": "/health", "method": "GET", "status": "2xx"}
    text = scraped(url, "ember_http_requests_total", health, REQUESTS)
    assert sample(text, "ember_http_requests_total", health) == REQUESTS
    attempts = {"kind": "steps", "outcome": "ok"}
    text = scraped(url, "ember_job_attempts_total", attempts, JOBS)
    assert sample(text, "ember_job_attempts_total", attempts) == JOBS
    assert "WorkerId" not in text and "ray_ember" not in text

    per_process = _per_process("ray_ember_http_requests_total", health)
    assert len(per_process) == 2, "the two replicas each answered some of the requests"
    assert sum(per_process.values()) == REQUESTS
    by_worker = _per_process("ray_ember_job_attempts_total", attempts)
    assert len(by_worker) >= 2, "one job at a time per worker: several workers ran them"
    assert sum(by_worker.values()) == JOBS
    dispatcher = ray.get_actor(DISPATCHER, namespace=NAMESPACE)
    assert len(ray.get(dispatcher.workers.remote("steps"))) >= 2


def _per_process(name: str, labels: dict[str, str]) -> dict[str, float]:
    """Sample ``name`` with ``labels`` as Ray's node export has it: by ``WorkerId``."""
    found: dict[str, float] = {}
    for node in ray.nodes():
        port = node["MetricsExportPort"]
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
        for family in text_string_to_metric_families(text):
            for each in family.samples:
                if each.name == name and labels.items() <= each.labels.items():
                    found[each.labels["WorkerId"]] = each.value
    return found


class TestRayMetrics(MetricsContract):
    """The contract over Ray's pipeline, read back as ``GET /metrics`` reads it."""

    scrape_within_s = 30.0

    @pytest.fixture
    def metrics(self, url: str) -> RayMetrics:
        return RayMetrics(CONTRACT_FAMILIES, refresh_s=0.5)

    def scrape(self, metrics: Metrics) -> str:
        return asyncio.run(cluster_text()).decode()
