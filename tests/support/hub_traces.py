"""The cluster's store of recent traces for a test: a real EventHub actor under the hub's
name (so every actor's spans reach it) and a poll of its spans."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray

from ember.actors.event_hub import EventHubActor
from ember.actors.names import HUB, NAMESPACE
from ember.actors.trace_store import RayTraceStore
from ember.config import EmberConfig
from ember.observability.traces import SpanRecord


@contextmanager
def named_hub(config: EmberConfig) -> Iterator[RayTraceStore]:
    """An EventHub actor named as the cluster's, over ``config``'s (migrated) database, killed
    after the block; the store reading its traces."""
    remote: Any = ray.remote(EventHubActor)
    hub = remote.options(name=HUB, namespace=NAMESPACE, num_cpus=0).remote(config)
    try:
        yield RayTraceStore(hub)
    finally:
        ray.kill(hub, no_restart=True)


def spans_of(store: RayTraceStore, trace_id: str, at_least: int) -> list[SpanRecord]:
    """The trace's spans once the store holds ``at_least`` of them (they arrive within about
    a second of ending)."""
    deadline = time.monotonic() + 30
    while True:
        spans = asyncio.run(store.spans(trace_id))
        if len(spans) >= at_least:
            return spans
        assert time.monotonic() < deadline, spans
        time.sleep(0.2)
