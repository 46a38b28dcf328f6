"""``OPENAI_API_KEY`` goes to OpenAI, not to every server an ``openai`` provider points at.

The operator has ``OPENAI_API_KEY`` in ember's environment and configures a third-party
OpenAI-compatible server by ``base_url``. That server (the fake OpenAI server, which records
the ``Authorization`` header of every request) must not receive the key unless the provider
says so with ``api_key_env``. Providers are built the way ember builds them: from
``providers.instances`` through the registry, and the embedder from ``embeddings``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ember.chat import ChatMessage, GenerationOptions
from ember.config import load_config
from ember.errors import ProviderAuthFailed
from ember.providers.registry import ProviderDeps, ProviderRegistry
from ember.services import build_embedder
from tests.fakes.openai_fake import FakeOpenAIServer

OPENAI_KEY = "sk-proj-the-operators-real-openai-key"
OTHER_KEY = "vllm-key"
MESSAGES = [ChatMessage("user", "hello")]
SAME = GenerationOptions(max_tokens=4, temperature=0.0)


@pytest.fixture
def third_party(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("VLLM_API_KEY", OTHER_KEY)
    with FakeOpenAIServer(dim=8, models=("m",)) as server:
        yield server


async def _chat_as(server: FakeOpenAIServer, spec: dict[str, Any]) -> str:
    """The ``Authorization`` header ``server`` received from the configured provider."""
    config = load_config(
        None, {"EMBER_PROVIDERS_INSTANCES": json.dumps({"vllm": {"kind": "openai", **spec}})}
    )
    provider = ProviderRegistry(plugins={}).build(config.providers.instances, ProviderDeps())
    try:
        await provider["vllm"].chat("m", MESSAGES, SAME)
    except ProviderAuthFailed:
        pass
    finally:
        await provider["vllm"].aclose()
    return server.calls[-1].headers["authorization"]


async def test_a_third_party_server_does_not_get_openai_s_key(
    third_party: FakeOpenAIServer,
) -> None:
    sent = await _chat_as(third_party, {"base_url": third_party.base_url})
    assert OPENAI_KEY not in sent and sent == "Bearer no-key"


async def test_the_provider_names_the_variable_it_may_send(
    third_party: FakeOpenAIServer,
) -> None:
    url = third_party.base_url
    assert await _chat_as(third_party, {"base_url": url, "api_key_env": "VLLM_API_KEY"}) == (
        f"Bearer {OTHER_KEY}"
    )
    opted_in = await _chat_as(third_party, {"base_url": url, "api_key_env": "OPENAI_API_KEY"})
    assert opted_in == f"Bearer {OPENAI_KEY}", "sent because the operator said so"
    assert await _chat_as(third_party, {"base_url": url, "api_key": "inline"}) == "Bearer inline"


def test_the_embedder_of_a_third_party_server_does_not_get_it_either(
    third_party: FakeOpenAIServer,
) -> None:
    config = load_config(
        None,
        {
            "EMBER_EMBEDDINGS_PROVIDER": "openai",
            "EMBER_EMBEDDINGS_MODEL": "m",
            "EMBER_EMBEDDINGS_DIM": "8",
            "EMBER_EMBEDDINGS_BASE_URL": third_party.base_url,
        },
    )
    embedder, _ = build_embedder(config)
    try:
        assert len(embedder.embed_query("hello")) == 8
    finally:
        embedder.close()  # type: ignore[attr-defined]
    assert third_party.calls[-1].headers["authorization"] == "Bearer no-key"
