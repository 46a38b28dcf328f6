""":class:`~ember.actors.singleton.NamedActor` on a real local Ray: a call that finds the actor
restarting is retried until it answers; an actor gone for good is a ``ServiceUnavailable``
after a bounded retry; one started again under the same name is found by name; and a restarted
singleton runs its ``start`` by itself (at least once: ``start`` must be idempotent)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import ray

from ember.actors.names import NAMESPACE
from ember.actors.singleton import NamedActor, restarted, start_after_restart
from ember.errors import ServiceUnavailable
from tests.support.cluster import local_ray

pytestmark = pytest.mark.slow

NAME = "ember-test-singleton"


class Singleton:
    """Counts its starts; says whether it is a restart."""

    def __init__(self) -> None:
        self.starts = 0
        self.restarted = restarted()
        start_after_restart()

    async def start(self) -> None:
        self.starts += 1

    async def info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "starts": self.starts, "restarted": self.restarted}


def _start() -> Any:
    """A new singleton, once the name is free (the last one's death may still be under way)."""
    remote: Any = ray.remote(Singleton)
    taken: ValueError | None = None
    for _ in range(100):
        try:
            return remote.options(
                name=NAME, namespace=NAMESPACE, max_restarts=-1, max_task_retries=0, num_cpus=0
            ).remote()
        except ValueError as exc:
            taken = exc
            time.sleep(0.1)
    raise AssertionError(f"{NAME} is still taken: {taken}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    with local_ray(num_cpus=2):
        yield


async def test_a_restarting_actor_is_waited_for_and_starts_itself(cluster: None) -> None:
    handle = _start()
    actor = NamedActor(NAME, "the test singleton")
    first = await actor.call("info")
    assert first["restarted"] is False and first["starts"] == 0, "fresh: its builder starts it"
    ray.kill(handle, no_restart=False)
    again = await actor.call("info")
    while again["pid"] == first["pid"] or again["starts"] == 0:  # not landed, not started
        await asyncio.sleep(0.05)
        again = await actor.call("info")
    assert again["restarted"] is True and again["starts"] >= 1, "at least once: it is idempotent"
    ray.kill(handle, no_restart=True)


async def test_an_actor_gone_for_good_is_unavailable_then_found_again(cluster: None) -> None:
    handle = _start()
    actor = NamedActor(NAME, "the test singleton", backoff_s=(0.1, 0.1))
    first = await actor.call("info")
    ray.kill(handle, no_restart=True)
    while True:  # until the kill has landed
        try:
            await actor.call("info")
        except ServiceUnavailable as exc:
            caught = exc
            break
    assert caught.status == 503 and caught.headers["Retry-After"] == "5"
    assert "the test singleton is not running" in caught.detail
    with pytest.raises(ServiceUnavailable):
        await actor.call("info", retry=False)

    replacement = _start()
    found = await actor.call("info")
    assert found["pid"] != first["pid"] and found["restarted"] is False
    ray.kill(replacement, no_restart=True)
