"""The model plane: local GGUF model files pinned by digest, their hosts, the registry that
loads and evicts them, and the directory the OpenAI and Ollama APIs list."""

from __future__ import annotations

from ember.models.catalog import SqlModelCatalog
from ember.models.directory import ModelListing
from ember.models.host import ModelHost
from ember.models.load_hint import ResidencyHint
from ember.models.local import LocalLauncher, LocalModels
from ember.models.protocol import HostHandle, ModelCatalog, ModelDirectory
from ember.models.records import LoadedModel, ModelRecord
from ember.models.registry import HostLauncher, ModelRegistry, NodeCapacity

__all__ = [
    "HostHandle",
    "HostLauncher",
    "LoadedModel",
    "LocalLauncher",
    "LocalModels",
    "ModelCatalog",
    "ModelDirectory",
    "ModelHost",
    "ModelListing",
    "ModelRecord",
    "ModelRegistry",
    "NodeCapacity",
    "ResidencyHint",
    "SqlModelCatalog",
]
