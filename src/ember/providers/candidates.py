"""Which ``provider/model`` candidates a model name stands for, in the order they are tried.

A name is, in this order of precedence: an alias (``router.aliases``: tiers of candidates,
best first; candidates in one tier, split by ``|``, are equal preference and are ordered by
the load hint: a loaded model first, then the shortest queue); ``provider/model`` of a
configured provider, split at the first slash only (``ollama/library/llama3:8b`` is model
``library/llama3:8b`` at ``ollama``); or a bare model name, which goes to
``router.default_provider`` when that is a configured provider. Anything else is
:class:`~ember.errors.ProviderModelNotFound`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from ember.errors import ProviderModelNotFound

__all__ = ["Candidate", "Candidates", "LoadHint", "RouteRequest", "Tiers"]

log = logging.getLogger("ember.providers.router")

LoadHint = Callable[[str, str], tuple[bool, int]]
"""``(provider, model) -> (loaded, queue_depth)``: what the cluster knows about a candidate."""


@dataclass(frozen=True)
class RouteRequest:
    """Who asks (for budgets and usage rows) and the per-request overrides.

    ``provider`` keeps only the alias's candidates at that provider (the alias itself is the
    model name there when it has none); ``model`` replaces the model name of every candidate;
    ``fallback=False`` tries the first candidate only (still with its retries).
    """

    principal: str = "local"
    workspace: str = "default"
    request_id: str | None = None
    job_id: str | None = None
    provider: str | None = None
    model: str | None = None
    fallback: bool = True


@dataclass(frozen=True)
class Candidate:
    """One ``provider/model`` an alias may be answered by."""

    provider: str
    model: str

    @classmethod
    def parse(cls, text: str) -> Candidate:
        """``provider/model``, split at the first slash; surrounding blanks are dropped."""
        provider, _, model = text.strip().partition("/")
        return cls(provider, model)

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


Tiers = tuple[tuple[Candidate, ...], ...]
"""An alias's candidates: tiers best first, each a tuple of equal-preference candidates."""


class Candidates:
    """Resolves model names against ``aliases`` (as in ``RouterConfig.aliases``), the
    configured ``providers`` (names) and ``default_provider``; ``load_hint`` orders a tier.

    The aliases are parsed once, here; the config validated them.
    """

    def __init__(
        self,
        aliases: Mapping[str, Sequence[str]],
        providers: Collection[str],
        default_provider: str | None = None,
        load_hint: LoadHint | None = None,
        *,
        default_embedding_provider: str | None = None,
    ) -> None:
        self._aliases: Mapping[str, Tiers] = MappingProxyType(
            {
                alias: tuple(tuple(Candidate.parse(p) for p in tier.split("|")) for tier in tiers)
                for alias, tiers in aliases.items()
            }
        )
        self._providers = frozenset(providers)
        self._default = default_provider
        self._default_embedding = default_embedding_provider
        self._load_hint = load_hint

    @property
    def aliases(self) -> Mapping[str, Tiers]:
        """Alias to its tiers of candidates, as configured (not ordered by load); read-only."""
        return self._aliases

    def resolve(
        self, name: str, route: RouteRequest | None = None, *, embedding: bool = False
    ) -> list[Candidate]:
        """The candidates for ``name`` in the order they will be tried, overrides applied.
        In an ``embedding`` call a bare name goes to ``default_embedding_provider`` instead.

        :raises ProviderModelNotFound: ``name`` is neither an alias, ``provider/model`` of a
            configured provider nor a bare name for a configured default provider, and no
            ``provider`` override is given; or the ``provider`` override names no configured
            provider (a caller's mistake, not an outage).
        """
        route = route or RouteRequest()
        if route.provider is not None and route.provider not in self._providers:
            raise ProviderModelNotFound(f"no provider is called {route.provider!r}")
        tiers = self._tiers(name, self._default_embedding if embedding else self._default)
        if route.provider is not None:
            tiers = [[c for c in tier if c.provider == route.provider] for tier in tiers]
            tiers = [tier for tier in tiers if tier] or [[Candidate(route.provider, name)]]
        elif not tiers:
            raise ProviderModelNotFound(f"no model alias or provider/model named {name!r}")
        if route.model is not None:
            tiers = [[Candidate(c.provider, route.model) for c in tier] for tier in tiers]
        ordered = [candidate for tier in tiers for candidate in self._by_load(tier)]
        return ordered if route.fallback else ordered[:1]

    def _tiers(self, name: str, default: str | None) -> list[list[Candidate]]:
        tiers = self._aliases.get(name)
        if tiers is not None:
            return [list(tier) for tier in tiers]
        provider, slash, model = name.partition("/")
        if slash and provider in self._providers:
            return [[Candidate(provider, model)]] if model else []
        if name and default is not None and default in self._providers:
            return [[Candidate(default, name)]]
        return []

    def _by_load(self, tier: list[Candidate]) -> list[Candidate]:
        """Loaded first, then the shortest queue; the configured order breaks ties."""
        hint = self._load_hint
        if hint is None or len(tier) < 2:
            return tier

        def key(candidate: Candidate) -> tuple[bool, int]:
            try:
                loaded, depth = hint(candidate.provider, candidate.model)
            except Exception:
                log.warning("load hint failed", extra={"provider": candidate.provider})
                return (True, 0)
            return (not loaded, depth)

        return sorted(tier, key=key)
