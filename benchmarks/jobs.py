"""Job dispatch latency and SSE event throughput: the cluster against the same work in one
process, measured in the same run.

- **create → running**: ``started_at - created_at`` of sequential no-op jobs. In the cluster
  the job is created by the Serve replica (``POST /jobs`` over HTTP) and claimed by the
  JobDispatcher actor for a JobWorker actor; in-process the same repository, hub, dispatcher
  and runner run as asyncio tasks of one loop, without Ray or HTTP.
- **events/s to one reader**: a job streams ``--events`` token events (in batches, as a model
  would); one client reads ``GET /jobs/{id}/events`` (SSE over HTTP through Serve) to the end;
  in-process, one reader iterates :func:`ember.jobs.stream.follow` over the same job system.

    .venv/bin/python benchmarks/jobs.py [--jobs 200] [--events 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

try:
    from benchmarks._stats import percentile
except ModuleNotFoundError:  # run as ``python benchmarks/X.py``: this folder is on sys.path
    from _stats import percentile

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "benchmarks.job_kinds:kinds"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _settings(home: str) -> dict[str, str]:
    return {
        "EMBER_HOME": home,
        "EMBER_SERVER_PORT": str(_free_port()),
        "EMBER_RAY_DASHBOARD": "false",
        "EMBER_RAY_NUM_CPUS": "4",
        "EMBER_LOGGING_LEVEL": "WARNING",
        "EMBER_AUTH_RATE_LIMIT_PER_S": "0",
        "EMBER_JOBS_PLUGINS": PLUGIN,
        "EMBER_JOBS_MAX_ACTIVE_PER_PRINCIPAL": "100000",
    }


def _latency(jobs: Any, ids: list[str]) -> list[float]:
    found = []
    for job_id in ids:
        job = jobs.get(job_id)
        assert job.started_at is not None, job
        found.append((job.started_at - job.created_at).total_seconds() * 1000)
    return found


async def in_process(home: str, count: int, events: int) -> tuple[list[float], float]:
    from ember.auth import LOCAL_PRINCIPAL
    from ember.config import load_config
    from ember.jobs.bus import LocalJobBus
    from ember.jobs.dispatcher import LeaseDispatcher
    from ember.jobs.events import SqlEventStore
    from ember.jobs.hub import EventHub
    from ember.jobs.kinds import KindRegistry
    from ember.jobs.plugins import plugin_kinds
    from ember.jobs.pool import LocalWorkerPool
    from ember.jobs.repository import SqlJobRepository
    from ember.jobs.runner import JobRunner
    from ember.jobs.service import JobService
    from ember.jobs.states import TERMINAL
    from ember.storage import Database, Migrator, SqlAuditLog

    config = load_config(None, _settings(home))
    database = Database.from_config(config)
    Migrator(database).upgrade()
    jobs, store = SqlJobRepository(database), SqlEventStore(database)
    kinds = KindRegistry(plugin_kinds(config))
    hub = EventHub(store, ring_size=config.jobs.event_ring_size)

    def runner(owner: str) -> JobRunner:
        return JobRunner(jobs, kinds, hub.publish, owner, publish_many=hub.publish_many)

    pools = {kind: LocalWorkerPool(runner, 1, 4) for kind in kinds.names()}
    bus = LocalJobBus(hub, LeaseDispatcher(jobs, pools, hub.publish), poll_s=0.5)
    service = JobService(jobs, store, kinds, bus, SqlAuditLog(database), heartbeat_s=5)
    bench = LOCAL_PRINCIPAL
    bus.start()
    ids = []
    for n in range(count):
        job, _ = await service.submit("bench-noop", {"n": n}, bench)
        while (await asyncio.to_thread(jobs.get, job.id)).state not in TERMINAL:
            await asyncio.sleep(0.001)
        ids.append(job.id)
    job, _ = await service.submit("bench-tokens", {"events": events}, bench)
    seen, first = 0, 0.0
    async for event in service.follow(job.id, 0):
        if event is not None and event.type == "token":
            seen += 1
            first = first or time.perf_counter()
    rate = seen / (time.perf_counter() - first)
    await bus.stop()
    database.dispose()
    return _latency(jobs, ids), rate


def in_cluster(home: str, count: int, events: int) -> tuple[list[float], float]:
    from ember.cluster import Runtime
    from ember.config import load_config
    from ember.jobs.repository import SqlJobRepository
    from ember.storage import Database, Migrator

    config = load_config(None, _settings(home))
    database = Database.from_config(config)
    Migrator(database).upgrade()
    jobs = SqlJobRepository(database)
    runtime = Runtime(config)
    runtime.start()
    try:
        url = runtime.deploy()
        with httpx.Client(base_url=url, timeout=60) as client:
            for n in range(10):
                job = client.post("/jobs", json={"kind": "bench-noop", "input": {"n": n}}).json()
                while client.get(f"/jobs/{job['id']}").json()["state"] != "succeeded":
                    time.sleep(0.01)
            ids = []
            for n in range(count):
                job = client.post("/jobs", json={"kind": "bench-noop", "input": {"n": n}}).json()
                while jobs.get(job["id"]).finished_at is None:
                    time.sleep(0.001)
                ids.append(job["id"])
            body = {"kind": "bench-tokens", "input": {"events": events}}
            job = client.post("/jobs", json=body).json()
            seen, first = 0, 0.0
            with client.stream("GET", f"/jobs/{job['id']}/events") as response:
                for line in response.iter_lines():
                    if line == "event: token":
                        seen += 1
                        first = first or time.perf_counter()
            rate = seen / (time.perf_counter() - first)
        return _latency(jobs, ids), rate
    finally:
        runtime.stop()
        database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    local_latency, local_rate = asyncio.run(
        in_process(tempfile.mkdtemp(prefix="ember-jobs-"), args.jobs, args.events)
    )
    ray_latency, ray_rate = in_cluster(
        tempfile.mkdtemp(prefix="ember-jobs-"), args.jobs, args.events
    )
    rows = [
        ("create → running p50", statistics.median(local_latency), statistics.median(ray_latency)),
        ("create → running p99", percentile(local_latency, 0.99), percentile(ray_latency, 0.99)),
    ]
    print("\n| measure | in-process | cluster (Ray + HTTP) | ratio |\n| --- | --- | --- | --- |")
    for label, local, cluster in rows:
        print(f"| {label} | {local:.1f} ms | {cluster:.1f} ms | {cluster / local:.2f}x |")
    print(
        f"| events/s to one reader | {local_rate:,.0f} | {ray_rate:,.0f} "
        f"| {ray_rate / local_rate:.2f}x |"
    )
    print(
        json.dumps(
            {
                "local_latency_ms": [
                    statistics.median(local_latency),
                    percentile(local_latency, 0.99),
                ],
                "cluster_latency_ms": [
                    statistics.median(ray_latency),
                    percentile(ray_latency, 0.99),
                ],
                "local_events_per_s": local_rate,
                "cluster_events_per_s": ray_rate,
            }
        )
    )


if __name__ == "__main__":
    main()
