"""A real MCP server, written with the ``mcp`` SDK, for the MCP client tests.

Run it as ``python tests/agents/mcp_server.py --stdio`` (what an agent profile starts inside
the sandbox) or ``--http PORT`` (Streamable HTTP at ``http://127.0.0.1:PORT/mcp``); in a test
process, :class:`McpHttpServer` serves the same server from a thread on a free loopback port.
Other arguments (a marker to find its processes, say) are ignored.

Tools: ``add``, ``echo``, ``write_note`` (a file in its working directory), ``whoami`` (uid,
hostname, working directory, whether ``/etc/shadow`` can be read), ``fail`` (an ``isError``
result), ``picture`` (an image and a text block), ``nap`` (sleeps), ``die`` (the process exits
mid-call), ``grow`` (adds a tool and sends ``notifications/tools/list_changed``), ``stats``
(how many ``tools/list`` and ``tools/call`` requests it answered), ``meta`` (the call's
``_meta``) and ``bad.name`` (a name
OpenAI refuses). ``tools/list`` answers in pages of :data:`PAGE_SIZE` tools, with cursors.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import sys
from pathlib import Path
from typing import Any

from mcp.server import MCPServer
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import (
    CallToolRequestParams,
    CallToolResult,
    ImageContent,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
)

PAGE_SIZE = 4
"""Tools per ``tools/list`` page."""
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def build_server() -> tuple[MCPServer, dict[str, int]]:
    """The server and its counters (``tools/list`` and ``tools/call`` requests answered)."""
    server = MCPServer("ember-test-server")
    counts = {"tools/list": 0, "tools/call": 0}

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def echo(text: str) -> str:
        """Return the text as given."""
        return text

    @server.tool()
    def write_note(name: str, text: str) -> str:
        """Write ``text`` to the file ``name`` in the working directory."""
        if "/" in name or name in ("", ".", ".."):
            raise ToolError(f"not a plain file name: {name!r}")
        path = Path.cwd() / name
        path.write_text(text)
        return str(path)

    @server.tool()
    def whoami() -> dict[str, Any]:
        """Who and where the server runs."""
        try:
            with open("/etc/shadow") as shadow:
                shadow.read(1)
            reads_shadow = True
        except OSError:
            reads_shadow = False
        return {
            "uid": os.getuid(),
            "hostname": socket.gethostname(),
            "cwd": os.getcwd(),
            "pid": os.getpid(),
            "reads_shadow": reads_shadow,
        }

    @server.tool()
    def fail(message: str) -> str:
        """Fail with ``message`` (an isError result)."""
        raise ToolError(message)

    @server.tool()
    def picture() -> list[Any]:
        """A one-pixel PNG and a caption."""
        image = ImageContent(data=base64.b64encode(PNG).decode(), mime_type="image/png")
        return [TextContent(text="a pixel"), image]

    @server.tool()
    async def nap(seconds: float) -> str:
        """Sleep, then answer."""
        await asyncio.sleep(seconds)
        return "rested"

    @server.tool()
    def die() -> str:
        """Exit the server process at once, mid-call."""
        sys.stdout.flush()
        os._exit(3)

    @server.tool()
    async def grow(name: str, ctx: Context) -> str:
        """Add a tool ``name`` (it echoes) and tell the client the list changed."""

        def grown(text: str) -> str:
            return f"{name}: {text}"

        server.add_tool(grown, name=name, description=f"The grown tool {name}.")
        await ctx.session.send_tool_list_changed()
        return f"added {name}"

    @server.tool()
    def meta(ctx: Context) -> dict[str, Any]:
        """The ``_meta`` of this call's request."""
        return dict(ctx.request_context.meta or {})

    @server.tool()
    def stats() -> dict[str, int]:
        """How many requests of each counted kind the server answered."""
        return dict(counts)

    @server.tool(name="bad.name")
    def bad_name() -> str:
        """A tool whose name has a dot."""
        return "unreachable through ember"

    async def list_tools(
        ctx: ServerRequestContext[Any], params: PaginatedRequestParams
    ) -> ListToolsResult:
        counts["tools/list"] += 1
        tools = await server.list_tools()
        start = int(params.cursor or 0)
        end = start + PAGE_SIZE
        return ListToolsResult(
            tools=tools[start:end], next_cursor=str(end) if end < len(tools) else None
        )

    async def call_tool(ctx: ServerRequestContext[Any], params: CallToolRequestParams) -> Any:
        counts["tools/call"] += 1
        result: CallToolResult = await server._handle_call_tool(ctx, params)
        return result

    lowlevel = server._lowlevel_server
    lowlevel.add_request_handler("tools/list", PaginatedRequestParams, list_tools)
    lowlevel.add_request_handler("tools/call", CallToolRequestParams, call_tool)
    return server, counts


def http_app(server: MCPServer) -> Any:
    """The Streamable HTTP app; any ``Host`` is accepted (the client may name the server by
    a name the test resolves itself)."""
    return server.streamable_http_app(
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )


class McpHttpServer:
    """:func:`build_server` over Streamable HTTP, from a daemon thread on 127.0.0.1 (a free
    port); :attr:`url` is its endpoint, :attr:`counts` its counters, :attr:`hosts` the
    ``Host`` header of every HTTP request it received."""

    def __init__(self) -> None:
        from tests.fakes.server import ThreadedFakeServer

        self.server, self.counts = build_server()
        self.hosts: list[str] = []
        outer = self

        class _Threaded(ThreadedFakeServer):
            lifespan = "on"

            def _asgi(self) -> Any:
                app = http_app(outer.server)

                async def counting(scope: Any, receive: Any, send: Any) -> None:
                    if scope["type"] == "http":
                        headers = dict(scope["headers"])
                        outer.hosts.append(headers.get(b"host", b"").decode())
                    await app(scope, receive, send)

                return counting

        self._threaded = _Threaded()
        self._threaded._init_server("MCP test server")

    @property
    def port(self) -> int:
        return self._threaded.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def __enter__(self) -> McpHttpServer:
        self._threaded.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._threaded.stop()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--stdio", action="store_true", help="serve on stdin/stdout")
    group.add_argument("--http", type=int, metavar="PORT", help="serve on 127.0.0.1:PORT")
    options, _ = parser.parse_known_args(argv)
    server, _ = build_server()
    if options.stdio:
        server.run("stdio")
    else:
        import uvicorn

        uvicorn.run(http_app(server), host="127.0.0.1", port=options.http, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
