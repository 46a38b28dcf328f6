"""Waiting in contract tests: poll a check until it holds, or fail saying what never happened."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["eventually"]

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]], what: str, timeout_s: float, every_s: float = 0.05
) -> T:
    """The first truthy answer of ``check`` (``None`` or another falsy one: not yet), asked
    every ``every_s`` seconds.

    :raises AssertionError: none within ``timeout_s`` seconds (the message says ``what``).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        answer = await check()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting until {what}")
        await asyncio.sleep(every_s)
