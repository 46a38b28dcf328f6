"""The model registry over real llama.cpp hosts: load on demand, LRU eviction for room (never a
busy model), keep_alive, warm-up and readiness, and hosts per model that follow the calls.
Three names share the bundled file, so three "models" exist while each load is real."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from ember.chat import Completion, GenerationOptions
from ember.config.models import ModelsConfig
from ember.errors import ModelCapacityExceeded, ProviderUnavailable
from ember.models import (
    LocalLauncher,
    LocalModels,
    ModelHost,
    ModelRecord,
    ModelRegistry,
    SqlModelCatalog,
)
from ember.models.registry import HostDemand
from ember.placement.scaling import ScalingPolicy
from tests.support.clock import FakeClock
from tests.support.models import register_copy

START_S = 1_000_000.0
"""Where the registries' fake clocks start, in monotonic seconds."""


def build(
    catalog: SqlModelCatalog, gemma: ModelRecord, fits: float, clock: FakeClock
) -> LocalModels:
    settings = ModelsConfig(memory_bytes=int(gemma.size_bytes * fits), keep_alive_s=60)
    registry = ModelRegistry(catalog, LocalLauncher(settings), settings, clock=clock)
    return LocalModels(registry, catalog)


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
    clock = FakeClock(START_S)
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
    clock = FakeClock(START_S)
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
    clock = FakeClock(START_S)
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
    models = build(catalog, gemma, 0.5, FakeClock(START_S))
    with pytest.raises(ModelCapacityExceeded, match="needs"):
        await models.registry.acquire("gemma3-270m")
    assert await models.loaded() == []


Scaled = Callable[[float], tuple[ModelRegistry[ModelHost], FakeClock]]


@pytest.fixture
async def scaled(catalog: SqlModelCatalog, gemma: ModelRecord) -> AsyncIterator[Scaled]:
    """Registries whose models grow to two hosts at one call a host and shrink after 10 s,
    on a node with room for ``fits`` copies of the model; closed after the test."""
    made: list[ModelRegistry[ModelHost]] = []

    def make(fits: float) -> tuple[ModelRegistry[ModelHost], FakeClock]:
        clock = FakeClock(START_S)
        settings = ModelsConfig(
            memory_bytes=int(gemma.size_bytes * fits),
            replicas_max=2,
            scale_cooldown_s=10,
            route_refresh_s=1,
        )
        registry = ModelRegistry(
            catalog,
            LocalLauncher(settings),
            settings,
            clock=clock,
            scaler=lambda name: ScalingPolicy(1, 2, 1.0, 10, clock=clock),
        )
        made.append(registry)
        return registry, clock

    yield make
    for registry in made:
        await registry.close()


LONG = GenerationOptions(max_tokens=32, temperature=0)


async def busy_with(host: ModelHost, calls: int) -> asyncio.Future[list[Completion]]:
    """``calls`` calls sent to ``host`` at once, returned once the host counts them all."""
    sent = asyncio.gather(*(host.complete("Once upon a time", LONG) for _ in range(calls)))
    for _ in range(500):
        if await host.busy() == calls:
            return sent
        await asyncio.sleep(0.01)
    raise AssertionError(f"the host never had {calls} calls")


async def test_a_busy_model_grows_a_host_routes_to_it_and_drains_it_when_calm(
    scaled: Scaled, gemma: ModelRecord
) -> None:
    registry, clock = scaled(4)
    first = await registry.acquire(gemma.name)
    assert await registry.rescale() == {gemma.name: 1}, "no calls: the minimum"
    calls = await busy_with(first, 3)
    assert await registry.rescale() == {gemma.name: 2}, "three calls want three: max 2"
    (loaded,) = await registry.ps()
    assert (loaded.replicas, loaded.nodes) == (2, ("local", "local"))
    second = await registry.acquire(gemma.name)
    assert second is not first, "the idle new host takes the next call"
    answer = await second.complete("Question: What is the capital of France?\nAnswer:", LONG)
    assert "Paris" in answer.text
    assert all(answer.text for answer in await calls)

    assert await registry.rescale() == {gemma.name: 2}, "calm, but the cooldown runs"
    clock.now += 11
    assert await registry.rescale() == {gemma.name: 1}
    assert await registry.replicas(gemma.name) == [first], "the newer host left routing"
    answer = await second.complete("Say", GenerationOptions(max_tokens=2, temperature=0))
    assert answer.text, "a draining host still answers a caller that routed to it late"
    clock.now += 2
    await registry.rescale()
    with pytest.raises(ProviderUnavailable):
        await second.complete("Say", GenerationOptions(max_tokens=2, temperature=0))
    assert (await first.complete("Say", GenerationOptions(max_tokens=2, temperature=0))).text


async def test_a_host_that_finds_no_room_is_wanted_but_not_retried_until_the_cooldown(
    scaled: Scaled, gemma: ModelRecord, caplog: pytest.LogCaptureFixture
) -> None:
    registry, _ = scaled(1.5)
    host = await registry.acquire(gemma.name)
    calls = await busy_with(host, 3)
    with caplog.at_level(logging.WARNING, logger="ember.models.registry"):
        assert await registry.rescale() == {gemma.name: 1}
        assert await registry.rescale() == {gemma.name: 1}
    refusals = [r for r in caplog.records if "cannot add a host" in r.getMessage()]
    assert len(refusals) == 1 and "no node has room" in refusals[0].getMessage()
    assert registry.host_demand() == HostDemand(placed=(False,), unplaced=(False,))
    await calls
    assert await registry.rescale() == {gemma.name: 1}
    assert registry.host_demand() == HostDemand(placed=(False,), unplaced=()), "calm again"


@pytest.mark.usefixtures("three")
async def test_room_is_counted_per_host_and_a_load_may_take_an_idle_models_extra_host(
    scaled: Scaled,
) -> None:
    registry, clock = scaled(3.5)
    calls = await busy_with(await registry.acquire("gemma-a"), 2)
    assert await registry.rescale() == {"gemma-a": 2}
    await calls
    clock.now += 1
    await registry.acquire("gemma-b")
    assert {m.name: m.replicas for m in await registry.ps()} == {"gemma-a": 2, "gemma-b": 1}
    clock.now += 1
    await registry.acquire("gemma-c")
    assert {m.name: m.replicas for m in await registry.ps()} == {
        "gemma-a": 1,
        "gemma-b": 1,
        "gemma-c": 1,
    }, "room for gemma-c came from gemma-a's second host, not from a whole model"


@pytest.mark.usefixtures("three")
async def test_growing_takes_only_free_room_and_never_an_idle_models_host(
    scaled: Scaled,
) -> None:
    registry, clock = scaled(2.5)
    await registry.acquire("gemma-b")
    clock.now += 1
    calls = await busy_with(await registry.acquire("gemma-a"), 2)
    assert await registry.rescale() == {"gemma-a": 1, "gemma-b": 1}
    assert registry.host_demand().unplaced == (False,), "wanted, and left to the autoscaler"
    await calls


async def test_a_draining_host_takes_calls_again_when_demand_returns(
    scaled: Scaled, gemma: ModelRecord
) -> None:
    registry, clock = scaled(4)
    first = await registry.acquire(gemma.name)
    calls = await busy_with(first, 2)
    assert await registry.rescale() == {gemma.name: 2}
    await calls
    (second,) = [h for h in await registry.replicas(gemma.name) if h is not first]
    await registry.rescale()
    clock.now += 11
    assert await registry.rescale() == {gemma.name: 1}
    assert registry.host_demand().placed == (False, False), "the draining host still holds room"

    calls = await busy_with(first, 2)
    assert await registry.rescale() == {gemma.name: 2}
    assert set(map(id, await registry.replicas(gemma.name))) == {id(first), id(second)}
    assert (await second.complete("Say", GenerationOptions(max_tokens=2, temperature=0))).text
    await calls
