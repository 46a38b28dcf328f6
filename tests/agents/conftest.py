"""Agent fixtures: the scripted chat fake behind a real router and OpenAI provider, a job
context that keeps its events, and a workspace directory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ember.config import RouterConfig
from ember.jobs.context import JobContext
from ember.jobs.records import JobRecord
from ember.jobs.states import JobState
from ember.providers import OpenAIProvider
from ember.providers.router import Router
from tests.fakes.scripted_chat_fake import ScriptedChatServer

MODEL = "scripted/agent-model"
"""The alias the agent tests use: ``provider/model`` of the scripted fake."""


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[ScriptedChatServer]:
    with ScriptedChatServer(model="agent-model") as server:
        yield server


@pytest.fixture
def scripted(scripted_server: ScriptedChatServer) -> Iterator[ScriptedChatServer]:
    scripted_server.load([], style="openai")
    yield scripted_server
    scripted_server.load([], style="openai")


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def router(scripted: ScriptedChatServer) -> AsyncIterator[Router]:
    provider = OpenAIProvider("scripted", scripted.base_url, api_key="k", timeout_s=5)
    router = Router(
        {"scripted": provider},
        RouterConfig(retry_attempts=1, default_provider=None, aliases={}),
        sleep=_no_sleep,
    )
    yield router
    await router.aclose()


class Events:
    """The events a real :class:`JobContext` published, in order."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []
        now = datetime.now(UTC)
        job = JobRecord(
            "job-1",
            "agent",
            JobState("running"),
            "alice",
            None,
            None,
            {},
            None,
            None,
            None,
            1,
            1,
            None,
            None,
            now,
            now,
            now,
            None,
        )
        self.context = JobContext(job, self._emit)

    async def _emit(self, type_: str, data: dict[str, Any]) -> int:
        self.published.append((type_, data))
        return len(self.published)

    def logs(self, message: str) -> list[dict[str, Any]]:
        return [
            data for type_, data in self.published if type_ == "log" and data["message"] == message
        ]

    def tokens(self) -> list[str]:
        return [data["text"] for type_, data in self.published if type_ == "token"]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    root.mkdir()
    return root
