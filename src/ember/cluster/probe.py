"""Look at a running cluster from outside: is Ray up, and what does Serve report."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import ray
from ray import serve

from ember.cluster.runtime import check_reachable
from ember.config import EmberConfig
from ember.errors import ClusterUnavailable

__all__ = ["ClusterStatus", "probe_cluster"]


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """What a probe saw. ``error`` is set when the cluster could not be reached."""

    reachable: bool
    address: str | None = None
    nodes: int = 0
    cpus: float = 0.0
    applications: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def probe_cluster(config: EmberConfig) -> ClusterStatus:
    """Connect as a short-lived driver and report nodes, CPUs and Serve application states.

    Nothing answering at the address (``auto`` included, resolved first) is reported within
    seconds, not after Ray's minutes of retries."""
    address = config.ray.address or os.environ.get("RAY_ADDRESS") or "auto"
    try:
        reachable = check_reachable(address)
        ray.init(address=reachable, namespace="ember", logging_level=logging.ERROR)
    except (ClusterUnavailable, ConnectionError, RuntimeError, ValueError) as exc:
        return ClusterStatus(reachable=False, error=str(exc).splitlines()[0][:300])
    try:
        all_nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        nodes = [node for node in all_nodes if node.get("Alive")]
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        cpus = float(resources.get("CPU", 0.0))
        try:
            apps = {
                name: getattr(app.status, "value", str(app.status))
                for name, app in serve.status().applications.items()
            }
        except Exception as exc:
            apps = {"serve": f"unavailable: {exc}"}
        return ClusterStatus(
            reachable=True,
            address=ray.get_runtime_context().gcs_address,
            nodes=len(nodes),
            cpus=cpus,
            applications=apps,
        )
    finally:
        ray.shutdown()
