"""``/metrics``: Prometheus text exposition of the job system (public, like the probes).

A scrape reads the ``jobs`` table (jobs by kind and state, queue depth per kind: one grouped
count over the ``(state, kind)`` index) and asks the running job system for attempt durations
and lease renewals, into a registry made for that scrape (no process-wide registry), with the
usage entries this replica dropped because its usage buffer was full (the database refused
writes for too long: those calls are missing from usage and budgets). The text
is reused for ``cache_s`` seconds (``server.probe_cache_s``): scrapers that call more often
than that cost no database read. ember's own families follow
(:data:`~ember.observability.metrics.FAMILIES`): this process's, or on a cluster every
process's on every node, summed (:func:`ember.actors.metrics.cluster_text`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

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
    def __init__(
        self,
        counts: dict[tuple[str, JobState], int],
        telemetry: Telemetry,
        usage_dropped: int = 0,
    ) -> None:
        self._counts = counts
        self._telemetry = telemetry
        self._usage_dropped = usage_dropped

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
        dropped = CounterMetricFamily(
            "ember_usage_dropped",
            "Usage entries dropped because the usage buffer was full (per ingress replica).",
        )
        dropped.add_metric([], self._usage_dropped)
        yield dropped


def metrics_router(
    jobs: JobService,
    *,
    usage_dropped: Callable[[], int] = lambda: 0,
    cache_s: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
    families: Callable[[], Awaitable[bytes]] | None = None,
) -> APIRouter:
    """``GET /metrics`` over ``jobs``, ``usage_dropped()`` (usage entries dropped so far) and
    ``families()`` (ember's own families, as text), each text reused for ``cache_s`` seconds
    of ``clock``."""
    router = APIRouter(tags=["system"])
    last: list[tuple[bytes, float]] = []

    @router.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics: jobs by state, queue depth per kind, attempt durations, lease
        renewals, usage entries dropped."""
        if last and clock() < last[0][1]:
            return Response(last[0][0], media_type=CONTENT_TYPE_LATEST)
        counts = await asyncio.to_thread(jobs.jobs.counts)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot(counts, await jobs.bus.telemetry(), usage_dropped()))
        text = generate_latest(registry) + (b"" if families is None else await families())
        if cache_s > 0:
            last[:] = [(text, clock() + cache_s)]
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    return router
