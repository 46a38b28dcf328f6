"""Starting Serve survives a proxy that Serve replaced while it started (a loaded machine),
and gives up with ``deploy_failed`` when every attempt loses its proxy."""

from __future__ import annotations

import pytest
from ray.exceptions import ActorDiedError

from ember.cluster.runtime import start_serve
from ember.errors import DeployFailed


def test_a_proxy_that_died_while_starting_is_started_again() -> None:
    calls: list[int] = []

    def start() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ActorDiedError()

    start_serve(start, attempts=3)
    assert len(calls) == 3


def test_every_attempt_losing_its_proxy_is_deploy_failed() -> None:
    calls: list[int] = []

    def start() -> None:
        calls.append(1)
        raise ActorDiedError()

    with pytest.raises(DeployFailed, match="HTTP proxy did not start") as raised:
        start_serve(start, attempts=2)
    assert len(calls) == 2 and raised.value.code == "deploy_failed"


def test_any_other_error_is_not_retried() -> None:
    calls: list[int] = []

    def start() -> None:
        calls.append(1)
        raise RuntimeError("port taken")

    with pytest.raises(RuntimeError, match="port taken"):
        start_serve(start)
    assert calls == [1]
