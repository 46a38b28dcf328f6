"""MCP tool servers: a profile's ``mcp_servers``, opened for one run, their tools offered as
ember tools. The only module that imports the ``mcp`` SDK.

:func:`open_mcp_servers` opens every server of a profile, in order, and closes them all when
its block ends, however it ends (cancellation included):

- **stdio** (``command`` + ``args``): started inside the sandbox through
  :meth:`~ember.sandbox.protocol.Sandbox.command`, never on the host, with the run's
  workspace as its working directory, the server's ``read_only_paths`` and the profile's
  sandbox limits, but for ``wall_s``, which is the run's ``limits.wall_s`` plus
  :data:`WALL_GRACE_S` (the server lives as long as the run). Its stderr is kept (the last
  :data:`STDERR_TAIL_BYTES`) and quoted in errors. Closing it closes its stdin, then the SDK
  signals the sandbox's launcher, which ends the whole process tree.
- **Streamable HTTP** (``url``): the host must match ``egress_hosts`` and is resolved once,
  before anything is sent, by :func:`~ember.agents.egress.pin_address` (a loopback, private
  or otherwise non-public address only for a host named exactly); every request then goes to
  that address, with the URL's ``Host`` header and TLS server name, no proxy taken from the
  environment, redirects only within the URL's origin (the SDK's rule). Each request carries
  the W3C ``traceparent`` of the span current where it was sent (the tool call's: the SDK
  hands a sender's context to the task that posts), so the server may join the trace.

Every ``tools/call``, whatever the transport, carries the tool call's trace context in
``params._meta`` (``traceparent``, and ``tracestate`` when set: MCP's SEP-414 convention),
so a stdio server, which has no headers, may join the trace too.

Each server gets the ``initialize`` handshake (protocol revisions up to 2025-11-25; a server
that only speaks the stateless 2026-07-28 revision is refused), then its tools are listed,
page by page (cursors, at most :data:`MAX_PAGES`), and the list is kept for the session:
it is listed again only after the server sends ``notifications/tools/list_changed``, before
the next model call. Tool ``t`` of server ``s`` becomes the ember tool ``s__t``
(:data:`SEPARATOR`) whose parameters are ``t``'s ``inputSchema``; a tool whose ember name is
not 1 to 64 letters, digits, ``_`` or ``-`` (OpenAI's rule), or whose schema is not a valid
JSON schema of an object, is left out with a log line.

A call's arguments are checked against the schema first (``invalid_arguments``); the result's
text blocks become the tool result (images, audio and resources are summarized in one line
each); an ``isError`` result is ``tool_failed`` with that text. Every error of the SDK or its
transports (:data:`TRANSLATED`) becomes :class:`~ember.errors.McpServerFailed` here: when a
server is opened it fails the run; during a call it is a tool error the model sees
(``mcp_server_failed``: the server exited, closed the connection, did not answer within
``limits.mcp_timeout_s``, or broke the protocol).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import anyio
import httpx2
from mcp import Client, StdioServerParameters, types
from mcp.client.session import ClientSession, IncomingMessage
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from ember.agents.egress import HostRule, Resolver, pin_address, system_resolver
from ember.agents.policy import AgentProfile, McpServer
from ember.agents.tools import AnyTool, SchemaTool, ToolFailure
from ember.errors import EmberError, McpServerFailed, ValidationFailed
from ember.observability.tracing import carrier, inject_headers
from ember.sandbox.protocol import Sandbox

__all__ = [
    "MAX_PAGES",
    "SEPARATOR",
    "TRANSLATED",
    "McpConnection",
    "open_mcp_servers",
    "render_result",
    "translate",
    "translating",
]

log = logging.getLogger("ember.agents.mcp")

SEPARATOR = "__"
"""Between a server's name and its tool's name in an ember tool name."""
MAX_PAGES = 100
"""The most ``tools/list`` pages one listing follows."""
WALL_GRACE_S = 60.0
"""How much longer than the run's ``wall_s`` a stdio server may live."""
STDERR_TAIL_BYTES = 16 * 1024
"""What is kept of a stdio server's stderr (the end)."""
SSE_READ_S = 300.0
"""Read timeout of an HTTP server's event streams (each request has ``mcp_timeout_s``)."""
CLIENT_INFO = types.Implementation(name="ember", version="0.1.0")
UNREACHABLE = -32090
"""The JSON-RPC error code ember's HTTP transport answers a request with when the server
could not be reached (in the range JSON-RPC leaves to implementations; never sent)."""

TRANSLATED: tuple[type[Exception], ...] = (
    MCPError,
    httpx2.HTTPError,
    OSError,
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
    RuntimeError,
    ValueError,
)
"""What the SDK and its transports raise, each translated into ``McpServerFailed``:
JSON-RPC errors, timeouts and a closed connection (``MCPError``), HTTP and connection
failures, a process that cannot be spawned (``OSError``), closed streams, and results that
break the protocol (``RuntimeError``; ``ValueError``, pydantic's ``ValidationError``
included). An exception group of only these is translated as its first one."""


def _describe(exc: BaseException, timeout_s: float | None) -> str:
    if isinstance(exc, MCPError):
        if exc.code == types.REQUEST_TIMEOUT:
            within = f" within {timeout_s:g} s" if timeout_s is not None else ""
            return f"it did not answer{within}"
        if exc.code == types.CONNECTION_CLOSED:
            return "the connection closed (the server exited or hung up)"
        if exc.code == UNREACHABLE:
            return f"it could not be reached: {exc.message}"
        return f"it answered with error {exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


def translate(
    exc: BaseException,
    server: str,
    doing: str,
    *,
    timeout_s: float | None = None,
    stderr: str = "",
) -> McpServerFailed:
    """``exc`` (one of :data:`TRANSLATED`) as the :class:`McpServerFailed` that names
    ``server``, what was being done, what happened and the end of the server's stderr."""
    detail = f"MCP server {server!r}: {doing} failed: {_describe(exc, timeout_s)}"
    if stderr.strip():
        detail += f"; its stderr ends with: {stderr.strip()[-1000:]}"
    return McpServerFailed(detail, extra={"server": server})


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


@contextlib.contextmanager
def translating(
    server: str,
    doing: str,
    *,
    timeout_s: float | None = None,
    stderr: Callable[[], str] = str,
) -> Iterator[None]:
    """Translate what the SDK raises inside the block into :class:`McpServerFailed` (see
    :data:`TRANSLATED`); ember's own errors, cancellation and anything else pass as they
    are."""
    try:
        yield
    except EmberError:
        raise
    except TRANSLATED as exc:
        raise translate(exc, server, doing, timeout_s=timeout_s, stderr=stderr()) from exc
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if leaves and all(isinstance(leaf, Exception) for leaf in leaves):
            for leaf in leaves:
                if isinstance(leaf, EmberError):
                    raise leaf from group
            if all(isinstance(leaf, TRANSLATED) for leaf in leaves):
                raise translate(
                    leaves[0], server, doing, timeout_s=timeout_s, stderr=stderr()
                ) from group
        raise


def render_result(result: types.CallToolResult) -> str:
    """What the model is shown of a tool's result: its text blocks, one line for each other
    block, or the structured content as JSON when there are no blocks."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.ImageContent | types.AudioContent):
            kind = "image" if isinstance(block, types.ImageContent) else "audio"
            size = len(block.data) * 3 // 4 - (len(block.data) - len(block.data.rstrip("=")))
            parts.append(f"[{kind}: {block.mime_type}, {size} bytes, not shown]")
        elif isinstance(block, types.ResourceLink):
            parts.append(f"[resource link: {block.uri} ({block.mime_type or 'unknown type'})]")
        elif isinstance(block, types.EmbeddedResource):
            resource = block.resource
            if isinstance(resource, types.TextResourceContents):
                parts.append(f"[resource {resource.uri}]\n{resource.text}")
            else:
                kind = resource.mime_type or "unknown type"
                parts.append(f"[resource {resource.uri}: {kind}, binary, not shown]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False, default=str)
    return "\n".join(parts)


class _Tail(asyncio.Protocol):
    """Keeps the last :data:`STDERR_TAIL_BYTES` of a pipe."""

    def __init__(self) -> None:
        self.data = bytearray()

    def data_received(self, data: bytes) -> None:
        self.data += data
        del self.data[: max(0, len(self.data) - STDERR_TAIL_BYTES)]

    def text(self) -> str:
        return self.data.decode(errors="replace")


class McpConnection:
    """One open MCP server of a run: a :class:`~ember.agents.protocol.ToolSource` whose tools
    call it. Built and opened by :func:`open_mcp_servers`; ``list_requests`` counts the
    ``tools/list`` pages it asked for."""

    def __init__(self, server: McpServer, timeout_s: float) -> None:
        self.server = server
        self.name = server.name
        self.timeout_s = timeout_s
        self.list_requests = 0
        self._client: Client | None = None
        self._tools: list[AnyTool] = []
        self._stale = False
        self._lock = asyncio.Lock()
        self._stderr: Callable[[], str] = str

    def _edge(self, doing: str) -> contextlib.AbstractContextManager[None]:
        return translating(self.name, doing, timeout_s=self.timeout_s, stderr=self._stderr)

    async def on_message(self, message: IncomingMessage) -> None:
        """The session's message handler: a tool-list change marks the list stale."""
        if isinstance(message, types.ToolListChangedNotification):
            log.info("MCP server %s: its tool list changed", self.name)
            self._stale = True
        elif isinstance(message, Exception):
            log.debug("MCP server %s: transport error %r", self.name, message)

    @property
    def stale(self) -> bool:
        """Whether the server said its tool list changed since it was last listed."""
        return self._stale

    async def refresh(self) -> None:
        """List the server's tools again (every page) and rebuild the ember tools.

        :raises McpServerFailed: the listing failed, or its pages do not end.
        """
        async with self._lock:
            self._stale = False
            listed: list[types.Tool] = []
            cursor: str | None = None
            seen: set[str] = set()
            for _ in range(MAX_PAGES):
                params = types.PaginatedRequestParams(cursor=cursor)
                self.list_requests += 1
                with self._edge("listing its tools"):
                    page = await self._session().list_tools(params=params)
                listed += page.tools
                cursor = page.next_cursor
                if cursor is None:
                    break
                if cursor in seen:
                    raise McpServerFailed(
                        f"MCP server {self.name!r}: its tools/list repeats cursor {cursor!r}",
                        extra={"server": self.name},
                    )
                seen.add(cursor)
            else:
                raise McpServerFailed(
                    f"MCP server {self.name!r}: its tools/list has more than {MAX_PAGES} pages",
                    extra={"server": self.name},
                )
            self._tools = self._convert(listed)

    def _session(self) -> ClientSession:
        if self._client is None:
            raise McpServerFailed(f"MCP server {self.name!r} is not open")
        return self._client.session

    def _convert(self, listed: Sequence[types.Tool]) -> list[AnyTool]:
        tools: list[AnyTool] = []
        names: set[str] = set()
        for spec in listed:
            name = f"{self.name}{SEPARATOR}{spec.name}"
            if name in names:
                log.warning(
                    "MCP server %s lists tool %r twice; the first is kept", self.name, spec.name
                )
                continue
            try:
                tool = SchemaTool(
                    name,
                    spec.description or spec.title or spec.name,
                    spec.input_schema,
                    self._handler(spec.name),
                )
            except ValueError as exc:
                log.warning("MCP server %s: tool %r left out: %s", self.name, spec.name, exc)
                continue
            names.add(name)
            tools.append(tool)
        return tools

    def _handler(self, tool: str) -> Callable[[dict[str, Any]], Any]:
        async def call(arguments: dict[str, Any]) -> str:
            return await self.call(tool, arguments)

        return call

    async def tools(self) -> list[AnyTool]:
        """The ember tools as they are now: listed again first when the server said its list
        changed (a listing that fails keeps the tools as they were, and is tried again)."""
        await asyncio.sleep(0)  # let a notification that came with the last answer land
        if self._stale:
            try:
                await self.refresh()
            except McpServerFailed as exc:
                self._stale = True
                log.warning("%s; keeping its tools as they were", exc.detail)
        return list(self._tools)

    async def call(self, tool: str, arguments: dict[str, Any]) -> str:
        """Call the server's ``tool`` (its own name) with ``arguments``; the text the model
        sees.

        :raises ToolFailure: the result says ``isError``.
        :raises McpServerFailed: the call failed (see :data:`TRANSLATED`).
        """
        if self._client is None:
            raise McpServerFailed(f"MCP server {self.name!r} is not open")
        with self._edge(f"calling {tool}"):
            context = carrier()
            result = await self._client.call_tool(
                tool,
                arguments,
                read_timeout_seconds=self.timeout_s,
                meta=cast(types.RequestParamsMeta, context) if context else None,
            )
        text = render_result(result)
        if result.is_error:
            raise ToolFailure(text or f"{tool} reported an error")
        return text


class _Guarded(httpx2.AsyncByteStream):
    """A response body whose transport failure ends it early instead of raising."""

    def __init__(self, inner: httpx2.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx2.TransportError as exc:
            log.debug("an MCP server's response broke off: %r", exc)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _PinnedTransport(httpx2.AsyncBaseTransport):
    """Sends every request for ``url``'s origin to ``address`` (checked by the egress
    rules), keeping the ``Host`` header and the TLS server name; refuses any other origin.

    It never raises: the SDK sends each request from a task of the session's task group,
    where an exception would cancel the whole run. A request that fails (connection refused,
    reset, timed out) is answered with a 502 carrying a JSON-RPC error (code
    :data:`UNREACHABLE`), which the SDK hands to the waiting request; a body that breaks off
    just ends."""

    def __init__(self, url: httpx2.URL, address: str) -> None:
        self._origin = (url.scheme, url.host, url.port)
        self._address = address
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if (url.scheme, url.host, url.port) != self._origin:
            return _unreachable(request, f"{url.host} is not the MCP server's origin")
        request.url = url.copy_with(host=self._address)
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": url.host}
        try:
            response = await self._inner.handle_async_request(request)
        except httpx2.TransportError as exc:
            return _unreachable(request, f"{type(exc).__name__}: {exc}")
        response.stream = _Guarded(response.stream)  # type: ignore[arg-type]
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _unreachable(request: httpx2.Request, why: str) -> httpx2.Response:
    error = {"code": UNREACHABLE, "message": why}
    return httpx2.Response(
        502, json={"jsonrpc": "2.0", "id": None, "error": error}, request=request
    )


async def _traceparent(request: httpx2.Request) -> None:
    """The HTTP client's request hook: the current span's ``traceparent`` goes with it."""
    inject_headers(request.headers)


async def _http(
    server: McpServer,
    profile: AgentProfile,
    resolver: Resolver,
    stack: contextlib.AsyncExitStack,
) -> Any:
    assert server.url is not None
    url = httpx2.URL(server.url)
    port = url.port or (443 if url.scheme == "https" else 80)
    rules = [HostRule.parse(entry) for entry in profile.egress_hosts]
    address = await pin_address(rules, url.host, port, resolver)
    timeout = profile.limits.mcp_timeout_s
    http = httpx2.AsyncClient(
        transport=_PinnedTransport(url, address),
        trust_env=False,
        follow_redirects=False,
        timeout=httpx2.Timeout(timeout, read=max(timeout, SSE_READ_S)),
        event_hooks={"request": [_traceparent]},
    )
    await stack.enter_async_context(http)
    return streamable_http_client(server.url, http_client=http)


async def _stdio(
    server: McpServer,
    profile: AgentProfile,
    workspace: Path,
    sandbox: Sandbox | None,
    stack: contextlib.AsyncExitStack,
    connection: McpConnection,
) -> Any:
    assert server.command is not None
    if sandbox is None:
        raise ValidationFailed(
            f"MCP server {server.name!r} runs a command, but no sandbox was given",
            errors=[{"path": "mcp_servers", "message": "needs a sandbox", "type": "value"}],
        )
    limits = dataclasses.replace(
        profile.sandbox.limits(), wall_s=profile.limits.wall_s + WALL_GRACE_S
    )
    command = await asyncio.to_thread(
        sandbox.command,
        [server.command, *server.args],
        workspace,
        limits,
        read_only_paths=server.read_only_paths,
    )
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb", buffering=0)
    pipe, tail = await asyncio.get_running_loop().connect_read_pipe(_Tail, reader)
    stack.callback(pipe.close)
    errlog = stack.enter_context(os.fdopen(write_fd, "w"))
    connection._stderr = tail.text
    params = StdioServerParameters(
        command=command.argv[0], args=list(command.argv[1:]), env=dict(command.env)
    )
    return stdio_client(params, errlog=errlog)


@contextlib.asynccontextmanager
async def open_mcp_servers(
    profile: AgentProfile,
    workspace: Path,
    *,
    sandbox: Sandbox | None = None,
    resolver: Resolver = system_resolver,
) -> AsyncIterator[list[McpConnection]]:
    """Open every server of ``profile`` (in order; a stdio server in ``sandbox`` over
    ``workspace``), list its tools, and yield them; close them all when the block ends.

    :raises McpServerFailed: a server could not be started, reached, initialized or listed.
    :raises PolicyDenied: an HTTP server's host is not allowed, or resolves to a refused
        address; nothing was sent to it.
    :raises BadRequest: its host does not resolve; a stdio server's command or read-only
        path is refused by the sandbox.
    :raises ValidationFailed: a stdio server but no ``sandbox``.
    :raises SandboxUnavailable: as :meth:`~ember.sandbox.protocol.Sandbox.command`.
    """
    timeout = profile.limits.mcp_timeout_s
    primary: BaseException | None = None
    served = False
    try:
        async with contextlib.AsyncExitStack() as stack:
            try:
                connections: list[McpConnection] = []
                for server in profile.mcp_servers:
                    connections.append(
                        await _open(server, profile, workspace, sandbox, resolver, stack, timeout)
                    )
                yield connections
            except BaseException as exc:
                primary = exc
                raise
            served = True
    except BaseException as exc:
        # The SDK's task groups wrap what was raised while they were open (by the block, or
        # by opening the next server) in exception groups, and may add failures of their
        # own on the way out: that first error is what the caller gets.
        if exc is primary:
            raise
        leaves = list(_leaves(exc)) if isinstance(exc, BaseExceptionGroup) else [exc]
        if any(not isinstance(leaf, Exception) and leaf is not primary for leaf in leaves):
            raise  # cancelled (or interrupted) while closing
        if primary is not None:
            log.debug("closing MCP servers after an error", exc_info=exc)
            raise primary from primary.__cause__
        if served:
            log.warning("closing the MCP servers failed", exc_info=exc)
            return
        raise


async def _open(
    server: McpServer,
    profile: AgentProfile,
    workspace: Path,
    sandbox: Sandbox | None,
    resolver: Resolver,
    stack: contextlib.AsyncExitStack,
    timeout: float,
) -> McpConnection:
    connection = McpConnection(server, timeout)
    if server.url is not None:
        transport = await _http(server, profile, resolver, stack)
    else:
        transport = await _stdio(server, profile, workspace, sandbox, stack, connection)
    client = Client(
        transport,
        mode="legacy",
        cache=None,
        read_timeout_seconds=timeout,
        message_handler=connection.on_message,
        client_info=CLIENT_INFO,
    )
    with connection._edge("starting"):
        await stack.enter_async_context(client)
    connection._client = client
    await connection.refresh()
    log.info("MCP server %s: %d tools", server.name, len(connection._tools))
    return connection
