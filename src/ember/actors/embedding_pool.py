"""EmbeddingPool: EmbeddingWorker actors behind the Embedder protocol, sized by their load.

Each worker asks for ``embeddings.worker_num_cpus`` and, on a cluster with GPUs,
``embeddings.worker_num_gpus`` (:func:`ember.actors.placement_groups.worker_resources`); a worker
that holds no GPU runs on CPU unless ``embeddings.device`` says otherwise (Ray leaves
``CUDA_VISIBLE_DEVICES`` unset for it, so torch would see every GPU of its node). The first
``workers_min`` share one placement group placed by ``placement_strategy``, so they land
together or not at all; each extra worker gets a one-bundle group of its own.

A call goes to the loaded worker with the fewest calls in flight. The calls in flight are the
pool's queue depth; a :class:`~ember.placement.scaling.ScalingPolicy` turns it into a size
between ``workers_min`` and ``workers_max`` (up at once, down after ``scale_cooldown_s``), and
:meth:`EmbeddingPool.rescale` applies it, on every call and on a background tick. An extra
worker joins once it has loaded its model; one not placed and loaded within
``placement_timeout_s`` is dropped with a warning (the policy may ask for it again). Only idle
extras are removed; the shared group's workers stay until :meth:`EmbeddingPool.close`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import ray
from ray.exceptions import RayError
from ray.util.placement_group import PlacementGroup

from ember.actors._embedding_workers import WorkerHandle, discard, spawn, translate
from ember.actors.placement_groups import release, request, reserve
from ember.actors.refs import wait_for
from ember.config import EmberConfig
from ember.errors import ProviderUnavailable
from ember.placement.bundles import worker_resources
from ember.placement.scaling import ScalingPolicy

__all__ = ["EmbeddingPool"]

log = logging.getLogger(__name__)


class EmbeddingPool:
    """An :class:`~ember.providers.protocol.Embedder` over a pool of EmbeddingWorker actors
    (see the module). Needs a connected Ray; thread-safe; :meth:`close` it when done.

    ``target_per_worker`` is the calls in flight per worker the policy sizes the pool for;
    ``policy`` replaces the one built from the config; ``tick_s`` is how often a background
    thread rescales (``None``: only calls do, and whoever calls :meth:`rescale`).
    """

    def __init__(
        self,
        config: EmberConfig,
        *,
        policy: ScalingPolicy | None = None,
        tick_s: float | None = 1.0,
    ) -> None:
        """Start ``workers_min`` workers in one placement group; returns once all have loaded.

        :raises ProviderUnavailable: they were not placed and loaded within
            ``placement_timeout_s``, or one died; nothing of the pool is left running.
        :raises ProviderError: (a subclass of it) a worker could not load the model.
        """
        settings = config.embeddings
        self._timeout_s = settings.placement_timeout_s
        cluster: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        pool = settings.scaling
        self._resources = worker_resources(cluster, pool.num_cpus, pool.num_gpus)
        if "GPU" not in self._resources and settings.device is None:
            cpu = settings.model_copy(update={"device": "cpu"})
            config = config.model_copy(update={"embeddings": cpu})
        self._config = config
        low = pool.min_size
        self._policy = policy or ScalingPolicy.of(pool)
        self._lock = threading.Lock()
        self._scaling = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[WorkerHandle] = []
        self._in_flight = 0
        self._closed = False
        self._ticker: threading.Thread | None = None
        deadline = time.monotonic() + self._timeout_s
        self._group: PlacementGroup | None = reserve(
            self._resources, low, strategy=settings.placement_strategy, timeout_s=self._timeout_s
        )
        try:
            for index in range(low):
                worker = spawn(
                    config, self._resources, self._group, index, own_group=False, deadline=deadline
                )
                self._workers.append(worker)
            infos = wait_for(
                [worker.starting for worker in self._workers],
                timeout_s=max(0.0, deadline - time.monotonic()),
            )
        except RayError as exc:
            self.close()
            raise translate(exc) from exc
        except BaseException:
            self.close()
            raise
        for worker, info in zip(self._workers, infos, strict=True):
            worker.info, worker.starting = info, None
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
        """Workers in the pool, loading extras included."""
        with self._lock:
            return len(self._workers)

    @property
    def queue_depth(self) -> int:
        """Calls in flight (sent to a worker or waiting in its queue)."""
        with self._lock:
            return self._in_flight

    @property
    def resources(self) -> dict[str, float]:
        """What each worker asks Ray for (``CPU``, and ``GPU`` on a cluster with GPUs)."""
        return dict(self._resources)

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
        vectors: npt.NDArray[np.float32] = self._call("embed", list(texts))
        return vectors

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one search query: shape ``(dim,)``, L2-normalized.

        :raises ProviderUnavailable: the pool is closed, or the worker died.
        :raises ProviderError: (a subclass of it) the model failed.
        """
        vector: npt.NDArray[np.float32] = self._call("embed_query", text)
        return vector

    def workers(self) -> list[dict[str, Any]]:
        """Each loaded worker, shared group's first: its ``info()`` as of its start
        (``node_id``, ``gpu_ids``, ``device``, ``model_id``, ``dim``), plus ``in_flight`` and
        ``extra`` (started by scaling, in a group of its own)."""
        with self._lock:
            return [
                {**worker.info, "in_flight": worker.in_flight, "extra": worker.group is not None}
                for worker in self._workers
                if worker.starting is None
            ]

    def rescale(self) -> int:
        """Apply the policy once and return the pool's size (loading extras included).

        Extras that have loaded join; ones that failed or passed their deadline are dropped.
        Then the pool grows to the policy's size (new extras start loading and join on a later
        call) or removes idle extras down to it. Returns at once when another thread is
        rescaling.
        """
        if not self._scaling.acquire(blocking=False):
            return self.size
        try:
            if self._closed:
                return 0
            self._settle()
            with self._lock:
                current, demand = len(self._workers), self._in_flight
            wanted = self._policy.desired(current, demand)
            if wanted > current:
                self._grow(wanted - current)
            elif wanted < current:
                self._shrink(current - wanted)
            return self.size
        finally:
            self._scaling.release()

    def close(self) -> None:
        """Stop the tick, kill every worker and remove the placement groups. Idempotent; calls
        in flight fail with :class:`~ember.errors.ProviderUnavailable`."""
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()
        with self._scaling:
            with self._lock:
                self._closed = True
                workers, self._workers = self._workers, []
            discard(workers)
            if self._group is not None:
                release(self._group)
                self._group = None

    def __enter__(self) -> EmbeddingPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: str, payload: Any) -> Any:
        with self._lock:
            if self._closed:
                raise ProviderUnavailable("the embedding pool is closed")
            worker = min(
                (w for w in self._workers if w.starting is None),
                key=lambda w: (w.in_flight, w.sent),
            )
            worker.in_flight += 1
            worker.sent += 1
            self._in_flight += 1
        self._rescale_quietly()
        try:
            return wait_for([getattr(worker.actor, method).remote(payload)])[0]
        except RayError as exc:
            raise translate(exc) from exc
        finally:
            with self._lock:
                worker.in_flight -= 1
                self._in_flight -= 1
            self._rescale_quietly()

    def _settle(self) -> None:
        with self._lock:
            starting = [worker for worker in self._workers if worker.starting is not None]
        dropped = []
        for worker in starting:
            if ray.wait([worker.starting], timeout=0)[0]:
                try:
                    info = wait_for([worker.starting])[0]
                except RayError as exc:
                    log.warning("an extra embedding worker failed to start: %s", exc)
                    dropped.append(worker)
                    continue
                with self._lock:
                    worker.info, worker.starting = info, None
            elif time.monotonic() > worker.deadline:
                log.warning("an extra embedding worker was not ready in %g s", self._timeout_s)
                dropped.append(worker)
        with self._lock:
            for worker in dropped:
                self._workers.remove(worker)
        discard(dropped)

    def _grow(self, count: int) -> None:
        for _ in range(count):
            group = request(self._resources, 1)
            deadline = time.monotonic() + self._timeout_s
            worker = spawn(
                self._config, self._resources, group, 0, own_group=True, deadline=deadline
            )
            with self._lock:
                self._workers.append(worker)

    def _shrink(self, count: int) -> None:
        with self._lock:
            idle = [w for w in reversed(self._workers) if w.group is not None and w.in_flight == 0]
            for worker in idle[:count]:
                self._workers.remove(worker)
        discard(idle[:count])

    def _tick(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self._rescale_quietly()

    def _rescale_quietly(self) -> None:
        try:
            self.rescale()
        except Exception:
            log.exception("the embedding pool could not rescale")
