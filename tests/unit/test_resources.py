"""ResourceRequests with a recording request function and a settable free-resources view
(the integration test reads a real request back from Ray's GCS)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from ember.placement.requests import ResourceRequests

WORKER = {"CPU": 0.5}


class Recorder:
    """Stands in for ``request_resources`` and ``ray.available_resources``."""

    def __init__(self, free: Mapping[str, float]) -> None:
        self.free = dict(free)
        self.sent: list[list[dict[str, float]]] = []
        self.asked = 0

    def request(self, bundles: list[dict[str, float]]) -> None:
        self.sent.append(bundles)

    def available(self) -> Mapping[str, float]:
        self.asked += 1
        return self.free


@pytest.fixture
def ray_side() -> Recorder:
    return Recorder({"CPU": 1.0, "memory": 1e9})


@pytest.fixture
def requests(ray_side: Recorder) -> ResourceRequests:
    return ResourceRequests(ray_side.request, ray_side.available)


def test_nothing_is_requested_while_the_waiting_workers_fit(
    ray_side: Recorder, requests: ResourceRequests
) -> None:
    assert requests.update([WORKER] * 3, [WORKER] * 2) == []
    assert ray_side.sent == [] and requests.requested == []


def test_every_desired_worker_is_requested_when_the_waiting_ones_do_not_fit(
    ray_side: Recorder, requests: ResourceRequests
) -> None:
    assert requests.update([WORKER] * 4, [WORKER] * 3) == [WORKER] * 4
    assert ray_side.sent == [[WORKER] * 4]
    assert requests.requested == [WORKER] * 4


def test_an_unchanged_request_is_not_sent_again_and_a_changed_one_is(
    ray_side: Recorder, requests: ResourceRequests
) -> None:
    requests.update([WORKER] * 4, [WORKER] * 3)
    requests.update([WORKER] * 4, [WORKER] * 3)
    assert len(ray_side.sent) == 1
    requests.update([WORKER] * 5, [WORKER] * 4)
    assert ray_side.sent[-1] == [WORKER] * 5 and len(ray_side.sent) == 2


def test_the_request_is_cleared_once_the_waiting_fit_or_nothing_waits(
    ray_side: Recorder, requests: ResourceRequests
) -> None:
    requests.update([WORKER] * 4, [WORKER] * 3)
    ray_side.free["CPU"] = 2.0
    assert requests.update([WORKER] * 4, [WORKER] * 3) == []
    assert ray_side.sent[-1] == []
    requests.update([WORKER] * 4, [WORKER] * 3)
    requests.update([WORKER], [])
    assert ray_side.sent[-1] == [] and requests.requested == []
    sent = len(ray_side.sent)
    requests.update([WORKER], [])
    assert len(ray_side.sent) == sent, "no request stands, so nothing is cleared"


def test_free_resources_are_asked_only_when_something_waits(
    ray_side: Recorder, requests: ResourceRequests
) -> None:
    requests.update([WORKER] * 2, [])
    assert ray_side.asked == 0
    requests.update([WORKER] * 2, [WORKER])
    assert ray_side.asked == 1


def test_every_resource_must_fit_and_a_missing_one_is_zero(
    ray_side: Recorder, requests: ResourceRequests
) -> None:
    gpu_worker = {"CPU": 0.1, "GPU": 0.5}
    assert requests.update([gpu_worker], [gpu_worker]) == [gpu_worker]
    ray_side.free["GPU"] = 0.5
    assert requests.update([gpu_worker], [gpu_worker]) == []


def test_fractions_that_add_up_exactly_fit(ray_side: Recorder, requests: ResourceRequests) -> None:
    ray_side.free["CPU"] = 0.3
    assert requests.update([{"CPU": 0.1}] * 3, [{"CPU": 0.1}] * 3) == []


def test_a_failing_request_leaves_the_standing_one_unchanged(ray_side: Recorder) -> None:
    def refuse(bundles: list[dict[str, float]]) -> None:
        raise ConnectionError("the GCS is gone")

    requests = ResourceRequests(refuse, ray_side.available)
    with pytest.raises(ConnectionError):
        requests.update([WORKER] * 4, [WORKER] * 3)
    assert requests.requested == []
