"""The model plane: local GGUF model files pinned by digest, their hosts, the registry that
loads and evicts them."""

from __future__ import annotations

from ember.models.catalog import SqlModelCatalog
from ember.models.host import ModelHost
from ember.models.load_hint import ResidencyHint
from ember.models.local import LocalLauncher, LocalModels
from ember.models.protocol import (
    HostHandle,
    HostLauncher,
    ModelAccess,
    ModelCatalog,
    ModelDirectory,
    Scaler,
)
from ember.models.records import LoadedModel, ModelRecord
from ember.models.registry import ModelRegistry, NodeCapacity

__all__ = [
    "HostHandle",
    "HostLauncher",
    "LoadedModel",
    "LocalLauncher",
    "LocalModels",
    "ModelAccess",
    "ModelCatalog",
    "ModelDirectory",
    "ModelHost",
    "ModelRecord",
    "ModelRegistry",
    "NodeCapacity",
    "ResidencyHint",
    "Scaler",
    "SqlModelCatalog",
]
