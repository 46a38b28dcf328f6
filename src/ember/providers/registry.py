"""Which adapter a configured provider uses: the built-in kinds and the plug-ins installed as
Python entry points in the ``ember.providers`` group.

A plug-in package declares, in its ``pyproject.toml``::

    [project.entry-points."ember.providers"]
    echo = "ember_echo:build"

and ``build(name, spec, deps)`` returns an object that satisfies
:class:`~ember.providers.protocol.Provider`. ``providers.instances`` then selects it with
``kind: echo``. A built-in kind of the same name wins over a plug-in; a plug-in that fails to
import is reported when a provider asks for it, not at start.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from ember.config.models import ProviderSpec
from ember.errors import ConfigError
from ember.providers.protocol import Embedder, Provider

if TYPE_CHECKING:
    from ember.models.protocol import ModelAccess

__all__ = ["ENTRY_POINT_GROUP", "ProviderDeps", "ProviderFactory", "ProviderRegistry"]

ENTRY_POINT_GROUP = "ember.providers"


@dataclass(frozen=True)
class ProviderDeps:
    """What built-in adapters may need from the process, each built on first use: the
    hosted local models (``llamacpp``) and the configured embedder (``sentence-transformers``)."""

    models: Callable[[], ModelAccess] | None = None
    embedder: Callable[[], Embedder] | None = None


ProviderFactory = Callable[[str, ProviderSpec, ProviderDeps], Provider]
"""``(name, spec, deps) -> Provider``: builds one configured provider."""


def _api_key(spec: ProviderSpec) -> str | None:
    if spec.api_key_env is not None:
        return os.environ.get(spec.api_key_env) or spec.api_key
    return spec.api_key


def _openai(name: str, spec: ProviderSpec, deps: ProviderDeps) -> Provider:
    from ember.providers.openai import OpenAIProvider

    return OpenAIProvider(name, spec.base_url, _api_key(spec), spec.timeout_s, **spec.options)


def _ollama(name: str, spec: ProviderSpec, deps: ProviderDeps) -> Provider:
    from ember.providers.ollama import OllamaProvider

    key = _api_key(spec)
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return OllamaProvider(
        spec.base_url, name=name, timeout_s=spec.timeout_s, headers=headers, **spec.options
    )


def _llamacpp(name: str, spec: ProviderSpec, deps: ProviderDeps) -> Provider:
    from ember.providers.llamacpp import LlamaCppProvider

    if deps.models is None:
        raise ConfigError(f"provider {name!r} (llamacpp) needs the model registry")
    return LlamaCppProvider(name, deps.models())


def _sentence_transformers(name: str, spec: ProviderSpec, deps: ProviderDeps) -> Provider:
    from ember.providers.embedding_provider import EmbeddingProvider

    if deps.embedder is None:
        raise ConfigError(f"provider {name!r} (sentence-transformers) needs the embedder")
    return EmbeddingProvider(name, deps.embedder)


BUILTIN: Mapping[str, ProviderFactory] = {
    "llamacpp": _llamacpp,
    "ollama": _ollama,
    "openai": _openai,
    "sentence-transformers": _sentence_transformers,
}
"""The adapters ember ships."""


class ProviderRegistry:
    """Finds the factory of a provider kind: built-in first, then the installed plug-ins
    (read from ``entry_points`` when the registry is made)."""

    def __init__(
        self,
        builtin: Mapping[str, ProviderFactory] = BUILTIN,
        plugins: Mapping[str, EntryPoint] | None = None,
    ) -> None:
        self._builtin = dict(builtin)
        if plugins is None:
            plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        self._plugins = dict(plugins)

    def kinds(self) -> dict[str, str]:
        """Every known kind and where it comes from (``builtin`` or the plug-in's target)."""
        found = {name: ep.value for name, ep in self._plugins.items()}
        return {**found, **dict.fromkeys(self._builtin, "builtin")}

    def factory(self, kind: str) -> ProviderFactory:
        """The factory of ``kind``.

        :raises ConfigError: no built-in adapter or installed plug-in has this kind, or the
            plug-in cannot be imported.
        """
        if kind in self._builtin:
            return self._builtin[kind]
        entry = self._plugins.get(kind)
        if entry is None:
            known = ", ".join(sorted(self.kinds()))
            raise ConfigError(f"no provider adapter of kind {kind!r}; installed: {known}")
        try:
            loaded = entry.load()
        except Exception as exc:
            raise ConfigError(f"provider plug-in {kind!r} ({entry.value}) failed: {exc}") from exc
        if not callable(loaded):
            raise ConfigError(f"provider plug-in {kind!r} ({entry.value}) is not callable")
        return loaded  # type: ignore[no-any-return]

    def build(
        self, instances: Mapping[str, ProviderSpec], deps: ProviderDeps
    ) -> dict[str, Provider]:
        """One provider per configured instance, by name.

        :raises ConfigError: a kind is unknown, or its factory raised.
        """
        providers: dict[str, Provider] = {}
        for name, spec in instances.items():
            factory = self.factory(spec.kind)
            try:
                providers[name] = factory(name, spec, deps)
            except ConfigError:
                raise
            except Exception as exc:
                raise ConfigError(f"provider {name!r} ({spec.kind}): {exc}") from exc
        return providers
