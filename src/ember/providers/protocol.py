"""Provider contracts: embedders, tokenizers, model providers (chat, generate, embed), and the
workers of an embedding pool with the policy that sizes it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from ember.chat import (
    Capability,
    ChatMessage,
    Completion,
    Delta,
    GenerationOptions,
    Health,
    ModelInfo,
)

__all__ = ["Embedder", "EmbeddingWorkers", "Provider", "SizingPolicy", "Tokenizer"]

W = TypeVar("W")
"""The handle of one worker of an :class:`EmbeddingWorkers`; opaque to the pool."""


class Embedder(Protocol):
    """Turns text into L2-normalized float32 vectors."""

    @property
    def model_id(self) -> str:
        """Stable id of the model and its settings; vectors of different ids never mix."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector this embedder returns."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed passages for indexing: shape ``(len(texts), dim)``, rows L2-normalized.

        Batches internally; an empty input gives shape ``(0, dim)``.

        :raises ProviderError: (a subclass of it) the model or the remote service failed.
        """
        ...

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one search query: shape ``(dim,)``, L2-normalized.

        :raises ProviderError: (a subclass of it) the model or the remote service failed.
        """
        ...


class Tokenizer(Protocol):
    """Counts and splits text in a model's tokens."""

    @property
    def name(self) -> str:
        """Which model's tokenizer this is."""
        ...

    def count(self, text: str) -> int:
        """Number of tokens in ``text``, without special tokens and without truncation."""
        ...

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span ``(start, end)`` in ``text`` of every token, in order."""
        ...


class Provider(Protocol):
    """A source of model calls: a local GGUF, an Ollama server, an OpenAI-compatible API.

    Every method maps the vendor's failures into ember's tree at the adapter's edge:

    - :class:`~ember.errors.ProviderTimeout` — no answer within the timeout;
    - :class:`~ember.errors.ProviderUnavailable` — cannot connect, or HTTP 5xx;
    - :class:`~ember.errors.ProviderRateLimited` — HTTP 429 (``retry_after_s`` when given);
    - :class:`~ember.errors.ProviderAuthFailed` — HTTP 401 or 403;
    - :class:`~ember.errors.ProviderModelNotFound` — the model does not exist (HTTP 404);
    - :class:`~ember.errors.ProviderBadRequest` — any other 4xx.

    The first three are retryable and make a router try the next candidate; the others fail
    fast. Streams raise the same errors from the iterator, before or after the first delta.
    """

    @property
    def name(self) -> str:
        """The provider's configured name (``local``, ``ollama``, ``openai``, ...)."""
        ...

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What this provider supports; calling anything else raises ProviderBadRequest."""
        ...

    async def chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> Completion:
        """The model's whole answer to ``messages``."""
        ...

    def stream_chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        """The answer as it is generated; the texts of the deltas joined are the answer."""
        ...

    async def generate(self, model: str, prompt: str, options: GenerationOptions) -> Completion:
        """A plain completion of ``prompt``."""
        ...

    def stream_generate(
        self, model: str, prompt: str, options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        """:meth:`generate`, streamed."""
        ...

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...

    async def list_models(self) -> list[ModelInfo]:
        """The models this provider serves now."""
        ...

    async def health(self) -> Health:
        """Whether the provider answers (never raises)."""
        ...

    async def aclose(self) -> None:
        """Release connections; the provider is not used afterwards."""
        ...


class SizingPolicy(Protocol):
    """How many workers a pool should have for its demand.

    :class:`ember.placement.scaling.ScalingPolicy` is one (up at once, down after a
    cooldown). It may keep state between calls (a cooldown), so one instance serves one pool.
    """

    @property
    def min_size(self) -> int:
        """The fewest workers the pool keeps; :meth:`desired` never answers below it."""
        ...

    def desired(self, current: int, demand: int) -> int:
        """The size the pool should have now, given its ``current`` size and ``demand`` (work
        queued plus running). Not thread-safe: the pool asks from one thread at a time.

        :raises ValueError: ``current`` or ``demand`` is negative.
        """
        ...


class EmbeddingWorkers(Protocol[W]):
    """The workers of an embedding pool: where they run and how they are called.

    Each worker holds one loaded copy of the embedding model; ``W`` is its handle, which the
    pool only passes back. A worker is *starting* from :meth:`begin` until :meth:`loaded` says
    it has loaded, and *loaded* after that (the first workers, from :meth:`start`, are loaded
    when they are returned); a worker passed to :meth:`discard` is gone. The pool decides which
    worker serves a call and how many there are; this decides where they run (actors in
    placement groups on Ray, objects in the process in tests).

    Thread-safety: :meth:`embed`, :meth:`embed_query` and :meth:`info` may be called from many
    threads at once, and while the others run; the pool calls :meth:`start`, :meth:`begin`,
    :meth:`loaded`, :meth:`discard` and :meth:`close` from one thread at a time.
    """

    def start(self, count: int) -> list[W]:
        """Start the pool's first ``count`` workers together; returns them once every one has
        loaded, in a stable order. Called once, first. They stay until :meth:`close` unless
        discarded.

        :raises ProviderUnavailable: they could not all be placed and loaded in time, or one
            died; none of them is left running.
        :raises ProviderError: (a subclass of it) a worker could not load the model; none of
            them is left running.
        """
        ...

    def begin(self) -> W:
        """Begin starting one extra worker and return it at once, starting; :meth:`loaded`
        says when it has loaded. It gets a deadline to load by, which :meth:`loaded` enforces.

        :raises ProviderError: (a subclass of it) the start could not even be asked for;
            nothing is left running.
        """
        ...

    def loaded(self, worker: W) -> bool:
        """Whether ``worker`` (from :meth:`begin`) has loaded: ``True`` once it has (and on
        every later call), ``False`` while it is still starting. Never waits.

        :raises ProviderUnavailable: it was not placed and loaded by its deadline, or it died
            while starting; the caller discards it.
        :raises ProviderError: (a subclass of it) it could not load the model; the caller
            discards it.
        """
        ...

    def embed(self, worker: W, texts: list[str]) -> npt.NDArray[np.float32]:
        """``worker``'s vectors of ``texts`` (not empty): shape ``(len(texts), dim)``, rows
        L2-normalized. Waits for the answer. ``worker`` is loaded.

        :raises ProviderUnavailable: the worker died, or was discarded before or while the
            call ran.
        :raises ProviderError: (a subclass of it) the model failed.
        """
        ...

    def embed_query(self, worker: W, text: str) -> npt.NDArray[np.float32]:
        """``worker``'s vector of one search query: shape ``(dim,)``, L2-normalized.

        :raises ProviderUnavailable: the worker died, or was discarded before or while the
            call ran.
        :raises ProviderError: (a subclass of it) the model failed.
        """
        ...

    def info(self, worker: W) -> dict[str, Any]:
        """A loaded ``worker``'s description as of its start: at least ``model_id`` (str) and
        ``dim`` (int), the same for every worker, plus where it runs (on Ray: ``node_id``,
        ``gpu_ids``, ``device``). A new dict each call; never raises for a loaded worker."""
        ...

    def discard(self, workers: Sequence[W]) -> None:
        """Stop each of ``workers`` (starting or loaded) and free what it alone holds; calls in
        flight on them fail with :class:`~ember.errors.ProviderUnavailable`. Never raises;
        a worker already gone is skipped."""
        ...

    def close(self) -> None:
        """Free what the set itself holds (on Ray: the first workers' placement group), after
        the pool has discarded its workers. Idempotent; never raises."""
        ...
