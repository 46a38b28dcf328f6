"""``/collections``: create, list, show and delete named collections.

Reads need ``memory:read``, create and delete ``memory:write``; both writes are audited. Every
route sees only the caller's workspace: another workspace's collection is 404, and its name
is free to take. A collection is embedded with the configured embedding model, whose id it
records: a create that names another model is refused (422 ``validation_failed``).
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ember.auth import Principal, Scope
from ember.errors import InvalidCursor, ValidationFailed
from ember.serve_app.auth import require
from ember.storage import AuditDraft, AuditLog, CollectionRecord, CollectionRepository, audited
from ember.storage.names import NAME_PATTERN

__all__ = ["collections_router"]

Reader = Annotated[Principal, Depends(require(Scope.MEMORY_READ))]
Writer = Annotated[Principal, Depends(require(Scope.MEMORY_WRITE))]


class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Lowercase letters, digits, `_`, `-`.")
    description: str = Field("", max_length=2000)
    embedding_model: str | None = Field(
        None,
        max_length=255,
        description="The configured embedding model's id (the default); any other is refused.",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class CollectionOut(BaseModel):
    id: str
    name: str
    description: str
    embedding_model: str | None
    metadata: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, record: CollectionRecord) -> CollectionOut:
        return cls(
            id=record.id,
            name=record.name,
            description=record.description,
            embedding_model=record.embedding_model,
            metadata=record.metadata,
            created_at=record.created_at,
        )


class CollectionPage(BaseModel):
    items: list[CollectionOut]
    next: str | None = Field(description="Pass as `after` for the next page; null at the end.")


_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "invalid_cursor (`after` of a list)"},
    404: {"description": "collection_not_found"},
    409: {"description": "collection_exists"},
    422: {"description": "validation_failed"},
}


def collections_router(
    collections: CollectionRepository, audit: AuditLog, embedding_model: str
) -> APIRouter:
    """Routes over ``collections``; creates and deletes are written to ``audit``.
    ``embedding_model`` is the id of the model the memory plane embeds with: what a new
    collection records, and the only one a create may name."""
    router = APIRouter(prefix="/collections", tags=["collections"], responses=_PROBLEMS)

    def audit_as(
        principal: Principal, request: Request, action: str, name: str
    ) -> AbstractContextManager[AuditDraft]:
        rid = getattr(request.state, "request_id", None)
        return audited(
            audit,
            principal.name,
            action,
            f"collection:{name}",
            request_id=rid,
            workspace=principal.workspace,
        )

    @router.post("", status_code=201, response_model=CollectionOut)
    def create_collection(body: CollectionIn, principal: Writer, request: Request) -> CollectionOut:
        """Create a collection; 409 ``collection_exists`` if the name is taken, 422
        ``validation_failed`` if ``embedding_model`` is not the configured model."""
        if body.embedding_model is not None and body.embedding_model != embedding_model:
            raise ValidationFailed(
                f"embedding_model {body.embedding_model!r} is not the configured embedding "
                f"model {embedding_model!r}, which every collection is embedded with; leave "
                "embedding_model out (embeddings.model in the config chooses the model)"
            )
        with audit_as(principal, request, "collection.create", body.name) as draft:
            record = collections.in_workspace(principal.workspace).create(
                body.name,
                description=body.description,
                embedding_model=embedding_model,
                metadata=body.metadata,
            )
            draft.detail["id"] = record.id
        return CollectionOut.of(record)

    @router.get("", response_model=CollectionPage)
    def list_collections(
        principal: Reader,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after: Annotated[str | None, Query(max_length=64)] = None,
    ) -> CollectionPage:
        """Collections ordered by name, ``limit`` at a time; 400 ``invalid_cursor`` when
        ``after`` is not a collection name (``next`` of a page always is)."""
        if after is not None and not re.fullmatch(NAME_PATTERN, after):
            raise InvalidCursor(f"after={after!r} is not a collection name")
        records = collections.in_workspace(principal.workspace).list(limit=limit + 1, after=after)
        page = records[:limit]
        following = page[-1].name if len(records) > limit else None
        return CollectionPage(items=[CollectionOut.of(r) for r in page], next=following)

    @router.get("/{name}", response_model=CollectionOut)
    def get_collection(name: str, principal: Reader) -> CollectionOut:
        """One collection; 404 ``collection_not_found`` if there is none of that name."""
        return CollectionOut.of(collections.in_workspace(principal.workspace).get(name))

    @router.delete("/{name}", status_code=204)
    def delete_collection(name: str, principal: Writer, request: Request) -> Response:
        """Delete a collection and everything in it."""
        with audit_as(principal, request, "collection.delete", name):
            collections.in_workspace(principal.workspace).delete(name)
        return Response(status_code=204)

    return router
