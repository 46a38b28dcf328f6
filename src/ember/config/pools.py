"""The one shape of every pool of workers: how few and how many, what each asks of the
cluster, and how its size follows demand.

Job workers, embedding workers, model hosts and Serve replicas each keep their documented
settings (``jobs.workers_min``, ``embeddings.worker_num_gpus``, ``models.replicas_max``,
``serve.max_replicas``, ...); each section's ``scaling`` property reads them into a
:class:`PoolConfig`, and everything that sizes or places a pool takes that.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["PoolConfig"]


class PoolConfig(BaseModel):
    """One pool: ``min_size`` to ``max_size`` members, each reserving ``num_cpus`` CPUs and,
    on a cluster with GPUs, ``num_gpus`` GPUs; sized for ``target_per_worker`` units of
    demand (queued plus running work) per member, shrinking only after ``cooldown_s``
    seconds of lower demand (see :class:`ember.placement.scaling.ScalingPolicy`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_size: int = Field(ge=0)
    max_size: int = Field(ge=1)
    num_cpus: float = Field(gt=0)
    num_gpus: float = Field(0.0, ge=0)
    memory_bytes: int = Field(0, ge=0)
    """Memory Ray reserves per member (placing it on a node with that much free); 0: none."""
    target_per_worker: float = Field(gt=0)
    cooldown_s: float = Field(ge=0)

    @model_validator(mode="after")
    def _sizes(self) -> PoolConfig:
        if self.max_size < self.min_size:
            raise ValueError(f"max_size ({self.max_size}) is below min_size ({self.min_size})")
        return self

    @property
    def fixed(self) -> bool:
        """Whether the pool never changes size (``min_size == max_size``)."""
        return self.min_size == self.max_size
