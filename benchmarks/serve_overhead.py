"""What Ray Serve costs per request, against the same app under plain uvicorn, in one run.

Both servers run the same FastAPI app (``ember.serve_app.create_app``) over the same SQLite
database. The client sends sequential requests (latency) and then keeps ``--concurrency``
requests in flight (throughput) to ``/health`` (no I/O) and ``/collections`` (one SQL read).
Results are ratios Serve / uvicorn, so a noisy machine affects both sides alike. The client
is the loopback dev principal with rate limits off, so no request is refused.

    .venv/bin/python benchmarks/serve_overhead.py [--requests 400] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import tempfile
import time
from typing import Any

import httpx

try:
    from benchmarks._stats import percentile
except ModuleNotFoundError:  # run as ``python benchmarks/X.py``: this folder is on sys.path
    from _stats import percentile

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(home: str, port: int) -> Any:
    from ember.config import load_config

    return load_config(
        None,
        {
            "EMBER_HOME": home,
            "EMBER_SERVER_PORT": str(port),
            "EMBER_RAY_DASHBOARD": "false",
            "EMBER_LOGGING_LEVEL": "WARNING",
            "EMBER_AUTH_RATE_LIMIT_PER_S": "0",
        },
    )


def _serve_uvicorn(home: str, port: int) -> None:
    import uvicorn

    from ember.observability import configure_logging
    from ember.serve_app import build_context, create_app

    config = _config(home, port)
    configure_logging("ember-bench", "WARNING", "json")
    uvicorn.run(create_app(build_context(config)), host="127.0.0.1", port=port, log_level="error")


def _wait_ready(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} never became ready")


def _latency(url: str, path: str, requests: int) -> dict[str, float]:
    with httpx.Client(base_url=url) as client:
        for _ in range(30):
            client.get(path).raise_for_status()
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            client.get(path).raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": statistics.median(samples),
        "p99_ms": percentile(samples, 0.99),
    }


async def _throughput(url: str, path: str, requests: int, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                (await client.get(path)).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)


def _measure(url: str, requests: int, concurrency: int) -> dict[str, dict[str, float]]:
    results = {}
    for path in ["/health", "/collections"]:
        figures = _latency(url, path, requests)
        figures["req_per_s"] = asyncio.run(_throughput(url, path, requests, concurrency))
        results[path] = figures
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    from ember.cluster import Runtime
    from ember.storage import Database, Migrator

    home = tempfile.mkdtemp(prefix="ember-bench-")
    database = Database.from_config(_config(home, 8000))
    Migrator(database).upgrade()
    database.dispose()

    uvicorn_port = _free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve_uvicorn, args=(home, uvicorn_port), daemon=True
    )
    server.start()
    try:
        _wait_ready(f"http://127.0.0.1:{uvicorn_port}")
        baseline = _measure(f"http://127.0.0.1:{uvicorn_port}", args.requests, args.concurrency)
    finally:
        server.terminate()
        server.join()

    runtime = Runtime(_config(home, _free_port()))
    runtime.start()
    try:
        url = runtime.deploy()
        _wait_ready(url)
        served = _measure(url, args.requests, args.concurrency)
    finally:
        runtime.stop()

    print(
        "| path | uvicorn p50 ms | Serve p50 ms | ratio | uvicorn p99 ms | Serve p99 ms "
        "| uvicorn req/s | Serve req/s | ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for path, base in baseline.items():
        ray = served[path]
        print(
            f"| `{path}` | {base['p50_ms']:.2f} | {ray['p50_ms']:.2f} "
            f"| {ray['p50_ms'] / base['p50_ms']:.2f}x | {base['p99_ms']:.2f} "
            f"| {ray['p99_ms']:.2f} | {base['req_per_s']:.0f} | {ray['req_per_s']:.0f} "
            f"| {ray['req_per_s'] / base['req_per_s']:.2f}x |"
        )
    print(json.dumps({"uvicorn": baseline, "serve": served, "args": vars(args)}))


if __name__ == "__main__":
    main()
