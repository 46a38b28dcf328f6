"""Providers: the embedder, tokenizer and provider contracts, their adapters, the router, and
the pooled embedder over the embedding-workers seam.

The adapters and the router are exported lazily: ``import ember.providers`` loads neither
torch, sentence-transformers, openai, ollama nor the database layer; the first access to one
of those names imports its module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ember._lazy import lazy_exports
from ember.providers.protocol import (
    Embedder,
    EmbeddingWorkers,
    Provider,
    SizingPolicy,
    Tokenizer,
)

if TYPE_CHECKING:
    from ember.providers.breaker import BreakerState, CircuitBreaker
    from ember.providers.budget import Budgets, Estimate
    from ember.providers.candidates import Candidate, LoadHint, RouteRequest
    from ember.providers.hf_tokenizer import HuggingFaceTokenizer
    from ember.providers.model_listing import ModelListing
    from ember.providers.ollama import OllamaProvider
    from ember.providers.openai import OpenAIProvider
    from ember.providers.openai_embeddings import OpenAIEmbedder
    from ember.providers.pooled_embedder import PooledEmbedder
    from ember.providers.routed_stream import RoutedStream
    from ember.providers.router import Embeddings, Router
    from ember.providers.sentence_transformers import SentenceTransformerEmbedder

__all__ = [
    "BreakerState",
    "Budgets",
    "Candidate",
    "CircuitBreaker",
    "Embedder",
    "EmbeddingWorkers",
    "Embeddings",
    "Estimate",
    "HuggingFaceTokenizer",
    "LoadHint",
    "ModelListing",
    "OllamaProvider",
    "OpenAIEmbedder",
    "OpenAIProvider",
    "PooledEmbedder",
    "Provider",
    "RouteRequest",
    "RoutedStream",
    "Router",
    "SentenceTransformerEmbedder",
    "SizingPolicy",
    "Tokenizer",
]

_LAZY = {
    "BreakerState": "ember.providers.breaker",
    "Budgets": "ember.providers.budget",
    "Candidate": "ember.providers.candidates",
    "CircuitBreaker": "ember.providers.breaker",
    "Embeddings": "ember.providers.router",
    "Estimate": "ember.providers.budget",
    "LoadHint": "ember.providers.candidates",
    "RouteRequest": "ember.providers.candidates",
    "RoutedStream": "ember.providers.routed_stream",
    "Router": "ember.providers.router",
    "HuggingFaceTokenizer": "ember.providers.hf_tokenizer",
    "ModelListing": "ember.providers.model_listing",
    "OllamaProvider": "ember.providers.ollama",
    "OpenAIEmbedder": "ember.providers.openai_embeddings",
    "OpenAIProvider": "ember.providers.openai",
    "PooledEmbedder": "ember.providers.pooled_embedder",
    "SentenceTransformerEmbedder": "ember.providers.sentence_transformers",
}


__getattr__ = lazy_exports(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
