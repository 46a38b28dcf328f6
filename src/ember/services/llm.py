"""The router and what ``ask`` needs, from configuration: the providers of
``providers.instances``, budgets over the ``usage`` table, and each model's tokenizer and
context length. Callers pass how hosted models are reached."""

from __future__ import annotations

import threading
from collections.abc import Callable

from opentelemetry.trace import Tracer

from ember.config import EmberConfig
from ember.models.catalog import SqlModelCatalog
from ember.models.protocol import ModelAccess
from ember.models.tokenizer import GgufTokenizer
from ember.observability.metrics import Metrics
from ember.providers.budget import Budgets
from ember.providers.protocol import Embedder, Tokenizer
from ember.providers.registry import ProviderDeps, ProviderRegistry
from ember.providers.router import LoadHint, Router
from ember.providers.usage_writer import UsageWriter
from ember.storage import Database, SqlUsageLog

__all__ = ["ModelFacts", "build_router", "hosted_providers"]


def hosted_providers(config: EmberConfig) -> set[str]:
    """The names of the configured ``llamacpp`` providers."""
    return {name for name, spec in config.providers.instances.items() if spec.kind == "llamacpp"}


def build_router(
    config: EmberConfig,
    database: Database,
    *,
    models: ModelAccess | None = None,
    embedder: Callable[[], Embedder] | None = None,
    registry: ProviderRegistry | None = None,
    load_hint: LoadHint | None = None,
    tracer: Tracer | None = None,
    metrics: Metrics | None = None,
) -> Router:
    """The router over every configured provider (built-in kinds and installed plug-ins),
    with budgets and usage rows in ``database`` (written in batches, off the call's path);
    ``load_hint`` orders equal candidates; calls are spans of ``tracer`` and are recorded in
    ``metrics`` (``None``: nowhere).

    :raises ConfigError: a provider's kind is unknown or its adapter cannot be built.
    """
    deps = ProviderDeps(models=None if models is None else (lambda: models), embedder=embedder)
    providers = (registry or ProviderRegistry()).build(config.providers.instances, deps)
    usage = SqlUsageLog(database)
    return Router(
        providers,
        config.router,
        budgets=Budgets(config.providers, usage, metrics=metrics),
        usage_writer=UsageWriter(usage),
        load_hint=load_hint,
        tracer=tracer,
        metrics=metrics,
    )


class ModelFacts:
    """The tokenizer and context length of a model alias, for packing a prompt.

    For a local model (the alias's first candidate is at a ``llamacpp`` provider) these are the
    GGUF's own vocabulary and ``min(trained context, models.n_ctx)``. For a remote model ember
    cannot read either: ``fallback`` (the embedder's tokenizer) approximates the count and
    ``models.n_ctx`` is assumed. Tokenizers are built once per model, thread-safely.
    """

    def __init__(
        self,
        config: EmberConfig,
        database: Database,
        router: Callable[[], Router],
        fallback: Callable[[], Tokenizer],
    ) -> None:
        self._n_ctx = config.models.n_ctx
        self._hosted = hosted_providers(config)
        self._catalog = SqlModelCatalog(database)
        self._router = router
        self._fallback = fallback
        self._tokenizers: dict[str, Tokenizer] = {}
        self._lock = threading.Lock()

    def tokenizer(self, alias: str) -> Tokenizer:
        model = self._local(alias)
        if model is None:
            return self._fallback()
        with self._lock:
            found = self._tokenizers.get(model)
            if found is None:
                found = self._tokenizers[model] = GgufTokenizer(self._catalog.get(model))
            return found

    def context_length(self, alias: str) -> int:
        model = self._local(alias)
        if model is None:
            return self._n_ctx
        trained = self._catalog.get(model).context_length
        return min(self._n_ctx, trained or self._n_ctx)

    def _local(self, alias: str) -> str | None:
        candidate = self._router().candidates(alias)[0]
        return candidate.model if candidate.provider in self._hosted else None
