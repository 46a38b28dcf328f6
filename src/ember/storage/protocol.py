"""Repository contracts. Adapters implement them over SQL; callers depend only on these."""

from __future__ import annotations

from typing import Any, Protocol

from ember.storage.records import AuditRecord, CollectionRecord

__all__ = ["AuditLog", "CollectionRepository"]


class CollectionRepository(Protocol):
    """Named collections of documents."""

    def create(
        self,
        name: str,
        *,
        description: str = "",
        embedding_model: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> CollectionRecord:
        """Create a collection and return it.

        :raises CollectionExists: ``name`` is taken (also under a concurrent create).
        """
        ...

    def get(self, name: str) -> CollectionRecord:
        """:raises CollectionNotFound: no collection has ``name``."""
        ...

    def list(self, *, limit: int = 100, after: str | None = None) -> list[CollectionRecord]:
        """Up to ``limit`` collections ordered by name, starting after the name ``after``."""
        ...

    def delete(self, name: str) -> None:
        """Delete a collection and everything in it.

        :raises CollectionNotFound: no collection has ``name``.
        """
        ...


class AuditLog(Protocol):
    """Append-only record of who did what."""

    def append(self, entry: AuditRecord) -> AuditRecord:
        """Store ``entry`` and return it with ``id`` and ``ts`` set. Ids increase."""
        ...

    def list(
        self, *, actor: str | None = None, action: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        """The newest entries first, optionally only one actor's or one action's."""
        ...
