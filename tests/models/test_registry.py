"""The model registry over real llama.cpp hosts: load on demand, LRU eviction for room (never a
busy model), keep_alive, warm-up and readiness. Three names share the bundled file, so three
"models" exist while each load is real."""

from __future__ import annotations

import asyncio

import pytest

from ember.config.models import ModelsConfig
from ember.errors import ModelCapacityExceeded
from ember.models import LocalModels, ModelRecord, SqlModelCatalog
from ember.providers.types import GenerationOptions
from tests.support.models import register_copy


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def build(catalog: SqlModelCatalog, gemma: ModelRecord, fits: float, clock: Clock) -> LocalModels:
    settings = ModelsConfig(memory_bytes=int(gemma.size_bytes * fits), keep_alive_s=60)
    models = LocalModels.build(catalog, settings)
    models.registry._clock = clock
    return models


@pytest.fixture
def three(catalog: SqlModelCatalog, gemma: ModelRecord) -> list[str]:
    for name in ("gemma-a", "gemma-b", "gemma-c"):
        register_copy(catalog, gemma, name)
    return ["gemma-a", "gemma-b", "gemma-c"]


async def names(models: LocalModels) -> list[str]:
    return [m.name for m in await models.loaded()]


@pytest.mark.usefixtures("three")
async def test_least_recently_used_is_evicted_for_room(
    catalog: SqlModelCatalog, gemma: ModelRecord
) -> None:
    clock = Clock()
    models = build(catalog, gemma, 2.5, clock)
    try:
        await models.registry.acquire("gemma-a")
        clock.now += 1
        await models.registry.acquire("gemma-b")
        clock.now += 1
        models.registry.touch("gemma-a")
        clock.now += 1
        await models.registry.acquire("gemma-c")
        assert await names(models) == ["gemma-c", "gemma-a"]
        ps = await models.loaded()
        assert all(m.node_id == "local" and m.size_bytes == gemma.size_bytes for m in ps)
    finally:
        await models.registry.close()


@pytest.mark.usefixtures("three")
async def test_a_busy_model_is_never_evicted(catalog: SqlModelCatalog, gemma: ModelRecord) -> None:
    clock = Clock()
    models = build(catalog, gemma, 1.5, clock)
    try:
        host = await models.registry.acquire("gemma-a")
        stream = host.stream("Once upon a time", GenerationOptions(max_tokens=64, temperature=0))
        first = await anext(stream)
        assert first.text
        assert await host.busy() == 1
        with pytest.raises(ModelCapacityExceeded, match="gemma-b"):
            await models.registry.acquire("gemma-b")
        assert await names(models) == ["gemma-a"]
        await stream.aclose()
        await asyncio.sleep(0.2)
        await models.registry.acquire("gemma-b")
        assert await names(models) == ["gemma-b"]
    finally:
        await models.registry.close()


@pytest.mark.usefixtures("three")
async def test_keep_alive_sets_when_an_idle_model_unloads(
    catalog: SqlModelCatalog, gemma: ModelRecord
) -> None:
    clock = Clock()
    models = build(catalog, gemma, 4, clock)
    try:
        await models.registry.acquire("gemma-a", keep_alive_s=0)
        await models.registry.acquire("gemma-b", keep_alive_s=-1)
        await models.registry.acquire("gemma-c")
        ps = {m.name: m for m in await models.loaded()}
        assert ps["gemma-b"].expires_at is None
        assert ps["gemma-c"].expires_at is not None
        assert await models.registry.sweep() == ["gemma-a"]
        clock.now += 61
        assert await models.registry.sweep() == ["gemma-c"]
        clock.now += 10_000
        assert await models.registry.sweep() == []
        assert await names(models) == ["gemma-b"]
    finally:
        await models.registry.close()


async def test_concurrent_first_calls_load_once(local_models: LocalModels) -> None:
    hosts = await asyncio.gather(*(local_models.registry.acquire("gemma3-270m") for _ in range(4)))
    assert len({id(host) for host in hosts}) == 1


async def test_warm_models_load_at_start_and_ready_says_so(local_models: LocalModels) -> None:
    ok, detail = await local_models.ready()
    assert not ok and "gemma3-270m" in detail
    assert await local_models.registry.warm() == ["gemma3-270m"]
    ok, detail = await local_models.ready()
    assert ok, detail
    (loaded,) = await local_models.loaded()
    assert loaded.expires_at is None


async def test_a_model_too_big_for_any_node_is_refused(
    catalog: SqlModelCatalog, gemma: ModelRecord
) -> None:
    models = build(catalog, gemma, 0.5, Clock())
    with pytest.raises(ModelCapacityExceeded, match="needs"):
        await models.registry.acquire("gemma3-270m")
    assert await models.loaded() == []
