"""LocalModels and LocalLauncher: the ModelAccess and HostLauncher contracts with the real
bundled model hosted in this process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ember.config.models import ModelsConfig
from ember.models import LocalLauncher, LocalModels, ModelRecord, SqlModelCatalog
from ember.testing.model_access import HostLauncherContract, ModelAccessContract
from tests.support.models import register_copy


class TestLocalModels(ModelAccessContract):
    """Nothing sweeps a LocalModels registry, so an expired model stays until it is unloaded
    or evicted (``unloads_expired_within_s`` is ``None``); an open's keep-alive is applied
    before it returns (``settle_s`` is 0)."""

    settle_s = 0.0

    @pytest.fixture
    async def access(
        self, catalog: SqlModelCatalog, gemma: ModelRecord
    ) -> AsyncIterator[LocalModels]:
        register_copy(catalog, gemma, self.cold_model)
        models = LocalModels.build(catalog, ModelsConfig())
        try:
            yield models
        finally:
            await models.registry.close()


class TestLocalLauncher(HostLauncherContract):
    @pytest.fixture
    def launcher(self) -> LocalLauncher:
        return LocalLauncher(ModelsConfig())

    @pytest.fixture
    def model_record(self, gemma: ModelRecord) -> ModelRecord:
        return gemma
