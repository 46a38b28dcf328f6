"""Every name ember's actors are known by on a cluster: the namespace and each named actor.

A Serve replica, a job worker or a second ``ember up`` finds the running actors by these names
instead of starting more, so they are defined once, here.
"""

from __future__ import annotations

__all__ = [
    "DISPATCHER",
    "HUB",
    "MODEL_REGISTRY",
    "NAMESPACE",
    "shard_actor_name",
    "worker_actor_name",
]

NAMESPACE = "ember"
"""The Ray namespace of every named actor below."""

HUB = "ember-event-hub"
"""The EventHub: numbers, stores and fans out job events."""

DISPATCHER = "ember-dispatcher"
"""The JobDispatcher: leases queued jobs to the worker pools."""

MODEL_REGISTRY = "ember-model-registry"
"""The ModelRegistry: loads, places and scales the ModelHost actors."""


def worker_actor_name(owner: str) -> str:
    """The JobWorker actor holding leases as ``owner``."""
    return f"ember-worker-{owner}"


def shard_actor_name(record_id: str, shard: int) -> str:
    """The VectorShard actor owning shard ``shard`` of index ``record_id``."""
    return f"ember-shard-{record_id}-{shard}"
