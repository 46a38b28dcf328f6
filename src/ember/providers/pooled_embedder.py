"""PooledEmbedder: an Embedder over a pool of embedding workers, sized by their load.

Plain Python: where the workers run is the :class:`~ember.providers.protocol.EmbeddingWorkers`
it is given (EmbeddingWorker actors on Ray, :class:`ember.actors.embedding_pool.EmbeddingPool`;
objects in the process in tests).

A call goes to the loaded worker with the fewest calls in flight, then the fewest calls sent.
The calls in flight are the pool's queue depth; a
:class:`~ember.providers.protocol.SizingPolicy` turns it into a size, and
:meth:`PooledEmbedder.rescale` applies it, on every call and on a background tick. The first
``policy.min_size`` workers start together and stay until :meth:`PooledEmbedder.close`; only
extras come and go. An extra joins once it has loaded; one that fails to load or passes its
deadline is dropped with a warning (the policy may ask for it again). Only idle extras are
removed, the newest first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar

import numpy as np
import numpy.typing as npt

from ember.errors import ProviderUnavailable
from ember.providers.protocol import EmbeddingWorkers, SizingPolicy

__all__ = ["PooledEmbedder"]

log = logging.getLogger(__name__)

W = TypeVar("W")


@dataclass(eq=False)
class _Slot(Generic[W]):
    """One worker and the pool's bookkeeping of it."""

    worker: W
    extra: bool  # started by scaling; only extras are ever removed
    starting: bool  # begun but not yet loaded: serves no call
    info: dict[str, Any] = field(default_factory=dict)
    in_flight: int = 0
    sent: int = 0


class PooledEmbedder(Generic[W]):
    """An :class:`~ember.providers.protocol.Embedder` over ``workers`` (see the module).
    Thread-safe; :meth:`close` it when done (it closes ``workers``).

    ``policy`` sizes the pool (one instance per pool: it keeps the cooldown's state);
    ``tick_s`` is how often a background thread rescales (``None``: only calls do, and whoever
    calls :meth:`rescale`).
    """

    def __init__(
        self,
        workers: EmbeddingWorkers[W],
        policy: SizingPolicy,
        *,
        tick_s: float | None = 1.0,
    ) -> None:
        """Start ``policy.min_size`` workers together; returns once all have loaded.

        :raises ValueError: ``policy.min_size`` is below 1, or ``tick_s`` is not above 0.
        :raises ProviderUnavailable: they were not placed and loaded in time, or one died;
            nothing of the pool is left running.
        :raises ProviderError: (a subclass of it) a worker could not load the model.
        """
        if policy.min_size < 1:
            raise ValueError(f"a pool needs at least one worker, not {policy.min_size}")
        if tick_s is not None and not tick_s > 0:
            raise ValueError(f"tick_s must be above 0, not {tick_s}")
        self._workers = workers
        self._policy = policy
        self._lock = threading.Lock()  # guards _slots, _in_flight, _closed and every slot
        self._scaling = threading.Lock()  # one rescale (or close) at a time
        self._stop = threading.Event()
        self._in_flight = 0
        self._closed = False
        self._ticker: threading.Thread | None = None
        started: list[W] = []
        try:
            started = workers.start(policy.min_size)
            infos = [workers.info(worker) for worker in started]
        except BaseException:
            workers.discard(started)
            workers.close()
            raise
        self._slots = [
            _Slot(worker, extra=False, starting=False, info=info)
            for worker, info in zip(started, infos, strict=True)
        ]
        self._model_id = str(infos[0]["model_id"])
        self._dim = int(infos[0]["dim"])
        if tick_s is not None:
            self._ticker = threading.Thread(
                target=self._tick, args=(tick_s,), name="ember-embedding-pool", daemon=True
            )
            self._ticker.start()

    @property
    def model_id(self) -> str:
        """The id of the vectors the workers make."""
        return self._model_id

    @property
    def dim(self) -> int:
        """Length of every vector."""
        return self._dim

    @property
    def size(self) -> int:
        """Workers in the pool, starting extras included (0 once closed)."""
        with self._lock:
            return len(self._slots)

    @property
    def queue_depth(self) -> int:
        """Calls in flight (sent to a worker or waiting in its queue)."""
        with self._lock:
            return self._in_flight

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed passages on one worker: shape ``(len(texts), dim)``, rows L2-normalized.

        :raises TypeError: ``texts`` is one ``str``.
        :raises ProviderUnavailable: the pool is closed, or the worker died.
        :raises ProviderError: (a subclass of it) the model failed.
        """
        if isinstance(texts, str):
            raise TypeError("embed_documents takes a sequence of texts, not one str")
        if not texts:
            return np.empty((0, self._dim), dtype=np.float32)
        batch = list(texts)
        return self._call(lambda worker: self._workers.embed(worker, batch))

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one search query: shape ``(dim,)``, L2-normalized.

        :raises ProviderUnavailable: the pool is closed, or the worker died.
        :raises ProviderError: (a subclass of it) the model failed.
        """
        return self._call(lambda worker: self._workers.embed_query(worker, text))

    def workers(self) -> list[dict[str, Any]]:
        """Each loaded worker, the first ones first: its info as of its start (at least
        ``model_id`` and ``dim``), plus ``in_flight`` and ``extra`` (started by scaling)."""
        with self._lock:
            return [
                {**slot.info, "in_flight": slot.in_flight, "extra": slot.extra}
                for slot in self._slots
                if not slot.starting
            ]

    def rescale(self) -> int:
        """Apply the policy once and return the pool's size (starting extras included).

        Extras that have loaded join; ones that failed or passed their deadline are dropped.
        Then the pool grows to the policy's size (new extras start and join on a later call)
        or removes idle extras down to it. Returns at once when another thread is rescaling;
        returns 0 once closed.

        :raises ProviderError: (a subclass of it) an extra could not be begun (the extras
            begun before it stay).
        """
        if not self._scaling.acquire(blocking=False):
            return self.size
        try:
            if self._closed:
                return 0
            self._settle()
            with self._lock:
                current, demand = len(self._slots), self._in_flight
            wanted = self._policy.desired(current, demand)
            if wanted > current:
                self._grow(wanted - current)
            elif wanted < current:
                self._shrink(current - wanted)
            return self.size
        finally:
            self._scaling.release()

    def close(self) -> None:
        """Stop the tick, discard every worker and close the workers. Idempotent; calls in
        flight fail with :class:`~ember.errors.ProviderUnavailable`, and so do later calls."""
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()
        with self._scaling:
            with self._lock:
                self._closed = True
                slots, self._slots = self._slots, []
            self._workers.discard([slot.worker for slot in slots])
            self._workers.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, send: Callable[[W], npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
        with self._lock:
            if self._closed:
                raise ProviderUnavailable("the embedding pool is closed")
            slot = min(
                (slot for slot in self._slots if not slot.starting),
                key=lambda slot: (slot.in_flight, slot.sent),
            )
            slot.in_flight += 1
            slot.sent += 1
            self._in_flight += 1
        self._rescale_quietly()
        try:
            return send(slot.worker)
        finally:
            with self._lock:
                slot.in_flight -= 1
                self._in_flight -= 1
            self._rescale_quietly()

    def _settle(self) -> None:
        with self._lock:
            starting = [slot for slot in self._slots if slot.starting]
        dropped: list[_Slot[W]] = []
        for slot in starting:
            try:
                if not self._workers.loaded(slot.worker):
                    continue
                info = self._workers.info(slot.worker)
            except Exception as exc:
                log.warning("an extra embedding worker is dropped: %s", exc)
                dropped.append(slot)
                continue
            with self._lock:
                slot.info, slot.starting = info, False
        with self._lock:
            for slot in dropped:
                self._slots.remove(slot)
        self._workers.discard([slot.worker for slot in dropped])

    def _grow(self, count: int) -> None:
        for _ in range(count):
            worker = self._workers.begin()
            with self._lock:
                self._slots.append(_Slot(worker, extra=True, starting=True))

    def _shrink(self, count: int) -> None:
        with self._lock:
            idle = [slot for slot in reversed(self._slots) if slot.extra and slot.in_flight == 0]
            removed = idle[:count]
            for slot in removed:
                self._slots.remove(slot)
        self._workers.discard([slot.worker for slot in removed])

    def _tick(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self._rescale_quietly()

    def _rescale_quietly(self) -> None:
        try:
            self.rescale()
        except Exception:
            log.exception("the embedding pool could not rescale")
