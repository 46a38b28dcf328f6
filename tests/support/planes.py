"""A small memory plane for tests of what it records: SQLite under ``tmp_path``, the hash
embedder, one empty collection ``notes``, and three short documents to put in it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ember.config import load_config
from ember.memory.extract import SourceDocument
from ember.memory.service import MemoryService
from ember.services import memory_plane
from ember.storage import Database, Migrator
from tests.support.embedders import HashEmbedder, WordTokenizer

__all__ = ["DOCS", "documents", "small_plane"]

DOCS = {
    "otters.md": b"Sea otters hold hands while they sleep so they do not drift apart.",
    "bees.md": b"Bees dance to show the hive where the flowers are.",
    "tides.md": b"The moon pulls the oceans and the tides follow it.",
}


def documents() -> list[SourceDocument]:
    """:data:`DOCS` as source documents."""
    return [SourceDocument(name, text, "text/markdown") for name, text in DOCS.items()]


@contextmanager
def small_plane(tmp_path: Path, **parts: Any) -> Iterator[MemoryService]:
    """The plane, with ``parts`` (``tracer``, ``metrics``) passed to :func:`memory_plane`;
    closed on exit."""
    config = load_config(None, {"EMBER_HOME": str(tmp_path / "home")})
    database = Database(f"sqlite:///{tmp_path / 'memory.db'}")
    Migrator(database).upgrade()
    service = memory_plane(config, database, embedder=(HashEmbedder(), WordTokenizer()), **parts)
    service.collections.create("notes")
    try:
        yield service
    finally:
        service.close()
        database.dispose()
