"""Contracts of the model plane: the catalog of model files, a hosted model, and the directory
the OpenAI and Ollama APIs read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from ember.models.records import LoadedModel, ModelRecord
from ember.providers.types import ChatMessage, Completion, Delta, GenerationOptions, ModelInfo

__all__ = ["HostHandle", "ModelCatalog", "ModelDirectory"]


class ModelCatalog(Protocol):
    """The ``models`` table: model files registered under a name and pinned by digest."""

    def get(self, name: str) -> ModelRecord:
        """The model named ``name``.

        :raises ModelNotRegistered: no model has this name.
        """
        ...

    def all(self) -> list[ModelRecord]:
        """Every registered model, by name."""
        ...

    def put(self, record: ModelRecord) -> ModelRecord:
        """Register ``record``, replacing a model of the same name; returns the stored row."""
        ...

    def remove(self, name: str) -> None:
        """Forget ``name`` (the file stays where it is).

        :raises ModelNotRegistered: no model has this name.
        """
        ...


class HostHandle(Protocol):
    """One loaded model, in this process or in a ``ModelHost`` actor.

    Calls on one host run one at a time, in arrival order; ``queue_depth`` counts the waiting.
    Errors are ember's: :class:`~ember.errors.ProviderBadRequest` for a prompt longer than the
    context, :class:`~ember.errors.ProviderTimeout` past ``options.timeout_s``,
    :class:`~ember.errors.ProviderUnavailable` when the host died or was evicted.
    """

    async def complete(self, prompt: str, options: GenerationOptions) -> Completion:
        """The completion of ``prompt``."""
        ...

    def stream(self, prompt: str, options: GenerationOptions) -> AsyncIterator[Delta]:
        """The completion of ``prompt`` as it is generated; the last delta has the usage."""
        ...

    async def chat(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Completion:
        """An answer rendered with the chat template stored in the model file."""
        ...

    def stream_chat(
        self, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        """:meth:`chat`, streamed."""
        ...

    async def busy(self) -> int:
        """Calls running or waiting on this host now."""
        ...

    async def close(self) -> None:
        """Free the model; later calls raise ProviderUnavailable."""
        ...


class ModelDirectory(Protocol):
    """What the OpenAI and Ollama APIs list and show: the models every provider serves, the
    router's aliases, and the models loaded now."""

    async def list_models(self) -> list[ModelInfo]:
        """Every model a request may name: aliases first, then ``provider/model`` names and the
        registered local models, each once."""
        ...

    async def show(self, name: str) -> ModelInfo:
        """One of :meth:`list_models`.

        :raises ProviderModelNotFound: no model is called ``name``.
        """
        ...

    async def loaded(self) -> list[LoadedModel]:
        """The models resident in hosts now, most recently used first."""
        ...

    async def load(self, name: str, keep_alive_s: float | None) -> bool:
        """Load the hosted model ``name`` now (``keep_alive_s`` as for a call), or unload it
        when ``keep_alive_s`` is 0; ``True`` when it was unloaded. A model of a remote provider
        is left alone (``False``).

        :raises ProviderModelNotFound: no model or alias is called ``name``.
        """
        ...
