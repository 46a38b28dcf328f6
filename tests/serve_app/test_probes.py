"""``/ready`` and ``/metrics`` are cheap: their answers are reused for ``probe_cache_s``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from ember.jobs.kinds import KindRegistry
from ember.serve_app.metrics import metrics_router
from ember.serve_app.readiness import CheckResult, Readiness
from ember.storage import Database, Migrator
from tests.jobs.conftest import Seen, System, make_kinds, running_system
from tests.support.clock import FakeClock
from tests.support.principals import caller


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    """The in-process job system over SQLite."""
    database = Database(f"sqlite:///{tmp_path / 'ember.db'}")
    Migrator(database).upgrade()
    seen = Seen()
    try:
        async with running_system(database, KindRegistry(make_kinds(seen)), seen) as running:
            yield running
    finally:
        database.dispose()


async def test_readiness_reuses_its_results_until_they_are_stale() -> None:
    clock = FakeClock(0.0)
    readiness = Readiness(cache_s=2.0, clock=clock)
    runs: list[int] = []

    async def counted() -> CheckResult:
        runs.append(1)
        return CheckResult(True, f"run {len(runs)}")

    readiness.add("db", counted)
    assert (await readiness.run())["db"].detail == "run 1"
    clock.now += 1.9
    assert (await readiness.run())["db"].detail == "run 1"
    clock.now += 0.2
    assert (await readiness.run())["db"].detail == "run 2"

    async def failing() -> CheckResult:
        return CheckResult(False, "down")

    readiness.add("late", failing)
    assert (await readiness.run())["late"].ok is False, "a new check clears the cache"
    assert len(runs) == 3


async def scrape(app: FastAPI) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        reply = await client.get("/metrics")
    assert reply.status_code == 200
    return reply.text


async def test_metrics_reuse_their_text_until_it_is_stale(system: System) -> None:
    clock = FakeClock(0.0)
    app = FastAPI()
    app.include_router(metrics_router(system.service, cache_s=2.0, clock=clock))
    await system.bus.stop()
    line = 'ember_jobs{kind="echo",state="queued"}'
    assert line not in await scrape(app)
    await system.service.submit("echo", {"text": "a"}, caller("m"))
    assert line not in await scrape(app), "reused: no table read"
    clock.now += 2.0
    assert f"{line} 1.0" in await scrape(app)
