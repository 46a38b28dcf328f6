"""Providers built from configuration: the built-in kinds, and a plug-in package installed
with pip that registers its adapter under the ``ember.providers`` entry point group."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from ember.chat import ChatMessage, GenerationOptions
from ember.config import ProvidersConfig, RouterConfig
from ember.config.models import ProviderSpec
from ember.errors import ConfigError
from ember.providers.openai import OpenAIProvider
from ember.providers.registry import ENTRY_POINT_GROUP, ProviderDeps, ProviderRegistry
from ember.providers.router import Router, RouteRequest

PLUGIN = Path(__file__).resolve().parent.parent / "plugins" / "echo_provider"


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The echo plug-in installed by pip into a fresh target directory on ``sys.path``."""
    source = tmp_path_factory.mktemp("src") / "echo_provider"
    shutil.copytree(PLUGIN, source)
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
    )
    sys.path.insert(0, str(target))
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("ember_echo_provider", None)


def test_builtin_kinds_are_listed() -> None:
    kinds = ProviderRegistry(plugins={}).kinds()
    assert {"llamacpp", "ollama", "openai", "sentence-transformers"} <= set(kinds)
    assert set(kinds.values()) == {"builtin"}


def test_unknown_kind_names_the_installed_ones() -> None:
    registry = ProviderRegistry(plugins={})
    with pytest.raises(ConfigError, match=r"kind 'nope'.*openai"):
        registry.build({"x": ProviderSpec(kind="nope")}, ProviderDeps())


def test_openai_instance_takes_its_key_from_the_named_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMBER_TEST_KEY", "sk-from-env")
    spec = ProviderSpec(
        kind="openai", base_url="http://127.0.0.1:9/v1", api_key_env="EMBER_TEST_KEY"
    )
    providers = ProviderRegistry(plugins={}).build({"cloud": spec}, ProviderDeps())
    provider = providers["cloud"]
    assert isinstance(provider, OpenAIProvider)
    assert provider.name == "cloud"
    assert provider._client.api_key == "sk-from-env"


def test_llamacpp_without_a_model_registry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="model registry"):
        ProviderRegistry(plugins={}).build({"local": ProviderSpec(kind="llamacpp")}, ProviderDeps())


def test_a_broken_plugin_is_reported_with_its_target() -> None:
    broken = EntryPoint("broken", "ember_no_such_module:build", ENTRY_POINT_GROUP)
    registry = ProviderRegistry(plugins={"broken": broken})
    assert registry.kinds()["broken"] == "ember_no_such_module:build"
    with pytest.raises(ConfigError, match="ember_no_such_module:build"):
        registry.factory("broken")


@pytest.mark.usefixtures("installed_plugin")
async def test_installed_plugin_is_discovered_and_routed_to() -> None:
    registry = ProviderRegistry()
    assert registry.kinds()["echo"] == "ember_echo_provider:build"
    config = ProvidersConfig(
        instances={"mirror": ProviderSpec(kind="echo", options={"prefix": "echo: "})}
    )
    providers = registry.build(config.instances, ProviderDeps())
    router = Router(providers, RouterConfig(aliases={"talk": ["mirror/echo-1"]}))
    messages = [ChatMessage("user", "one two three")]
    answer = await router.chat("talk", messages, GenerationOptions(), RouteRequest())
    assert answer.text == "echo: three two one"
    assert answer.provider == "mirror"
    streamed = [d.text async for d in router.stream_chat("talk", messages, GenerationOptions())]
    assert "".join(streamed).strip() == "echo: three two one"
