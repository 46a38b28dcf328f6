"""The resources one worker asks for, as Ray names them (pure: the cluster's totals come in)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["worker_resources"]


def worker_resources(
    cluster: Mapping[str, float], num_cpus: float, num_gpus: float
) -> dict[str, float]:
    """The resources of one worker: ``{"CPU": num_cpus}``, plus ``{"GPU": num_gpus}`` when the
    cluster has ``GPU`` (``cluster["GPU"] > 0``) and ``num_gpus > 0``.

    ``cluster`` is what ``ray.cluster_resources()`` returns. A fraction of a GPU shares one
    device; above 1 it must be a whole number (Ray's rule).

    :raises ValueError: ``num_cpus`` or ``num_gpus`` is negative, or ``num_gpus`` is above 1
        and not whole.
    """
    if num_cpus < 0 or num_gpus < 0:
        raise ValueError(f"resources cannot be negative: num_cpus={num_cpus}, num_gpus={num_gpus}")
    if num_gpus > 1 and not float(num_gpus).is_integer():
        raise ValueError(f"num_gpus above 1 must be whole, got {num_gpus}")
    resources = {"CPU": float(num_cpus)}
    if num_gpus > 0 and float(cluster.get("GPU", 0.0)) > 0:
        resources["GPU"] = float(num_gpus)
    return resources
