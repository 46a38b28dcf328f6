"""Contracts of the model plane: the catalog of model files, a hosted model, the way callers
reach hosted models (in this process or through the cluster's registry actor), how hosts are
started and how many a model should have, and the directory the OpenAI and Ollama APIs read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, TypeVar

from ember.chat import ChatMessage, Completion, Delta, GenerationOptions, ModelInfo
from ember.models.records import LoadedModel, ModelRecord
from ember.placement.room import NodeCapacity

__all__ = ["HostHandle", "HostLauncher", "ModelAccess", "ModelCatalog", "ModelDirectory", "Scaler"]


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


class ModelAccess(Protocol):
    """How callers reach hosted models: the ``llamacpp`` provider opens hosts through it, and
    the API lists, loads and unloads models with it. :class:`~ember.models.local.LocalModels`
    hosts them in this process; ``RayModelAccess`` (``ember.actors``) reaches the cluster's
    ModelRegistry actor. Both pass :class:`ember.testing.ModelAccessContract`."""

    async def open(self, model: str, keep_alive_s: float | None) -> tuple[ModelRecord, HostHandle]:
        """The record of ``model`` and a host with it loaded (loaded now if it was not);
        ``keep_alive_s`` as the registry takes it (``None``: the default).

        The keep-alive may reach the registry only after this returns: ``RayModelAccess``,
        holding the model's hosts from an earlier call, tells the registry without waiting.
        It is enforced only where the registry is swept: the ModelRegistry actor unloads an
        idle expired model within ``models.sweep_interval_s``; nothing sweeps a
        :class:`~ember.models.local.LocalModels`, whose expired models stay until unloaded or
        evicted for room. A host cached from an earlier call that the registry has since
        unloaded (expired, evicted) raises ProviderUnavailable when called: :meth:`forget`
        the model, then open it again.

        :raises ModelNotRegistered: no such model (the provider answers ProviderModelNotFound).
        """
        ...

    def forget(self, model: str) -> None:
        """Drop a cached host that failed; the next :meth:`open` asks the registry again."""
        ...

    async def records(self) -> list[ModelRecord]:
        """Every registered model, by name."""
        ...

    async def unload(self, model: str) -> bool:
        """Close every host of ``model`` (hosts :meth:`open` returned before then raise
        ProviderUnavailable); ``False`` when it was not loaded or is not registered."""
        ...

    async def loaded(self) -> list[LoadedModel]:
        """The resident models, as ``ember models ps`` shows them."""
        ...

    async def ready(self) -> tuple[bool, str]:
        """Whether every warm model is loaded, and a line saying what is (for ``/ready``);
        when one is not, the line names it."""
        ...


H_co = TypeVar("H_co", bound=HostHandle, covariant=True)


class HostLauncher(Protocol[H_co]):
    """Starts hosts; the registry decides which and where. ``LocalLauncher`` hosts them in
    this process, ``RayLauncher`` (the ModelRegistry actor's, ``ember.actors``) in ModelHost
    actors pinned to a node. Both pass :class:`ember.testing.HostLauncherContract`."""

    async def nodes(self) -> list[NodeCapacity]:
        """The nodes that may host models now, with their room."""
        ...

    async def start(self, record: ModelRecord, node: NodeCapacity) -> H_co:
        """A host of its own on ``node`` with ``record`` loaded (digest verified): each call
        starts another, closed on its own.

        :raises ModelDigestMismatch: the file is not what was pinned.
        :raises ProviderUnavailable: the file is missing or llama.cpp cannot load it (or, for
            ``RayLauncher``, no host started within ``models.load_timeout_s``).
        """
        ...


class Scaler(Protocol):
    """How many hosts one model should have (:class:`ember.placement.scaling.ScalingPolicy`)."""

    def desired(self, current: int, demand: int) -> int:
        """The host count for ``current`` hosts with ``demand`` calls running or waiting."""
        ...
