"""Asking Ray's autoscaler for room ahead of the workers that need it.

A pool creates its worker actors at once; one that does not fit waits until Ray has room, and
an autoscaling cluster adds a node for it in its own time. :class:`ResourceRequests` tells the
autoscaler at once, through ``ray.autoscaler.sdk.request_resources``, whose request stands
until the next call replaces it. The Ray calls are injected;
:func:`ember.actors.placement_groups.ray_resource_requests` wires the real ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

__all__ = ["Bundle", "ResourceRequests"]

Bundle = Mapping[str, float]
"""The resources one worker asks for, as Ray names them: ``{"CPU": 0.1}``."""

Request = Callable[[list[dict[str, float]]], None]
"""Replaces the standing request with these bundles (``[]`` clears it)."""

Available = Callable[[], Mapping[str, float]]
"""The cluster's free resources now, as ``ray.available_resources()`` gives them."""


class ResourceRequests:
    """One standing request to the autoscaler on behalf of every pool of this process."""

    def __init__(self, request: Request, available: Available) -> None:
        self._request = request
        self._available = available
        self._standing: list[dict[str, float]] = []

    @property
    def requested(self) -> list[dict[str, float]]:
        """The bundles of the standing request (``[]``: none)."""
        return list(self._standing)

    def update(
        self, desired: Sequence[Bundle], waiting: Sequence[Bundle]
    ) -> list[dict[str, float]]:
        """Request room for ``desired`` when ``waiting`` does not fit; else clear the request.

        :param desired: one bundle per worker the pools should have, started or not (Ray's
            autoscaler counts what already runs, so this is a total, not an increment).
        :param waiting: the bundles of those workers that do not hold their resources yet. A
            worker still starting counts here even if Ray has placed it; the request it may
            cause is one the cluster already fits, which the autoscaler ignores.

        ``waiting`` fits when, for every resource, its sum is at most what ``available()``
        reports free (packing onto nodes is left to Ray). When it does not fit, ``desired``
        is requested (once: an unchanged request is not sent again); when it fits or is
        empty, a standing request is cleared with ``request([])``. ``available()`` is asked
        only when something waits. Returns the standing request.
        """
        wanted = [dict(bundle) for bundle in desired]
        if waiting and not _fits(waiting, self._available()):
            if wanted != self._standing:
                self._request(wanted)
                self._standing = wanted
        elif self._standing:
            self._request([])
            self._standing = []
        return self.requested


def _fits(bundles: Sequence[Bundle], free: Mapping[str, float]) -> bool:
    totals: dict[str, float] = {}
    for bundle in bundles:
        for name, amount in bundle.items():
            totals[name] = totals.get(name, 0.0) + amount
    return all(amount <= float(free.get(name, 0.0)) + 1e-9 for name, amount in totals.items())
