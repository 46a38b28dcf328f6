"""The ``search_memory`` tool: hybrid retrieval in the caller's workspace, with citations.

The tool takes any :class:`~ember.agents.protocol.MemorySearch`; :class:`ServiceMemorySearch`
is the one over a local :class:`~ember.memory.service.MemoryService`: it checks that the
principal holds ``memory:read`` and searches only the principal's workspace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from ember.agents.protocol import MemoryHit, MemorySearch
from ember.agents.tools import Tool, ToolArgs
from ember.auth.principal import Principal
from ember.auth.scopes import Scope
from ember.errors import Forbidden
from ember.memory.service import MemoryService

__all__ = ["MemoryArgs", "ServiceMemorySearch", "memory_tool"]


class ServiceMemorySearch:
    """:class:`MemorySearch` over ``service`` as ``principal`` sees it (its workspace only);
    the blocking search runs in a thread."""

    def __init__(self, service: MemoryService, principal: Principal) -> None:
        self._service = service
        self._principal = principal

    async def __call__(self, collection: str, query: str, k: int) -> list[MemoryHit]:
        """:raises Forbidden: the principal lacks ``memory:read``."""
        if not self._principal.allows(Scope.MEMORY_READ):
            raise Forbidden(f"{self._principal.name} lacks the memory:read scope")
        plane = self._service.in_workspace(self._principal.workspace)
        hits = await asyncio.to_thread(plane.search, collection, query, k)
        return [
            MemoryHit(
                collection=collection,
                document_id=hit.chunk.document_id,
                title=hit.chunk.title,
                version=hit.chunk.version,
                source=hit.chunk.source,
                chunk=hit.chunk.ordinal,
                char_start=hit.chunk.char_start,
                char_end=hit.chunk.char_end,
                score=hit.score,
                text=hit.chunk.text,
            )
            for hit in hits
        ]


class MemoryArgs(ToolArgs):
    collection: str = Field(min_length=1, max_length=128, description="The collection name.")
    query: str = Field(min_length=1, max_length=4000, description="What to look for.")
    k: int = Field(default=5, ge=1, le=50, description="How many passages to return.")


def _cited(hit: MemoryHit) -> dict[str, Any]:
    return {
        "text": hit.text,
        "score": round(hit.score, 6),
        "citation": {
            "collection": hit.collection,
            "document_id": hit.document_id,
            "title": hit.title,
            "version": hit.version,
            "source": hit.source,
            "chunk": hit.chunk,
            "char_start": hit.char_start,
            "char_end": hit.char_end,
        },
    }


def memory_tool(search: MemorySearch) -> Tool[MemoryArgs]:
    """``search_memory`` over ``search``."""

    async def search_memory(args: MemoryArgs) -> dict[str, Any]:
        hits: Sequence[MemoryHit] = await search(args.collection, args.query, args.k)
        return {"hits": [_cited(hit) for hit in hits]}

    return Tool(
        "search_memory",
        "Search a memory collection (hybrid keyword and semantic search); returns passages, "
        "best first, each with its citation (document id, title, version, chunk and span).",
        MemoryArgs,
        search_memory,
    )
