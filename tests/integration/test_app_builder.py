"""The application builder of Serve config files: run, as Serve runs it, in a task that ends
right after, it leaves a migrated database and a job system and model registry that outlive
the task."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from ember.actors.names import DISPATCHER, HUB, MODEL_REGISTRY, NAMESPACE
from ember.config import load_config
from ember.storage import Database, Migrator
from tests.support.cluster import local_ray

pytestmark = pytest.mark.slow


@pytest.fixture
def ray_in_ember_namespace() -> Iterator[None]:
    with local_ray(namespace=NAMESPACE):
        yield


@ray.remote(max_calls=1)
def build(settings: dict[str, str]) -> str:
    os.environ.update(settings)
    from ember.serve_app.deployment import app

    return type(app({})).__name__


@pytest.mark.usefixtures("ray_in_ember_namespace")
def test_the_builder_leaves_detached_actors_and_a_migrated_database(tmp_path: Path) -> None:
    settings = {"EMBER_HOME": str(tmp_path), "EMBER_MODELS_BUNDLED": "false"}
    assert ray.get(build.remote(settings)) == "Application"
    actors = [ray.get_actor(name, namespace=NAMESPACE) for name in (HUB, DISPATCHER)]
    registry = ray.get_actor(MODEL_REGISTRY, namespace=NAMESPACE)
    try:
        assert sum(ray.get(actors[1].stats.remote())["queue_depth"].values()) == 0
        assert ray.get(registry.ready.remote())[0] is True
        database = Database.from_config(load_config(None, settings))
        try:
            assert Migrator(database).current() == Migrator(database).head()
        finally:
            database.dispose()
    finally:
        for actor in [*actors, registry]:
            ray.kill(actor)
