"""The bundled model: assembled, verified and pinned; a changed file is refused."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from ember.config.models import ModelsConfig
from ember.errors import ModelDigestMismatch, ModelNotRegistered
from ember.models import LocalModels, ModelHost, ModelRecord, SqlModelCatalog
from ember.models.bundle import BUNDLED_MODEL, ensure_bundled
from ember.models.digest import file_digest, normalize_digest


def test_bundled_model_is_registered_pinned_and_warm(gemma: ModelRecord) -> None:
    assert gemma.name == BUNDLED_MODEL
    assert gemma.warm and gemma.template == "qa"
    assert file_digest(gemma.path) == gemma.digest
    assert gemma.size_bytes == Path(gemma.path).stat().st_size > 200_000_000


def test_second_start_keeps_the_file_and_the_users_choices(
    models_dir: Path, catalog: SqlModelCatalog, gemma: ModelRecord
) -> None:
    mtime = Path(gemma.path).stat().st_mtime_ns
    catalog.put(replace(gemma, warm=False, created_at=None))
    again = ensure_bundled(models_dir, catalog)
    assert Path(again.path).stat().st_mtime_ns == mtime
    assert again.warm is False and again.digest == gemma.digest


def test_a_file_that_changed_since_it_was_pinned_is_not_loaded(
    tmp_path: Path, gemma: ModelRecord
) -> None:
    copy = tmp_path / "tampered.gguf"
    shutil.copyfile(gemma.path, copy)
    with copy.open("r+b") as handle:
        handle.seek(1_000_000)
        handle.write(b"\x00" * 16)
    host = ModelHost(replace(gemma, path=str(copy)), ModelsConfig())
    with pytest.raises(ModelDigestMismatch, match="pinned"):
        host.load()


async def test_the_registry_refuses_an_unpinned_digest(
    catalog: SqlModelCatalog, gemma: ModelRecord
) -> None:
    other = "sha256:" + "0" * 64
    catalog.put(replace(gemma, name="impostor", digest=other, warm=False, created_at=None))
    models = LocalModels.build(catalog, ModelsConfig())
    with pytest.raises(ModelDigestMismatch):
        await models.registry.acquire("impostor")
    assert await models.loaded() == []


async def test_an_unregistered_model_is_not_found(local_models: LocalModels) -> None:
    with pytest.raises(ModelNotRegistered):
        await local_models.registry.acquire("nothing-by-this-name")


def test_digests_are_normalized() -> None:
    hex_ = "A" * 64
    assert normalize_digest(hex_) == "sha256:" + "a" * 64
    assert normalize_digest("sha256:" + hex_) == "sha256:" + "a" * 64
    with pytest.raises(ValueError, match="not a sha256"):
        normalize_digest("sha256:1234")
