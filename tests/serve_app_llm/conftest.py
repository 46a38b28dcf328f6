"""The OpenAI and Ollama routes over real HTTP: the ember app served by uvicorn on 127.0.0.1,
a real Router over OpenAIProvider adapters of two fake OpenAI servers (recording usage rows,
no budgets), a fixed ModelDirectory, and the real authenticator over a migrated SQLite
database.

The router records each call's RouteRequest and options, so tests see what reached it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from ember.auth import Authenticator, RateLimiter, SqlTokenRepository
from ember.chat import ChatMessage, Completion, GenerationOptions, ModelInfo
from ember.config.models import ProvidersConfig, RouterConfig
from ember.errors import ProviderModelNotFound
from ember.models.records import LoadedModel
from ember.providers.budget import Budgets
from ember.providers.openai import OpenAIProvider
from ember.providers.router import Embeddings, RoutedStream, Router, RouteRequest
from ember.serve_app.compat.ollama.routes import ollama_router
from ember.serve_app.compat.openai.routes import openai_router
from ember.serve_app.middleware import RequestContextMiddleware
from ember.serve_app.problems import install_problem_handlers
from ember.storage import Database, Migrator, SqlUsageLog
from tests.fakes.openai_fake import FakeOpenAIServer
from tests.fakes.server import ThreadedFakeServer

MODELS = ("echo-model", "embed-model")
DIM = 32
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclasses.dataclass
class Seen:
    """One router call as the routes made it."""

    op: str
    alias: str
    route: RouteRequest
    options: GenerationOptions | None


class RecordingRouter(Router):
    """A real Router that also records the alias, route and options of every call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[Seen] = []

    def _see(self, op: str, alias: str, route: RouteRequest | None, options: Any) -> None:
        assert route is not None, "the API must always pass a RouteRequest"
        self.seen.append(Seen(op, alias, route, options))

    async def chat(
        self,
        alias: str,
        messages: Sequence[ChatMessage],
        options: GenerationOptions | None = None,
        route: RouteRequest | None = None,
    ) -> Completion:
        self._see("chat", alias, route, options)
        return await super().chat(alias, messages, options, route)

    async def generate(
        self,
        alias: str,
        prompt: str,
        options: GenerationOptions | None = None,
        route: RouteRequest | None = None,
    ) -> Completion:
        self._see("generate", alias, route, options)
        return await super().generate(alias, prompt, options, route)

    async def embed(
        self, alias: str, texts: Sequence[str], route: RouteRequest | None = None
    ) -> Embeddings:
        self._see("embed", alias, route, None)
        return await super().embed(alias, texts, route)

    def stream_chat(
        self,
        alias: str,
        messages: Sequence[ChatMessage],
        options: GenerationOptions | None = None,
        route: RouteRequest | None = None,
    ) -> RoutedStream:
        self._see("stream_chat", alias, route, options)
        return super().stream_chat(alias, messages, options, route)

    def stream_generate(
        self,
        alias: str,
        prompt: str,
        options: GenerationOptions | None = None,
        route: RouteRequest | None = None,
    ) -> RoutedStream:
        self._see("stream_generate", alias, route, options)
        return super().stream_generate(alias, prompt, options, route)


class FixedDirectory:
    """A ModelDirectory over fixed lists."""

    def __init__(self, models: list[ModelInfo], loaded: list[LoadedModel]) -> None:
        self.models = models
        self.resident = loaded
        self.loads: list[tuple[str, float | None]] = []

    async def list_models(self) -> list[ModelInfo]:
        return list(self.models)

    async def show(self, name: str) -> ModelInfo:
        for info in self.models:
            if info.name == name:
                return info
        raise ProviderModelNotFound(f"no model or alias is called {name!r}")

    async def loaded(self) -> list[LoadedModel]:
        return list(self.resident)

    async def load(self, name: str, keep_alive_s: float | None) -> bool:
        self.loads.append((name, keep_alive_s))
        return keep_alive_s == 0


class AppServer(ThreadedFakeServer):
    """The ember app under test, served by uvicorn in a background thread on 127.0.0.1; its
    shut-down closes the router's providers, as ember's own app does."""

    lifespan = "on"

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._init_server("ember app")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _asgi(self) -> FastAPI:
        return self.app


@dataclasses.dataclass
class Stack:
    """Everything one test talks to."""

    server: AppServer
    router: RecordingRouter
    upstream: FakeOpenAIServer
    spare: FakeOpenAIServer
    tokens: SqlTokenRepository
    directory: FixedDirectory
    key: str
    """A token of the principal ``app`` with ``models:use`` (so the dev bypass is off)."""
    key_id: str
    usage: SqlUsageLog
    """The usage rows the router wrote."""
    clients: list[Any] = dataclasses.field(default_factory=list)
    """Clients a test made with :meth:`keep`, closed when the test ends."""

    def keep(self, client: Any) -> Any:
        """``client``, closed (``close()``) when the test ends."""
        self.clients.append(client)
        return client

    @property
    def url(self) -> str:
        return self.server.url

    def token(self, *scopes: str, principal: str = "ci") -> str:
        return self.tokens.create(principal, principal, list(scopes))[1]


async def _no_sleep(_: float) -> None:
    return None


def directory_models() -> list[ModelInfo]:
    return [
        ModelInfo("chat", "alias", details={"candidates": [["fake/echo-model"]]}),
        ModelInfo(
            "fake/echo-model",
            "fake",
            digest="sha256:abc",
            size_bytes=1234,
            context_length=4096,
            details={
                "format": "gguf",
                "family": "llama",
                "parameter_size": "270M",
                "quantization_level": "Q8_0",
                "capabilities": ["completion", "tools"],
                "created": 1700000000,
            },
        ),
        ModelInfo("fake/embed-model", "fake", details={"capabilities": ["embedding"]}),
    ]


def loaded_models() -> list[LoadedModel]:
    return [
        LoadedModel(
            name="gemma3-270m",
            digest="sha256:def",
            node_id="node-7",
            size_bytes=300_000_000,
            loaded_at=NOW,
            last_used_at=NOW + timedelta(seconds=5),
            expires_at=NOW + timedelta(minutes=5),
            gpu=True,
            queue_depth=2,
            replicas=2,
            nodes=("node-7", "node-9"),
        )
    ]


def build_app(router: Router, directory: FixedDirectory, auth: Authenticator) -> FastAPI:
    """What create_app does, with only the two dialect routers."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await router.aclose()

    app = FastAPI(lifespan=lifespan)
    install_problem_handlers(app)
    app.include_router(openai_router(router, directory))
    app.include_router(ollama_router(router, directory))
    app.add_middleware(RequestContextMiddleware)
    app.state.authenticator = auth
    return app


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    database = Database(f"sqlite:///{tmp_path / 'ember.db'}")
    Migrator(database).upgrade()
    tokens = SqlTokenRepository(database)
    auth = Authenticator(tokens, RateLimiter(0, 1))
    with FakeOpenAIServer(DIM, MODELS) as upstream, FakeOpenAIServer(DIM, MODELS) as spare:
        providers = {
            "fake": OpenAIProvider("fake", upstream.base_url, "unused", timeout_s=10),
            "spare": OpenAIProvider("spare", spare.base_url, "unused", timeout_s=10),
        }
        config = RouterConfig(
            aliases={
                "chat": ["fake/echo-model", "spare/echo-model"],
                "embed": ["fake/embed-model"],
            },
            default_provider=None,
            retry_attempts=1,
            breaker_failures=100,
        )
        usage = SqlUsageLog(database)
        budgets = Budgets(ProvidersConfig(), usage)
        router = RecordingRouter(providers, config, budgets=budgets, sleep=_no_sleep)
        directory = FixedDirectory(directory_models(), loaded_models())
        server = AppServer(build_app(router, directory, auth))
        record, key = tokens.create("app", "app", ["models:use"])
        server.start()
        try:
            stack = Stack(server, router, upstream, spare, tokens, directory, key, record.id, usage)
            yield stack
        finally:
            for client in stack.clients:
                client.close()
            server.stop()
            database.dispose()
