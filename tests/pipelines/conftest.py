"""Pipeline fixtures: one real local Ray cluster for the module, and a memory plane on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ember.config import EmberConfig, load_config
from ember.memory.service import MemoryService
from ember.services import memory_plane
from ember.storage import Database, Migrator
from tests.support.cluster import local_ray


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[None]:
    with local_ray(namespace="ember-test-pipelines"):
        yield


def pipeline_config(home: Path, database_url: str | None = None, **env: str) -> EmberConfig:
    """The default config under ``home`` with 48-token chunks; ``env`` adds EMBER_* settings."""
    values = {
        "EMBER_HOME": str(home),
        "EMBER_MEMORY_CHUNK_TOKENS": "48",
        "EMBER_MEMORY_CHUNK_OVERLAP": "8",
        "EMBER_EMBEDDINGS_WORKER_NUM_CPUS": "0.5",
        **env,
    }
    if database_url is not None:
        values["EMBER_DATABASE_URL"] = database_url
    return load_config(None, values)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the pipelines run the same SQL on Postgres in the multi-node test."""
    return f"sqlite:///{tmp_path / 'ember.db'}"


@pytest.fixture
def plane(database_url: str, tmp_path: Path) -> Iterator[tuple[EmberConfig, MemoryService]]:
    """A config and its memory plane (the real bundled model) on each database backend."""
    config = pipeline_config(tmp_path / "home", database_url)
    database = Database.from_config(config)
    Migrator(database).upgrade()
    service = memory_plane(config, database)
    service.collections.create("corpus")
    try:
        yield config, service
    finally:
        service.close()
        database.dispose()
