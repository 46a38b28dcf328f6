"""Waiting for object refs from a plain thread, without ``ray.get``.

Sync code (a vector index, an embedder) runs in worker threads of async actors and async
Serve replicas. ``ray.get`` there works but is Ray's blocking call inside an async actor
(Ray warns about it, and on the actor's event loop it would stall every other call). Here each
ref is turned into a ``concurrent.futures.Future`` and the calling thread waits on those.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Sequence
from typing import Any

from ray.exceptions import GetTimeoutError

__all__ = ["wait_for"]


def wait_for(refs: Sequence[Any], timeout_s: float | None = None) -> list[Any]:
    """The values of ``refs``, in order, once all have resolved.

    :raises RuntimeError: called on a running event loop (await the refs there instead).
    :raises RayError: what a ref resolves to when its task or actor failed (the first such,
        in order), as ``ray.get`` raises it.
    :raises GetTimeoutError: not all resolved within ``timeout_s`` seconds.
    """
    if _on_event_loop():
        raise RuntimeError("wait_for blocks its thread: await the refs on an event loop")
    futures = [ref.future() for ref in refs]
    _, pending = concurrent.futures.wait(futures, timeout=timeout_s)
    if pending:
        raise GetTimeoutError(f"{len(pending)} of {len(futures)} refs not ready in {timeout_s} s")
    return [future.result() for future in futures]


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
