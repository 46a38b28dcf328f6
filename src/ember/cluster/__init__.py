"""Cluster lifecycle, the top of the Ray side: start or join Ray, boot ember's actors and its
Serve app, probe a running cluster.

Everything loads on first use, so ``import ember.cluster`` does not import Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ember._lazy import lazy_exports

if TYPE_CHECKING:
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

_LAZY = {
    "ClusterInfo": "ember.cluster.runtime",
    "Runtime": "ember.cluster.runtime",
    "check_port_free": "ember.cluster.runtime",
    "check_reachable": "ember.cluster.runtime",
    "ClusterStatus": "ember.cluster.probe",
    "probe_cluster": "ember.cluster.probe",
}


__getattr__ = lazy_exports(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
