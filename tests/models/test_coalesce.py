"""Merging a stream's deltas over an interval: the first at once, the rest grouped, nothing
lost or reordered, errors after what came before them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ember.chat import Delta, Usage
from ember.errors import ProviderUnavailable
from ember.models.coalesce import coalesce, merge


async def paced(pieces: list[str], gap_s: float, fail: bool = False) -> AsyncIterator[Delta]:
    for i, piece in enumerate(pieces):
        await asyncio.sleep(gap_s)
        last = i == len(pieces) - 1 and not fail
        yield Delta(piece, "stop" if last else None, Usage(3, i + 1) if last else None)
    if fail:
        raise ProviderUnavailable("host gone")


async def test_the_first_delta_goes_alone_and_the_rest_are_merged() -> None:
    pieces = [f"t{i} " for i in range(20)]
    out = [d async for d in coalesce(paced(pieces, 0.005), 0.05)]
    assert out[0].text == "t0 "
    assert len(out) < len(pieces) / 2
    assert "".join(d.text for d in out) == "".join(pieces)
    assert out[-1].finish_reason == "stop" and out[-1].usage == Usage(3, 20)
    assert all(d.finish_reason is None for d in out[:-1])


async def test_an_interval_of_zero_passes_every_delta() -> None:
    out = [d async for d in coalesce(paced(["a", "b", "c"], 0), 0)]
    assert [d.text for d in out] == ["a", "b", "c"]


async def test_a_slow_stream_is_not_held_back() -> None:
    out = [d async for d in coalesce(paced(["a", "b", "c"], 0.08), 0.02)]
    assert [d.text for d in out] == ["a", "b", "c"]


async def test_an_error_comes_after_the_deltas_before_it() -> None:
    seen: list[str] = []

    async def read() -> None:
        async for delta in coalesce(paced(["a", "b", "c"], 0.001, fail=True), 0.05):
            seen.append(delta.text)

    with pytest.raises(ProviderUnavailable):
        await read()
    assert "".join(seen) == "abc"


async def test_closing_early_stops_the_source() -> None:
    stopped = asyncio.Event()

    async def endless() -> AsyncIterator[Delta]:
        try:
            while True:
                await asyncio.sleep(0.001)
                yield Delta("x")
        finally:
            stopped.set()

    stream = coalesce(endless(), 0.01)
    assert (await anext(stream)).text == "x"
    await stream.aclose()
    assert stopped.is_set()


def test_merge_keeps_order_tool_calls_and_the_last_usage() -> None:
    merged = merge(
        [
            Delta("a", tool_calls=[{"id": "1"}]),
            Delta("b", usage=Usage(1, 1)),
            Delta("c", "stop", tool_calls=[{"id": "2"}]),
        ]
    )
    assert merged.text == "abc" and merged.finish_reason == "stop"
    assert merged.usage == Usage(1, 1)
    assert merged.tool_calls == [{"id": "1"}, {"id": "2"}]
