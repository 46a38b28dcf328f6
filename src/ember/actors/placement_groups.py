"""Placement groups for workers that land together, and the autoscaler request on Ray.

:func:`reserve` creates a placement group and waits until Ray has placed it, or gives up with
:class:`~ember.errors.ProviderUnavailable` (the provider of the workers cannot be started)
and removes the group, so a group that cannot be placed never waits in the cluster for room.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import ray
from ray.autoscaler.sdk import request_resources
from ray.util.placement_group import (
    PlacementGroup,
    placement_group,
    remove_placement_group,
)

from ember.errors import ProviderUnavailable
from ember.placement.requests import ResourceRequests

__all__ = ["Strategy", "ray_resource_requests", "release", "request", "reserve"]

Strategy = Literal["PACK", "STRICT_PACK", "SPREAD", "STRICT_SPREAD"]
"""Ray's placement strategies: PACK prefers one node, STRICT_PACK requires one, SPREAD prefers
distinct nodes, STRICT_SPREAD requires them."""


def reserve(
    bundle: Mapping[str, float],
    count: int,
    *,
    strategy: Strategy = "PACK",
    timeout_s: float = 120.0,
    name: str = "",
) -> PlacementGroup:
    """A placement group of ``count`` copies of ``bundle``, placed by ``strategy``; returns once
    Ray has reserved every bundle.

    Actors go into it with ``PlacementGroupSchedulingStrategy(group, bundle_index=i)`` and
    resources no larger than ``bundle``. The caller owns the group: :func:`release` frees it.

    :raises ValueError: ``count`` is below 1.
    :raises ProviderUnavailable: the group was not placed within ``timeout_s`` (the cluster
        lacks the room, or the bundles cannot be placed at all); it has been removed.
    """
    wanted = dict(bundle)
    group = request(wanted, count, strategy=strategy, name=name)
    if group.wait(timeout_seconds=timeout_s):
        return group
    release(group)
    raise ProviderUnavailable(
        f"cannot place {count} worker(s) of {_resources(wanted)} with {strategy} within "
        f"{timeout_s:g} s: the cluster lacks free room for them, or has no node (for "
        f"{strategy}: no set of nodes) with those resources",
        extra={"bundle": wanted, "count": count, "strategy": strategy, "timeout_s": timeout_s},
    )


def request(
    bundle: Mapping[str, float], count: int, *, strategy: Strategy = "PACK", name: str = ""
) -> PlacementGroup:
    """A placement group of ``count`` copies of ``bundle``, created but not waited for: Ray
    places it when there is room; ``group.ready()`` is an object ref that resolves then.

    :raises ValueError: ``count`` is below 1.
    """
    if count < 1:
        raise ValueError(f"a placement group needs at least one bundle, got {count}")
    group: PlacementGroup = placement_group(
        [dict(bundle) for _ in range(count)], strategy=strategy, name=name
    )
    return group


def release(group: PlacementGroup) -> None:
    """Remove ``group``, freeing its resources; the actors in it are killed. Idempotent."""
    try:
        remove_placement_group(group)
    except Exception:  # already removed, or the cluster is gone: nothing left to free
        return


def _resources(bundle: Mapping[str, float]) -> str:
    return ", ".join(f"{amount:g} {name}" for name, amount in sorted(bundle.items()))


def ray_resource_requests() -> ResourceRequests:
    """:class:`ResourceRequests` on the Ray cluster this process is connected to."""

    def request(bundles: list[dict[str, float]]) -> None:
        request_resources(bundles=bundles)

    def available() -> Mapping[str, float]:
        free: dict[str, float] = ray.available_resources()  # type: ignore[no-untyped-call]
        return free

    return ResourceRequests(request, available)
