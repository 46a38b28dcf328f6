"""What the SQL adapters of documents, chunks and embeddings share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

__all__ = ["fetch_all"]


def fetch_all(query: Any) -> Callable[[Session], list[Any]]:
    """Work for :meth:`~ember.storage.database.Database.run`: every row of ``query``."""
    return lambda session: list(session.execute(query))
