"""Documents to write in the chunk, version, embedding and keyword-search tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ember.storage import Database, NewChunk, NewVersion, SqlCollectionRepository, SqlVersionStore


def version(source: str, text: str, **metadata: Any) -> NewVersion:
    """A version of ``source`` with one chunk per sentence of ``text`` (split at ``". "``)."""
    words = text.split(". ")
    chunks, start = [], 0
    for part in words:
        end = start + len(part)
        chunks.append(NewChunk(part, start, end, len(part.split())))
        start = end + 2
    return NewVersion(
        source=source,
        title=metadata.pop("title", None),
        media_type="text/plain",
        content_hash=f"hash-{hash(text)}",
        size_bytes=len(text),
        metadata=metadata,
        chunks=chunks,
    )


def vectors(n: int, dim: int = 4) -> np.ndarray:
    """``n`` random vectors of ``dim`` floats, the same for the same ``n``."""
    rng = np.random.default_rng(n)
    return rng.standard_normal((n, dim)).astype(np.float32)


@pytest.fixture
def collection_id(database: Database) -> str:
    """The id of a fresh collection."""
    return SqlCollectionRepository(database).create("papers").id


@pytest.fixture
def versions(database: Database) -> SqlVersionStore:
    """What writes the documents the other adapters read."""
    return SqlVersionStore(database)
