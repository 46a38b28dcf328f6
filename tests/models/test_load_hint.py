"""Equal candidates are ordered by residency: the router tries a loaded local model first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ember.config.models import RouterConfig
from ember.models import LoadedModel, LocalModels, ModelRecord, ResidencyHint, SqlModelCatalog
from ember.providers.llamacpp import LlamaCppProvider
from ember.providers.router import Candidate, Router
from tests.support.clock import FakeClock
from tests.support.models import register_copy


@pytest.fixture
def pair(catalog: SqlModelCatalog, gemma: ModelRecord) -> None:
    register_copy(catalog, gemma, "gemma-a")
    register_copy(catalog, gemma, "gemma-b")


@pytest.mark.usefixtures("pair")
async def test_the_loaded_model_of_a_tier_goes_first(local_models: LocalModels) -> None:
    hint = ResidencyHint(local_models.loaded, {"local"})
    config = RouterConfig(aliases={"pair": ["local/gemma-a | local/gemma-b"]})
    router = Router({"local": LlamaCppProvider("local", local_models)}, config, load_hint=hint)
    assert router.candidates("pair")[0] == Candidate("local", "gemma-a"), "written order"
    await local_models.registry.acquire("gemma-b")
    await hint.refresh()
    assert router.candidates("pair") == [
        Candidate("local", "gemma-b"),
        Candidate("local", "gemma-a"),
    ]
    assert hint("local", "gemma-b") == (True, 0)
    assert hint("local", "gemma-a") == (False, 0)
    assert hint("ollama", "anything") == (True, 0), "remote models are not ranked down"


async def test_a_stale_snapshot_refreshes_in_the_background(local_models: LocalModels) -> None:
    clock = FakeClock(0.0)
    hint = ResidencyHint(local_models.loaded, {"local"}, max_age_s=1.0, clock=clock)
    await hint.refresh()
    await local_models.registry.acquire("gemma3-270m")
    assert hint("local", "gemma3-270m") == (False, 0), "fresh enough: the old snapshot"
    assert hint._refreshing is None
    clock.now = 2.0
    assert hint("local", "gemma3-270m") == (False, 0), "stale: answered at once, refreshed after"
    assert hint._refreshing is not None
    await hint._refreshing
    assert hint("local", "gemma3-270m") == (True, 0)


async def test_the_queue_of_a_model_with_several_hosts_is_per_host() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def model(name: str, depth: int, hosts: int) -> LoadedModel:
        return LoadedModel(
            name, "sha256:x", "n1", 1, at, at, None, queue_depth=depth, replicas=hosts
        )

    snapshot = [model("two-hosts", 5, 2), model("one-host", 4, 1)]

    async def loaded() -> list[LoadedModel]:
        return snapshot

    hint = ResidencyHint(loaded, {"local"})
    await hint.refresh()
    assert hint("local", "two-hosts") == (True, 3), "5 calls over 2 hosts: 3 wait on one"
    assert hint("local", "one-host") == (True, 4)
