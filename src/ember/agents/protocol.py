"""The agent's seams: the chat it drives, where its events go, the memory it searches and
the tool sources (MCP servers) whose tools may change during a run.

Nothing here holds logic; the docstrings are the contract. The composition root passes
``Router.chat`` as :class:`ChatFn`, a ``JobContext`` as :class:`EventSink`, a
:class:`~ember.agents.memory_tool.ServiceMemorySearch` (or an actor-backed equivalent) as
:class:`MemorySearch` and the open :class:`~ember.agents.mcp.McpConnection` objects as
:class:`ToolSource`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ember.agents.tools import AnyTool
from ember.chat import ChatMessage, Completion, GenerationOptions
from ember.providers.router import RouteRequest

__all__ = ["ChatFn", "EventSink", "MemoryHit", "MemorySearch", "ToolSource"]


class ChatFn(Protocol):
    """One whole chat call, with the signature of :meth:`ember.providers.router.Router.chat`.

    ``options.tools`` carries the tool definitions; the answer's ``tool_calls`` the calls the
    model asks for and ``usage`` what the call used.

    :raises BudgetExceeded: the budgets refused the call (nothing was sent).
    :raises ProviderError: the call failed (any subclass).
    """

    async def __call__(
        self,
        alias: str,
        messages: Sequence[ChatMessage],
        options: GenerationOptions | None = None,
        route: RouteRequest | None = None,
    ) -> Completion: ...


class EventSink(Protocol):
    """Where a run's events go, as ``JobContext`` takes them; each call returns once the
    event is published (the return value is ignored)."""

    async def log(self, message: str, **fields: Any) -> object:
        """A line for humans with structured ``fields`` (all JSON-serializable)."""
        ...

    async def token(self, text: str) -> object:
        """A piece of the model's answer text."""
        ...


@dataclass(frozen=True)
class MemoryHit:
    """One search result with its citation: which document (``document_id``, ``title``,
    ``version``, ``source``), which chunk (``chunk``, its ordinal) and where in the document's
    text it lies (``char_start``..``char_end``)."""

    collection: str
    document_id: str
    title: str | None
    version: int
    source: str
    chunk: int
    char_start: int
    char_end: int
    score: float
    text: str


class MemorySearch(Protocol):
    """Hybrid search in the caller's own workspace, with the caller's scopes.

    Returns at most ``k`` hits, best first.

    :raises Forbidden: the caller may not read memory.
    :raises CollectionNotFound: the caller's workspace has no such collection.
    """

    async def __call__(self, collection: str, query: str, k: int) -> Sequence[MemoryHit]: ...


class ToolSource(Protocol):
    """Tools that come from outside ember and may change during a run: one MCP server.

    ``name`` is the server's name, as the profile's ``mcp_servers`` lists it: the loop offers
    a source's tools only when the profile lists it. :meth:`tools` is asked before every
    model call; it answers from a cache (refreshed when the server said its list changed)
    and never raises for a refresh that failed (it keeps the list it had).
    """

    @property
    def name(self) -> str: ...

    async def tools(self) -> Sequence[AnyTool]:
        """The tools as they are now, each named ``<name>__<tool>``."""
        ...
