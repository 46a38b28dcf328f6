"""The composition root: parts built on first use, once, from the parts passed in."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.trace import Tracer

from ember.auth import LOCAL_PRINCIPAL
from ember.config import EmberConfig, load_config
from ember.errors import NotReady
from ember.memory.service import MemoryService
from ember.models.local import LocalModels
from ember.models.protocol import ModelAccess
from ember.observability.metrics import Metrics
from ember.services import Services, memory_plane
from ember.storage import Database, Migrator


def _config(home: Path, **environ: str) -> EmberConfig:
    return load_config(None, {"EMBER_HOME": str(home), **environ})


@pytest.fixture
def config(tmp_path: Path) -> EmberConfig:
    return _config(tmp_path)


@pytest.fixture
def database(config: EmberConfig) -> Iterator[Database]:
    database = Database.from_config(config)
    Migrator(database).upgrade()
    yield database
    database.dispose()


def test_building_builds_nothing_heavy_and_the_memory_plane_once(
    config: EmberConfig, database: Database
) -> None:
    built: list[int] = []

    tracers: list[object] = []

    def plane(
        config: EmberConfig,
        database: Database,
        *,
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> MemoryService:
        built.append(1)
        tracers.append(tracer)
        assert metrics is services.metrics
        return memory_plane(config, database, tracer=tracer, metrics=metrics)

    services = Services.build(config, database=database, memory=plane)
    assert built == []
    threads = [threading.Thread(target=lambda: services.memory) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert built == [1]
    assert services.memory is services.memory
    assert tracers == [services.memory.tracer] and services.memory.tracer is not None


def test_a_memory_plane_passed_in_is_the_one_used(config: EmberConfig, database: Database) -> None:
    plane = memory_plane(config, database)
    services = Services.build(config, database=database, memory=plane)
    assert services.memory is plane
    assert services.kinds.names()


def test_hosted_models_come_from_the_factory_passed_in(
    config: EmberConfig, database: Database
) -> None:
    made: list[ModelAccess] = []

    def models() -> ModelAccess:
        made.append(LocalModels.build(services.catalog, config.models))
        return made[-1]

    services = Services.build(config, database=database, models=models)
    assert services.hosted == {"local"}
    assert made == []
    first = services.models
    assert made == [first] and services.models is first
    assert services.router.providers["local"] is not None


def test_without_a_llamacpp_provider_there_are_no_hosted_models(tmp_path: Path) -> None:
    instances = {"embeddings": {"kind": "sentence-transformers"}}
    config = _config(tmp_path, EMBER_PROVIDERS_INSTANCES=json.dumps(instances))

    def models() -> ModelAccess:
        raise AssertionError("no llamacpp provider: the models must not be reached")

    services = Services.build(config, models=models)
    try:
        assert services.models is None
        assert set(services.router.providers) == {"embeddings"}
    finally:
        services.close()


async def test_without_a_job_bus_stored_jobs_read_and_live_calls_are_not_ready(
    config: EmberConfig, database: Database
) -> None:
    jobs = Services.build(config, database=database).jobs
    assert (await jobs.page(LOCAL_PRINCIPAL))[0] == []
    with pytest.raises(NotReady):
        await jobs.bus.telemetry()


def test_the_job_kinds_are_the_built_in_ones_and_the_plugins(tmp_path: Path) -> None:
    config = _config(tmp_path, EMBER_JOBS_PLUGINS="tests.jobs.plugin:kinds")
    services = Services.build(config)
    try:
        names = set(services.kinds.names())
        assert {"ingest", "reindex", "chat", "generate", "ask"} <= names
        assert names - {"ingest", "reindex", "chat", "generate", "ask"}
    finally:
        services.close()
