"""ember's whole app (``create_app`` over a real context) served by uvicorn on 127.0.0.1, for
tests that talk to it as a client or an attacker would, over real HTTP.

The context is the real one over a migrated SQLite database, with a memory plane over the
hash embedder, a job system whose dispatcher never runs (jobs stay queued, so their event
streams stay open until the client leaves) and a router over :class:`Ticker`, an in-process
provider that answers at once and streams until it is closed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from ember.chat import Capability, ChatMessage, Completion, Delta, GenerationOptions
from ember.config import EmberConfig, load_config
from ember.jobs.bus import LocalJobBus
from ember.jobs.dispatcher import LeaseDispatcher
from ember.jobs.events import SqlEventStore
from ember.jobs.hub import EventHub
from ember.jobs.repository import SqlJobRepository
from ember.providers.router import Router
from ember.serve_app import AppContext, build_context, create_app
from ember.services import memory_plane
from ember.storage import Database, Migrator
from tests.fakes.server import ThreadedFakeServer
from tests.support.embedders import HashEmbedder, WordTokenizer
from tests.support.postgres import free_port


class Ticker:
    """A provider in this process: ``chat`` and ``generate`` answer ``ok``; streams send
    ``tick`` every 50 ms until closed."""

    name = "ticker"
    capabilities = frozenset({Capability.CHAT, Capability.GENERATE, Capability.STREAM})

    async def chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> Completion:
        return Completion("ok", model, self.name, "stop")

    async def generate(self, model: str, prompt: str, options: GenerationOptions) -> Completion:
        return Completion("ok", model, self.name, "stop")

    async def stream_chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        while True:
            yield Delta("tick ")
            await asyncio.sleep(0.05)

    async def stream_generate(
        self, model: str, prompt: str, options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        async for delta in self.stream_chat(model, [], options):
            yield delta

    async def aclose(self) -> None:
        return None


class Served(ThreadedFakeServer):
    """An ASGI app served by uvicorn in a thread on 127.0.0.1:``port``, lifespan on."""

    lifespan = "on"

    def __init__(self, app: FastAPI, port: int) -> None:
        self.app = app
        self._init_server("ember app")
        self.port = port

    def _asgi(self) -> FastAPI:
        return self.app


@dataclasses.dataclass
class Ember:
    """A served ember: its URL, port, config and context (tokens, jobs, database)."""

    url: str
    port: int
    config: EmberConfig
    context: AppContext

    def token(self, *scopes: str, principal: str = "ci") -> tuple[str, str]:
        """A new token's id and secret (creating one ends the dev bypass for good)."""
        record, secret = self.context.tokens.create(principal, principal, list(scopes))
        return record.id, secret


Serve = Callable[..., Ember]
"""``serve(**settings)``: an ember with these ``EMBER_*`` settings on top of the test ones."""


@contextmanager
def serving(home: Path, settings: dict[str, str]) -> Iterator[Ember]:
    port = free_port()
    env = {
        "EMBER_HOME": str(home),
        "EMBER_SERVER_PORT": str(port),
        "EMBER_JOBS_PLUGINS": "tests.jobs.plugin:kinds",
        "EMBER_JOBS_HEARTBEAT_S": "0.2",
        **settings,
    }
    config = load_config(None, env)
    database = Database.from_config(config)
    Migrator(database).upgrade()
    jobs = SqlJobRepository(database)
    hub = EventHub(SqlEventStore(database), ring_size=64, flush_interval_s=0.02)
    bus = LocalJobBus(hub, LeaseDispatcher(jobs, {}, hub.publish, lease_ttl_s=5.0))
    memory = memory_plane(config, database, embedder=(HashEmbedder(), WordTokenizer()))
    context = build_context(config, memory=memory, bus=bus)
    context = dataclasses.replace(context, router=Router({"ticker": Ticker()}))  # type: ignore[dict-item]
    try:
        with Served(create_app(context), port):
            yield Ember(f"http://127.0.0.1:{port}", port, config, context)
    finally:
        memory.close()
        context.database.dispose()
        database.dispose()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start embers with given settings; each is stopped when the test ends."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        count = iter(range(100))

        def start(**settings: str) -> Ember:
            home = tmp_path / f"ember-{next(count)}"
            return stack.enter_context(serving(home, settings))

        yield start


def raw_request(
    port: int, lines: list[str], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """Send one hand-written HTTP/1.1 request (``lines``: request line and headers) to
    127.0.0.1:``port`` and read the status, headers and body of the answer (a ``101`` upgrade
    answers no body; the socket is closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
        length = int(headers.get("content-length", "0"))
        while status != 101 and len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest[:length]


def upgrade_lines(path: str, host: str, **headers: str) -> list[str]:
    """The request lines of a WebSocket upgrade of ``path`` with ``Host: host``."""
    extra = [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *extra,
    ]


def problem(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The problem document of a raw answer, checked to be one."""
    import json

    assert headers.get("content-type") == "application/problem+json", (status, headers, body)
    document: dict[str, Any] = json.loads(body)
    assert document["status"] == status
    return document
