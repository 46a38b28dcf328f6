"""Cluster lifecycle: start or join Ray, deploy Serve, probe a running cluster; pool sizing.

The Ray-free parts (:class:`ScalingPolicy`, :class:`ResourceRequests`) load at once; the rest
loads on first use, so ``import ember.cluster.scaling`` does not import Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ember._lazy import lazy_exports
from ember.cluster.resources import ResourceRequests, ray_resource_requests
from ember.cluster.scaling import ScalingPolicy

if TYPE_CHECKING:
    from ember.cluster.probe import ClusterStatus, probe_cluster
    from ember.cluster.runtime import ClusterInfo, Runtime, check_port_free, check_reachable

__all__ = [
    "ClusterInfo",
    "ClusterStatus",
    "ResourceRequests",
    "Runtime",
    "ScalingPolicy",
    "check_port_free",
    "check_reachable",
    "probe_cluster",
    "ray_resource_requests",
]

_LAZY = {
    "ClusterInfo": "ember.cluster.runtime",
    "Runtime": "ember.cluster.runtime",
    "check_port_free": "ember.cluster.runtime",
    "check_reachable": "ember.cluster.runtime",
    "ClusterStatus": "ember.cluster.probe",
    "probe_cluster": "ember.cluster.probe",
}


__getattr__ = lazy_exports(__name__, _LAZY)
