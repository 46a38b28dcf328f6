"""Where the next model host goes: room in bytes and in GPUs, least recently used hosts closed
first, GPU nodes before CPU ones, then nodes that do not host the model yet."""

from __future__ import annotations

from ember.placement.room import NodeCapacity, Slot, place

CPU_A = NodeCapacity("cpu-a", 1000)
CPU_B = NodeCapacity("cpu-b", 1000)
GPU = NodeCapacity("gpu", 1000, gpu=True, gpus=1)


def host(node: NodeCapacity, size: int, used: float, closable: bool, ref: str) -> Slot[str]:
    return Slot(node.node_id, size, 1.0 if node.gpu else 0.0, used, closable, ref)


def test_a_gpu_node_with_a_free_gpu_goes_first() -> None:
    placed = place(300, [CPU_A, GPU], [], host_gpus=1)
    assert placed is not None and placed.node == GPU and placed.close == ()


def test_a_gpu_node_whose_gpus_are_held_is_full_whatever_its_bytes() -> None:
    slots = [host(GPU, 100, 1.0, False, "busy")]
    placed = place(300, [CPU_A, GPU], slots, host_gpus=1)
    assert placed is not None and placed.node == CPU_A
    half = place(300, [GPU], [Slot("gpu", 100, 0.5, 1.0, False, "half")], host_gpus=0.5)
    assert half is not None and half.node == GPU, "two half-GPU hosts share one GPU"
    assert place(300, [GPU], slots, host_gpus=1, gpu_only=True) is None


def test_idle_hosts_close_least_recently_used_first_and_busy_ones_never() -> None:
    slots = [
        host(CPU_A, 400, 3.0, True, "newer"),
        host(CPU_A, 400, 1.0, True, "older"),
        host(CPU_A, 100, 0.0, False, "busy"),
    ]
    placed = place(300, [CPU_A], slots, host_gpus=1)
    assert placed is not None and [s.ref for s in placed.close] == ["older"]
    assert place(950, [CPU_A], slots, host_gpus=1) is None, "the busy host's 100 bytes stay"


def test_fewer_closed_hosts_beat_more_and_then_more_free_bytes() -> None:
    slots = [host(CPU_A, 800, 1.0, True, "a"), host(CPU_B, 500, 1.0, True, "b")]
    placed = place(400, [CPU_A, CPU_B], slots, host_gpus=1)
    assert placed is not None and placed.node == CPU_B and placed.close == ()
    roomier = place(100, [CPU_A, CPU_B], slots, host_gpus=1)
    assert roomier is not None and roomier.node == CPU_B


def test_a_node_that_hosts_the_model_already_comes_after_one_that_does_not() -> None:
    placed = place(100, [CPU_A, CPU_B], [], host_gpus=1, spread_from={"cpu-a"})
    assert placed is not None and placed.node == CPU_B
    alone = place(100, [CPU_A], [], host_gpus=1, spread_from={"cpu-a"})
    assert alone is not None and alone.node == CPU_A, "spreading is a preference, not a rule"
