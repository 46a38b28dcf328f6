"""The Ray side of the composition root: :class:`~ember.services.Services` with the cluster's
implementations passed in: traces go to the EventHub's store, metrics through Ray's metrics
pipeline (read back from every node).

A process on the cluster (a Serve replica, a job worker) reaches hosted models through the
ModelRegistry actor, serves vector indexes from shard actors where the configuration asks
for them (and embeds through an embedding pool with ``embeddings.pool``), reaches the job
system through the EventHub and JobDispatcher actors, and runs path ingests and reindexes on
Ray Data. Everything else is built exactly as off the cluster.
"""

from __future__ import annotations

from typing import Any

from ember.actors.job_bus import RayJobBus
from ember.actors.memory_plane import cluster_memory
from ember.actors.metrics import RayMetrics, cluster_text
from ember.actors.model_access import RayModelAccess
from ember.actors.trace_store import RayTraceStore
from ember.config import EmberConfig
from ember.models.protocol import ModelAccess
from ember.observability.tracing import Tracing
from ember.pipelines.runner import ClusterPipelines
from ember.services import Services
from ember.storage import Database

__all__ = ["cluster_services"]


def cluster_services(
    config: EmberConfig,
    *,
    service: str = "ember",
    database: Database | None = None,
    hub: Any = None,
) -> Services:
    """The services of this process on the Ray cluster it is connected to, over ``database``
    (default: the configured one); ``hub`` is the EventHub actor's handle when the caller
    holds it (else it is looked up by name on first use). Spans are this process's as
    ``service``, kept in the EventHub's store of recent traces."""
    database = database or Database.from_config(config)

    def models() -> ModelAccess:
        return RayModelAccess(refresh_s=config.models.route_refresh_s)

    return Services.build(
        config,
        database=database,
        models=models,
        memory=cluster_memory,
        bus=RayJobBus(hub),
        bulk=ClusterPipelines(config, database),
        tracing=Tracing(config.tracing, service, store=RayTraceStore(hub)),
        metrics=RayMetrics(),
        metrics_text=cluster_text,
    )
