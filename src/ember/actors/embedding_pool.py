"""EmbeddingPool: EmbeddingWorker actors behind the Embedder protocol, sized by their load.

A thin shell: the pool logic (routing, queue depth, scaling, close) is the plain
:class:`~ember.providers.pooled_embedder.PooledEmbedder`; the workers are
:class:`~ember.actors._embedding_workers.RayEmbeddingWorkers`.

Each worker asks for ``embeddings.worker_num_cpus`` and, on a cluster with GPUs,
``embeddings.worker_num_gpus`` (:func:`ember.placement.bundles.worker_resources`); a worker
that holds no GPU runs on CPU unless ``embeddings.device`` says otherwise (Ray leaves
``CUDA_VISIBLE_DEVICES`` unset for it, so torch would see every GPU of its node). The first
``workers_min`` share one placement group placed by ``placement_strategy``, so they land
together or not at all; each extra worker gets a one-bundle group of its own. The pool stays
between ``workers_min`` and ``workers_max`` (up at once, down after ``scale_cooldown_s``); an
extra not placed and loaded within ``placement_timeout_s`` is dropped.
"""

from __future__ import annotations

import ray

from ember.actors._embedding_workers import RayEmbeddingWorkers, WorkerHandle
from ember.config import EmberConfig
from ember.placement.bundles import worker_resources
from ember.placement.scaling import ScalingPolicy
from ember.providers.pooled_embedder import PooledEmbedder

__all__ = ["EmbeddingPool"]


class EmbeddingPool(PooledEmbedder[WorkerHandle]):
    """A :class:`~ember.providers.pooled_embedder.PooledEmbedder` of EmbeddingWorker actors
    (see the module). Needs a connected Ray; thread-safe; :meth:`close` it when done.

    ``target_per_worker`` replaces the config's calls in flight per worker the policy sizes
    the pool for; ``policy`` replaces the whole policy built from the config (its
    ``min_size`` workers start first); ``tick_s`` is how often a background thread rescales
    (``None``: only calls do, and whoever calls :meth:`rescale`).
    """

    def __init__(
        self,
        config: EmberConfig,
        *,
        target_per_worker: float | None = None,
        policy: ScalingPolicy | None = None,
        tick_s: float | None = 1.0,
    ) -> None:
        """Start the first workers in one placement group; returns once all have loaded.

        :raises ProviderUnavailable: they were not placed and loaded within
            ``placement_timeout_s``, or one died; nothing of the pool is left running.
        :raises ProviderError: (a subclass of it) a worker could not load the model.
        """
        settings = config.embeddings
        pool = settings.scaling
        if target_per_worker is not None:
            pool = pool.model_copy(update={"target_per_worker": target_per_worker})
        cluster: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        resources = worker_resources(cluster, pool.num_cpus, pool.num_gpus)
        if "GPU" not in resources and settings.device is None:
            cpu = settings.model_copy(update={"device": "cpu"})
            config = config.model_copy(update={"embeddings": cpu})
        self._ray_workers = RayEmbeddingWorkers(
            config,
            resources,
            strategy=settings.placement_strategy,
            timeout_s=settings.placement_timeout_s,
        )
        super().__init__(self._ray_workers, policy or ScalingPolicy.of(pool), tick_s=tick_s)

    @property
    def resources(self) -> dict[str, float]:
        """What each worker asks Ray for (``CPU``, and ``GPU`` on a cluster with GPUs)."""
        return self._ray_workers.resources
