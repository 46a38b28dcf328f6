"""``/metrics``: Prometheus text exposition of the job system (public, like the probes).

Each scrape reads the ``jobs`` table (jobs by kind and state, queue depth per kind) and asks
the running job system for attempt durations and lease renewals, into a registry made for
that scrape (no process-wide registry).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ember.jobs.records import DURATION_BUCKETS, Telemetry
from ember.jobs.service import JobService
from ember.jobs.states import JobState

__all__ = ["metrics_router"]


class _Snapshot(Collector):
    def __init__(self, counts: dict[tuple[str, JobState], int], telemetry: Telemetry) -> None:
        self._counts = counts
        self._telemetry = telemetry

    def collect(self) -> Iterable[Metric]:
        return list(self._metrics())

    def _metrics(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("ember_jobs", "Jobs by kind and state.", labels=["kind", "state"])
        depth = GaugeMetricFamily(
            "ember_job_queue_depth", "Queued jobs waiting for a worker.", labels=["kind"]
        )
        queued: dict[str, int] = {}
        for (kind, state), count in sorted(self._counts.items()):
            jobs.add_metric([kind, state.value], count)
            if state is JobState.QUEUED:
                queued[kind] = count
        for kind, count in sorted(queued.items()):
            depth.add_metric([kind], count)
        yield jobs
        yield depth
        durations = HistogramMetricFamily(
            "ember_job_duration_seconds",
            "Wall-clock time of job attempts, from running to a final state.",
            labels=["kind", "outcome"],
        )
        for (kind, outcome), histogram in sorted(self._telemetry.durations.items()):
            bounds = [str(b) for b in DURATION_BUCKETS] + ["+Inf"]
            durations.add_metric(
                [kind, outcome], list(zip(bounds, histogram.buckets, strict=True)), histogram.total
            )
        yield durations
        renewals = CounterMetricFamily("ember_job_lease_renewals", "Lease renewals by job workers.")
        renewals.add_metric([], self._telemetry.renewals)
        yield renewals


def metrics_router(jobs: JobService) -> APIRouter:
    """``GET /metrics`` over ``jobs``."""
    router = APIRouter(tags=["system"])

    @router.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics: jobs by state, queue depth per kind, attempt durations, lease
        renewals."""
        counts = await asyncio.to_thread(jobs.jobs.counts)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot(counts, await jobs.bus.telemetry()))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
