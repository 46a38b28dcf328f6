"""Where the next model host goes: the node with room for it, and which hosts must close first.

Plain data in, a decision out; the registry gathers the hosts (with whether each may be closed)
and carries the decision out.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["NodeCapacity", "Placement", "Slot", "place"]

T = TypeVar("T")


@dataclass(frozen=True)
class NodeCapacity:
    """A node that can host models: bytes of models it may hold, whether it has a GPU, and how
    many GPUs Ray reports for it (``0`` when unknown or none)."""

    node_id: str
    capacity_bytes: int
    gpu: bool = False
    gpus: float = 0.0


@dataclass(frozen=True)
class Slot(Generic[T]):
    """A host holding room on a node: its bytes, the GPUs it holds there, when its model was
    last used, and whether it may be closed to make room (``ref`` is the caller's handle)."""

    node_id: str
    size_bytes: int
    gpus: float
    last_used: float
    closable: bool
    ref: T


@dataclass(frozen=True)
class Placement(Generic[T]):
    """The node chosen, and the hosts to close there first (least recently used first)."""

    node: NodeCapacity
    close: tuple[Slot[T], ...]


def place(
    size_bytes: int,
    nodes: Sequence[NodeCapacity],
    slots: Sequence[Slot[T]],
    *,
    host_gpus: float,
    spread_from: Collection[str] = (),
    gpu_only: bool = False,
) -> Placement[T] | None:
    """The best node for a host of ``size_bytes``, or ``None`` when none has room.

    A node has room when its free bytes cover the host and, on a GPU node where hosts ask for
    ``host_gpus`` GPUs each, its GPUs not held by hosts cover one more; closable slots there are
    freed least recently used first until both hold. ``gpu_only`` leaves out CPU nodes. Nodes
    rank by: a GPU first, then not in ``spread_from`` (nodes that already host the model),
    then the fewest hosts closed, then the most bytes left free.
    """
    best: tuple[tuple[bool, bool, int, int], Placement[T]] | None = None
    for node in nodes:
        if gpu_only and not node.gpu:
            continue
        here = [s for s in slots if s.node_id == node.node_id]
        free = node.capacity_bytes - sum(s.size_bytes for s in here)
        gpus_free = node.gpus - sum(s.gpus for s in here)
        gpus_needed = host_gpus if node.gpu else 0.0
        close: list[Slot[T]] = []
        for slot in sorted(here, key=lambda s: s.last_used):
            if _fits(free, gpus_free, size_bytes, gpus_needed):
                break
            if slot.closable:
                close.append(slot)
                free += slot.size_bytes
                gpus_free += slot.gpus
        if not _fits(free, gpus_free, size_bytes, gpus_needed):
            continue
        rank = (not node.gpu, node.node_id in spread_from, len(close), -free)
        if best is None or rank < best[0]:
            best = (rank, Placement(node, tuple(close)))
    return None if best is None else best[1]


def _fits(free: int, gpus_free: float, size_bytes: int, gpus_needed: float) -> bool:
    return free >= size_bytes and gpus_free + 1e-9 >= gpus_needed
