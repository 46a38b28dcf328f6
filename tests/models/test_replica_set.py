"""ReplicaSet over two real llama.cpp hosts of the bundled model: each call goes to the host
with the fewest calls in flight through the set, ties take turns, and a new host list keeps
the counts of the hosts that stay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ember.chat import GenerationOptions
from ember.config.models import ModelsConfig
from ember.models import ModelHost, ModelRecord
from ember.models.replicas import ReplicaSet

SHORT = GenerationOptions(max_tokens=4, temperature=0)


@pytest.fixture
async def hosts(gemma: ModelRecord) -> AsyncIterator[list[ModelHost]]:
    made = [ModelHost(gemma, ModelsConfig()) for _ in range(2)]
    await asyncio.gather(*(asyncio.to_thread(host.load) for host in made))
    try:
        yield made
    finally:
        for host in made:
            await host.close()


async def test_a_call_goes_to_the_host_with_fewer_calls_in_flight(hosts: list[ModelHost]) -> None:
    replicas = ReplicaSet(hosts)
    held = replicas.stream("Once upon a time", GenerationOptions(max_tokens=64, temperature=0))
    assert (await anext(held)).text
    assert replicas.in_flight() == [1, 0]
    assert await hosts[0].busy() == 1 and await hosts[1].busy() == 0
    answer = await replicas.complete("Question: What is the capital of France?\nAnswer:", SHORT)
    assert "Paris" in answer.text
    assert await replicas.busy() == 1, "the second call ran on the idle host"
    await held.aclose()
    assert replicas.in_flight() == [0, 0]


async def test_ties_take_turns(hosts: list[ModelHost]) -> None:
    replicas = ReplicaSet(hosts)
    assert [replicas.pick() for _ in range(4)] == [hosts[0], hosts[1], hosts[0], hosts[1]]


async def test_a_new_host_list_keeps_the_counts_of_hosts_that_stay(
    hosts: list[ModelHost],
) -> None:
    replicas = ReplicaSet(hosts)
    held = replicas.stream("Once upon a time", GenerationOptions(max_tokens=64, temperature=0))
    await anext(held)
    replicas.update(list(reversed(hosts)))
    assert replicas.in_flight() == [0, 1]
    assert replicas.pick() is hosts[1]
    replicas.update([hosts[1]])
    await held.aclose()
    assert replicas.in_flight() == [0], "a call ending on a host that left is not counted"
    with pytest.raises(ValueError, match="at least one host"):
        replicas.update([])
