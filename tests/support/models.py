"""Fixtures of the real bundled model (assembled once per session) and the catalogs that
register it; loaded for the whole suite by the root conftest."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ember.config.models import ModelsConfig
from ember.models import LocalModels, ModelRecord, SqlModelCatalog
from ember.models.bundle import ensure_bundled
from ember.storage import Database, Migrator


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[SqlModelCatalog]:
    database = Database(f"sqlite:///{tmp_path / 'ember.db'}")
    Migrator(database).upgrade()
    try:
        yield SqlModelCatalog(database)
    finally:
        database.dispose()


@pytest.fixture
def gemma(models_dir: Path, catalog: SqlModelCatalog) -> ModelRecord:
    """The bundled Gemma 3 270M, registered (assembled on the session's first use)."""
    return ensure_bundled(models_dir, catalog)


def register_copy(catalog: SqlModelCatalog, record: ModelRecord, name: str) -> ModelRecord:
    """The same file under another name, not warm: a second model for eviction tests."""
    return catalog.put(replace(record, name=name, warm=False, created_at=None))


@pytest.fixture
async def local_models(gemma: ModelRecord, catalog: SqlModelCatalog) -> Iterator[LocalModels]:
    models = LocalModels.build(catalog, ModelsConfig())
    try:
        yield models
    finally:
        await models.registry.close()
