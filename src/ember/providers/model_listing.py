"""The model directory the OpenAI and Ollama APIs read: aliases, every provider's models, and
what is loaded now."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence

from ember.chat import ModelInfo
from ember.errors import ProviderModelNotFound
from ember.models.records import LoadedModel
from ember.providers.protocol import Provider

__all__ = ["ModelListing"]

log = logging.getLogger(__name__)


class ModelListing:
    """:class:`~ember.models.protocol.ModelDirectory` over the router's providers and aliases.

    Names, each once, in this order: the aliases (``router.aliases``; ``provider`` is
    ``alias`` and ``details["candidates"]`` lists the tiers), then ``provider/model`` for every
    model a provider lists, and the bare model name for the models of the ``bare`` providers
    (the router's default providers, where bare names route). A provider that cannot list its
    models is logged and left out, so one unreachable server does not hide the rest.
    ``loaded`` reports the resident models and ``load`` (un)loads a hosted one.
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        aliases: Mapping[str, Sequence[str]],
        loaded: Callable[[], Awaitable[list[LoadedModel]]],
        *,
        bare: Collection[str] = (),
        load: Callable[[str, float | None], Awaitable[bool]] | None = None,
    ) -> None:
        self._providers = providers
        self._aliases = aliases
        self._loaded = loaded
        self._bare = frozenset(bare)
        self._load = load

    async def list_models(self) -> list[ModelInfo]:
        infos = [
            ModelInfo(alias, "alias", details={"candidates": [_split(tier) for tier in tiers]})
            for alias, tiers in self._aliases.items()
        ]
        listed = await asyncio.gather(
            *(self._listed(p) for p in self._providers.values()), return_exceptions=False
        )
        seen = {info.name for info in infos}
        for name, models in zip(self._providers, listed, strict=True):
            for model in models:
                names = [f"{name}/{model.name}"]
                if name in self._bare:
                    names.append(model.name)
                for full in names:
                    if full not in seen:
                        seen.add(full)
                        infos.append(
                            ModelInfo(
                                full,
                                name,
                                model.digest,
                                model.size_bytes,
                                model.context_length,
                                {**model.details, "model": model.name},
                            )
                        )
        return infos

    async def show(self, name: str) -> ModelInfo:
        for info in await self.list_models():
            if info.name == name:
                return info
        raise ProviderModelNotFound(f"no model or alias is called {name!r}")

    async def loaded(self) -> list[LoadedModel]:
        return await self._loaded()

    async def load(self, name: str, keep_alive_s: float | None) -> bool:
        return False if self._load is None else await self._load(name, keep_alive_s)

    async def _listed(self, provider: Provider) -> list[ModelInfo]:
        try:
            return await provider.list_models()
        except Exception as exc:
            log.warning("provider %s cannot list its models: %s", provider.name, exc)
            return []


def _split(tier: str) -> list[str]:
    return [candidate.strip() for candidate in tier.split("|")]
