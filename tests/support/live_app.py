"""The whole ember API served over real HTTP for tests that attack it from outside.

:func:`live_app` runs the app :func:`~ember.serve_app.create_app` builds, on uvicorn on
127.0.0.1, over a migrated SQLite database under ``home``, the bundled embedding model, FAISS,
and a running local job system (hub, dispatcher, one worker per kind, as the cluster's actors
would run them). Language models are a fake OpenAI server on 127.0.0.1 behind a real
:class:`~ember.providers.OpenAIProvider` (the alias ``default`` is ``fake/echo-model``).
Rate limits are off; the caller gets an ``admin`` token.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from ember.config import load_config
from ember.jobs.bus import LocalJobBus
from ember.jobs.dispatcher import LeaseDispatcher
from ember.jobs.events import SqlEventStore
from ember.jobs.hub import EventHub
from ember.jobs.pool import LocalWorkerPool
from ember.jobs.repository import SqlJobRepository
from ember.jobs.runner import JobRunner
from ember.serve_app import build_context, create_app
from ember.services import Services
from ember.storage import Database, Migrator
from tests.fakes.openai_fake import FakeOpenAIServer

__all__ = ["LiveApp", "live_app"]


@dataclass
class LiveApp:
    """The running app: where it listens, an ``admin`` token and its services."""

    url: str
    token: str
    services: Services
    jobs: SqlJobRepository
    upstream: FakeOpenAIServer

    @property
    def auth(self) -> dict[str, str]:
        """The ``Authorization`` header of :attr:`token`."""
        return {"Authorization": f"Bearer {self.token}"}


async def _drain(pools: Mapping[str, LocalWorkerPool]) -> None:
    """Cancel what still runs in ``pools`` and wait for their workers."""
    for pool in pools.values():
        for runner in pool.runners.values():
            for job_id in list(runner._tasks):
                runner.cancel(job_id)
    for pool in pools.values():
        await pool.drain()


@contextmanager
def live_app(home: Path, environ: Mapping[str, str] | None = None) -> Iterator[LiveApp]:
    """Serve ember under ``home`` (``environ``: more ``EMBER_*`` settings) until exit."""
    with FakeOpenAIServer(dim=32, models=("echo-model", "embed-model")) as upstream:
        providers = {
            "fake": {"kind": "openai", "base_url": upstream.base_url, "api_key": "unused"},
            "embeddings": {"kind": "sentence-transformers"},
        }
        config = load_config(
            None,
            {
                "EMBER_HOME": str(home),
                "EMBER_AUTH_RATE_LIMIT_PER_S": "0",
                "EMBER_MODELS_BUNDLED": "false",
                "EMBER_PROVIDERS_INSTANCES": json.dumps(providers),
                "EMBER_ROUTER_DEFAULT_PROVIDER": "fake",
                "EMBER_ROUTER_ALIASES": json.dumps({"default": ["fake/echo-model"]}),
                "EMBER_ROUTER_RETRY_ATTEMPTS": "1",
                **(environ or {}),
            },
        )
        database = Database.from_config(config)
        Migrator(database).upgrade()
        jobs = SqlJobRepository(database)
        hub = EventHub(SqlEventStore(database), ring_size=64, flush_interval_s=0.02)
        pools: dict[str, LocalWorkerPool] = {}
        bus = LocalJobBus(hub, LeaseDispatcher(jobs, pools, hub.publish, lease_ttl_s=5.0), 0.05)
        services = Services.build(config, database=database, bus=bus)

        def runner(owner: str) -> JobRunner:
            return JobRunner(
                jobs,
                services.kinds,
                hub.publish,
                owner,
                lease_ttl_s=5.0,
                renew_interval_s=0.5,
                tracer=services.tracing.tracer("ember.jobs"),
                metrics=services.metrics,
            )

        pools.update({name: LocalWorkerPool(runner, size=1) for name in services.kinds.names()})
        context = build_context(config, services=services)
        token = context.tokens.create("tester", "tester", ["admin"])[1]
        app = create_app(context)
        own = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
            bus.start()
            try:
                async with own(app_):
                    yield
            finally:
                await _drain(pools)
                await bus.stop()

        app.router.lifespan_context = lifespan
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_config=None,
                log_level="warning",
                lifespan="on",
                timeout_graceful_shutdown=1,
            )
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.01)
        try:
            yield LiveApp(f"http://127.0.0.1:{port}", token, services, jobs, upstream)
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            services.close()
