"""Providers: the embedder and tokenizer contracts and their adapters.

The adapters are exported lazily: ``import ember.providers`` loads neither torch,
sentence-transformers, openai nor ollama; the first access to an adapter class imports its
module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ember.providers.protocol import Embedder, Tokenizer

if TYPE_CHECKING:
    from ember.providers.hf_tokenizer import HuggingFaceTokenizer
    from ember.providers.ollama import OllamaProvider
    from ember.providers.openai import OpenAIProvider
    from ember.providers.openai_embeddings import OpenAIEmbedder
    from ember.providers.sentence_transformers import SentenceTransformerEmbedder

__all__ = [
    "Embedder",
    "HuggingFaceTokenizer",
    "OllamaProvider",
    "OpenAIEmbedder",
    "OpenAIProvider",
    "SentenceTransformerEmbedder",
    "Tokenizer",
]

_LAZY = {
    "HuggingFaceTokenizer": "ember.providers.hf_tokenizer",
    "OllamaProvider": "ember.providers.ollama",
    "OpenAIEmbedder": "ember.providers.openai_embeddings",
    "OpenAIProvider": "ember.providers.openai",
    "SentenceTransformerEmbedder": "ember.providers.sentence_transformers",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
