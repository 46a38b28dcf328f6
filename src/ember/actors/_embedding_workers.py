"""One EmbeddingWorker actor as the pool holds it: started in a placement group bundle,
killed with its own group, its Ray errors mapped into ember's tree."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError
from ray.util.placement_group import PlacementGroup
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from ember.actors.placement_groups import release
from ember.config import EmberConfig
from ember.errors import EmberError, ProviderError, ProviderUnavailable
from ember.pipelines.embedding_worker import EmbeddingWorker

__all__ = ["WorkerHandle", "discard", "spawn", "translate"]

log = logging.getLogger(__name__)


@dataclass
class WorkerHandle:
    """An actor and the pool's bookkeeping of it."""

    actor: Any
    group: PlacementGroup | None  # an extra's own group; None in the shared one
    deadline: float  # monotonic time by which it must have loaded
    starting: Any  # warm()'s object ref until the worker has loaded; then None
    info: dict[str, Any] = field(default_factory=dict)
    in_flight: int = 0
    sent: int = 0


def spawn(
    config: EmberConfig,
    resources: Mapping[str, float],
    group: PlacementGroup,
    index: int,
    *,
    own_group: bool,
    deadline: float,
) -> WorkerHandle:
    """Start a worker in bundle ``index`` of ``group`` asking for ``resources``, and its warm
    call; ``own_group`` makes :func:`discard` remove the group with it. Restarted (up to 3
    times, calls retried) if its process dies."""
    remote: Any = ray.remote(EmbeddingWorker)
    actor = remote.options(
        num_cpus=resources["CPU"],
        num_gpus=resources.get("GPU", 0.0),
        scheduling_strategy=PlacementGroupSchedulingStrategy(group, index),
        max_restarts=3,
        max_task_retries=3,
    ).remote(config)
    return WorkerHandle(actor, group if own_group else None, deadline, actor.warm.remote())


def discard(workers: list[WorkerHandle]) -> None:
    """Kill each worker and remove its own group; never raises."""
    for worker in workers:
        try:
            ray.kill(worker.actor, no_restart=True)
        except Exception as exc:  # already dead, or the cluster is gone
            log.debug("cannot kill an embedding worker: %s", exc)
        if worker.group is not None:
            release(worker.group)


def translate(exc: RayError) -> EmberError:
    """The ember error for a worker call's Ray error: the worker's own ember error as it was
    raised, :class:`ProviderUnavailable` for a dead worker or a load past its deadline, else
    :class:`ProviderError`."""
    if isinstance(exc, RayTaskError) and isinstance(exc.cause, EmberError):
        return exc.cause
    if isinstance(exc, GetTimeoutError):
        return ProviderUnavailable(
            "embedding workers were placed but did not load their model within "
            "embeddings.placement_timeout_s"
        )
    if isinstance(exc, RayActorError):
        return ProviderUnavailable(f"an embedding worker died: {exc}")
    return ProviderError(f"an embedding worker failed: {exc}")
