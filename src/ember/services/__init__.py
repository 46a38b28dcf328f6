"""The composition root: :class:`Services` builds every service of a running ember from its
configuration; the Ray side passes its cluster implementations in. No Ray here."""

from ember.services.adapters import (
    build_embedder,
    build_index_factory,
    build_tokenizer,
    memory_plane,
)
from ember.services.llm import ModelFacts, build_router, hosted_providers
from ember.services.root import MemoryBuilder, ModelsFactory, Services

__all__ = [
    "MemoryBuilder",
    "ModelFacts",
    "ModelsFactory",
    "Services",
    "build_embedder",
    "build_index_factory",
    "build_router",
    "build_tokenizer",
    "hosted_providers",
    "memory_plane",
]
