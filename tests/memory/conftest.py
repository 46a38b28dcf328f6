"""Memory fixtures: the real bundled embedding model (loaded once) and a wired service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ember.config import load_config
from ember.memory.service import MemoryService
from ember.providers.hf_tokenizer import HuggingFaceTokenizer
from ember.providers.sentence_transformers import SentenceTransformerEmbedder
from ember.services import memory_plane
from ember.storage import Database, Migrator


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder().load()


@pytest.fixture(scope="session")
def tokenizer() -> HuggingFaceTokenizer:
    return HuggingFaceTokenizer.bundled()


def small_chunk_memory(
    database: Database,
    home: Path,
    embedder: SentenceTransformerEmbedder,
    tokenizer: HuggingFaceTokenizer,
) -> MemoryService:
    """A memory plane over ``database`` with 48-token chunks (8 shared), FAISS under ``home``."""
    config = load_config(
        None,
        {
            "EMBER_HOME": str(home),
            "EMBER_MEMORY_CHUNK_TOKENS": "48",
            "EMBER_MEMORY_CHUNK_OVERLAP": "8",
        },
    )
    return memory_plane(config, database, embedder=(embedder, tokenizer))


@pytest.fixture
def memory(
    database_url: str,
    tmp_path: Path,
    embedder: SentenceTransformerEmbedder,
    tokenizer: HuggingFaceTokenizer,
) -> Iterator[MemoryService]:
    """A memory plane on each database backend, FAISS under a temporary home."""
    database = Database(database_url)
    Migrator(database).upgrade()
    service = small_chunk_memory(database, tmp_path, embedder, tokenizer)
    service.collections.create("notes")
    try:
        yield service
    finally:
        service.close()
        database.dispose()
