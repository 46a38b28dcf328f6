"""``/metrics`` over the in-process job system: jobs by state, queue depth, attempt durations,
lease renewals, in Prometheus text format."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from ember.providers.router import Router
from ember.providers.usage_writer import UsageWriter
from ember.serve_app.metrics import metrics_router
from ember.storage.records import UsageEntry
from tests.jobs.conftest import System
from tests.support.principals import caller


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
    done = [(await system.service.submit("echo", {"text": "a"}, caller("m")))[0] for _ in range(2)]
    failed, _ = await system.service.submit("echo", {"text": "b", "fail": True}, caller("m"))
    slow, _ = await system.service.submit("sleep", {"seconds": 0.5}, caller("m"))
    for job in [*done, failed, slow]:
        await system.until_final(job.id)
    await system.bus.stop()
    await system.service.submit("echo", {"text": "waiting"}, caller("m"))
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


async def test_usage_entries_dropped_by_a_full_buffer_are_counted(system: System) -> None:
    class Down:
        def record_many(self, entries: list[UsageEntry]) -> int:
            raise ConnectionError("database down")

    writer = UsageWriter(Down(), flush_interval_s=60, max_pending=2)  # type: ignore[arg-type]
    router = Router({}, usage_writer=writer)
    app = FastAPI()
    app.include_router(metrics_router(system.service, usage_dropped=lambda: router.usage_dropped))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        before = await client.get("/metrics")
        for n in range(5):
            writer.add(UsageEntry("alice", "cloud", "m", n, 1, 0.0, request_id=f"r{n}"))
        assert await writer.flush() == 0
        after = await client.get("/metrics")
    assert "ember_usage_dropped_total 0.0" in before.text
    assert "ember_usage_dropped_total 3.0" in after.text
    await writer.aclose()
