"""``/metrics`` over the in-process job system: jobs by state, queue depth, attempt durations,
lease renewals, in Prometheus text format."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from ember.serve_app.metrics import metrics_router
from tests.jobs.conftest import System


async def scrape(system: System) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    app = FastAPI()
    app.include_router(metrics_router(system.service))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def test_metrics_follow_the_jobs(system: System) -> None:
    done = [(await system.service.submit("echo", {"text": "a"}, "m"))[0] for _ in range(2)]
    failed, _ = await system.service.submit("echo", {"text": "b", "fail": True}, "m")
    slow, _ = await system.service.submit("sleep", {"seconds": 0.5}, "m")
    for job in [*done, failed, slow]:
        await system.until_final(job.id)
    await system.bus.stop()
    await system.service.submit("echo", {"text": "waiting"}, "m")
    metrics = await scrape(system)
    assert metrics[("ember_jobs", (("kind", "echo"), ("state", "succeeded")))] == 2
    assert metrics[("ember_jobs", (("kind", "echo"), ("state", "failed")))] == 1
    assert metrics[("ember_job_queue_depth", (("kind", "echo"),))] == 1
    count = ("ember_job_duration_seconds_count", (("kind", "echo"), ("outcome", "succeeded")))
    assert metrics[count] == 2
    slow_sum = ("ember_job_duration_seconds_sum", (("kind", "sleep"), ("outcome", "succeeded")))
    assert metrics[slow_sum] >= 0.5
    bucket = (
        "ember_job_duration_seconds_bucket",
        (("kind", "sleep"), ("le", "0.1"), ("outcome", "succeeded")),
    )
    assert metrics[bucket] == 0
    assert metrics[("ember_job_lease_renewals_total", ())] >= 3
