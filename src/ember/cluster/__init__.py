"""Cluster lifecycle: start or join Ray, deploy Serve, probe a running cluster."""

from ember.cluster.probe import ClusterStatus, probe_cluster
from ember.cluster.runtime import ClusterInfo, Runtime, check_port_free, check_reachable

__all__ = [
    "ClusterInfo",
    "ClusterStatus",
    "Runtime",
    "check_port_free",
    "check_reachable",
    "probe_cluster",
]
