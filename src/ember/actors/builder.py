"""Where Ray options meet ember's actor classes: start the job system, reach it from Serve.

The EventHub and JobDispatcher are named actors in the ``ember`` namespace, so a Serve replica
(or a second ``ember up`` that joins the cluster) finds the running ones instead of starting
more. Workers are started by the dispatcher through :func:`start_worker`.

The singletons (EventHub, JobDispatcher, ModelRegistry) are restarted by Ray whenever they die
(``max_restarts=-1``) and rebuild their state from the database. Calls to the dispatcher and
the registry are all idempotent, so Ray retries one that was cut short by a death
(``max_task_retries``); the hub's are not (a publish numbers an event), so its callers decide
(:mod:`ember.actors.singleton`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import ray

from ember.actors.dispatcher import JobDispatcherActor
from ember.actors.event_hub import EventHubActor
from ember.actors.job_worker import JobWorkerActor
from ember.actors.model_access import ModelHostDemand
from ember.actors.model_registry import ModelRegistryActor
from ember.actors.names import (
    DISPATCHER,
    HUB,
    MODEL_REGISTRY,
    NAMESPACE,
    worker_actor_name,
)
from ember.actors.vm_supervisor import VMSupervisorActor
from ember.config import EmberConfig
from ember.config.vm import VM_KIND

__all__ = [
    "JobSystem",
    "start_job_system",
    "start_model_registry",
]


def start_worker(config: EmberConfig, hub: Any, kind: str, owner: str) -> Any:
    """A worker actor for ``kind`` holding leases as ``owner`` (a VM supervisor for ``vm``),
    reserving what ``kind``'s pool asks per worker: CPUs, and memory where the pool names it
    (Ray then places it on a node with that much free)."""
    pool = config.job_pool(kind)[0]
    remote: Any = ray.remote(VMSupervisorActor if kind == VM_KIND else JobWorkerActor)
    return remote.options(
        name=worker_actor_name(owner),
        namespace=NAMESPACE,
        num_cpus=pool.num_cpus,
        memory=pool.memory_bytes or None,
        max_concurrency=1000,
        max_restarts=0,
    ).remote(config, owner, hub)


@dataclass(frozen=True)
class JobSystem:
    """Handles of the running job system's actors."""

    hub: Any
    dispatcher: Any


TASK_RETRIES = 3
"""How often Ray retries an idempotent call to a singleton cut short by its death."""


def _singleton(cls: type, name: str, detached: bool, *, idempotent: bool) -> Any:
    """The options of one of the cluster's named actors: found when it runs, else started;
    restarted whenever it dies, and its calls retried across a restart when ``idempotent``."""
    remote: Any = ray.remote(cls)
    return remote.options(
        name=name,
        namespace=NAMESPACE,
        get_if_exists=True,
        num_cpus=0.05,
        max_concurrency=1000,
        max_restarts=-1,
        max_task_retries=TASK_RETRIES if idempotent else 0,
        lifetime="detached" if detached else None,
    )


def start_job_system(config: EmberConfig, *, detached: bool = False) -> JobSystem:
    """Start the EventHub and JobDispatcher (or find the running ones) and the dispatch loop.

    ``detached`` actors outlive the process that starts them (a Serve config's application
    builder runs in a short-lived task); otherwise they die with it, as under ``ember up``.
    """
    hub = _singleton(EventHubActor, HUB, detached, idempotent=False).remote(config)
    dispatcher = _singleton(JobDispatcherActor, DISPATCHER, detached, idempotent=True).remote(
        config, hub, functools.partial(start_worker, config, hub), ModelHostDemand()
    )
    ray.get(dispatcher.start.remote())
    return JobSystem(hub, dispatcher)


def start_model_registry(config: EmberConfig, *, detached: bool = False) -> Any:
    """Start the ModelRegistry actor (or find the running one); returns once the bundled model
    is registered and the warm models are loaded. ``detached`` as for :func:`start_job_system`."""
    registry = _singleton(ModelRegistryActor, MODEL_REGISTRY, detached, idempotent=True).remote(
        config
    )
    ray.get(registry.start.remote())
    return registry
