"""What the model registry knows: registered model files and the models loaded now."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["LoadedModel", "ModelRecord"]


@dataclass(frozen=True)
class ModelRecord:
    """A model file ember may load, pinned to the sha256 of its bytes.

    ``template`` names the prompt template chat messages are rendered with (``qa`` for base
    models, ``gguf`` for the chat template stored in the file); ``stop`` are the stop sequences
    every call adds, so a base model ends its turn. ``warm`` models are loaded at start and
    ``/ready`` waits for them.
    """

    name: str
    path: str
    digest: str
    size_bytes: int
    format: str = "gguf"
    template: str = "qa"
    stop: tuple[str, ...] = ()
    context_length: int | None = None
    warm: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A model resident now: where its first host is, how big one host is, and until when
    (``None``: until it is evicted for room); ``replicas`` hosts serve it, on ``nodes`` (one
    node id per host)."""

    name: str
    digest: str
    node_id: str
    size_bytes: int
    loaded_at: datetime
    last_used_at: datetime
    expires_at: datetime | None
    gpu: bool = False
    queue_depth: int = 0
    replicas: int = 1
    nodes: tuple[str, ...] = ()
