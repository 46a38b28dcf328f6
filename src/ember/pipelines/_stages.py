"""What the pipelines share: Ray Data's settings for a run, and the embedding stage."""

from __future__ import annotations

import logging

import ray
import ray.data

from ember.config import EmberConfig
from ember.pipelines.embedding_worker import EmbeddingWorker
from ember.placement.bundles import worker_resources


def quiet(no_progress_timeout_s: float | None) -> None:
    """Ray Data in this process: no progress bars of its own (ember reports progress), no
    warning that they are off and no per-run summary line, and a run that makes no progress
    for ``no_progress_timeout_s`` fails (unset: Ray's default)."""
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    logging.getLogger("ray.data._internal.execution.streaming_executor").setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    if no_progress_timeout_s is not None:
        context.execution_no_progress_timeout_s = no_progress_timeout_s


def embedded(dataset: ray.data.Dataset, config: EmberConfig, batch_size: int) -> ray.data.Dataset:
    """``dataset`` (rows with ``texts``) through an :class:`EmbeddingWorker` pool that scales
    between ``embeddings.workers_min`` and ``workers_max``, each worker with
    ``embeddings.worker_num_cpus`` and, when the cluster has GPUs, ``worker_num_gpus``."""
    pool = config.embeddings.scaling
    resources = worker_resources(
        ray.cluster_resources(),  # type: ignore[no-untyped-call]
        pool.num_cpus,
        pool.num_gpus,
    )
    return dataset.map_batches(
        EmbeddingWorker,
        fn_constructor_kwargs={"config": config},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=pool.min_size, max_size=pool.max_size),
        num_cpus=resources["CPU"],
        num_gpus=resources.get("GPU", 0.0),
    )
