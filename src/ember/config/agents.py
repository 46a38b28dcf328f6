"""The ``agents`` section: the agent pool, where runs work, and what they may leave behind."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ember.config.pools import PoolConfig

__all__ = ["AGENT_KIND", "AgentsConfig"]

AGENT_KIND = "agent"
"""The job kind whose workers form the agent pool."""


class AgentsConfig(BaseModel):
    """Agent jobs: their pool of workers, their working directories and their artifacts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workers_min: int = Field(
        0, ge=0, description="Agent worker actors kept while no agent job waits."
    )
    workers_max: int = Field(
        2, ge=1, description="Most agent worker actors the pool grows to as its queue fills."
    )
    slots_per_worker: int = Field(
        2, ge=1, description="Agents one worker runs at a time (each with its own sandboxes)."
    )
    worker_num_cpus: float = Field(
        0.5,
        gt=0,
        description="CPUs Ray reserves per agent worker (its sandboxed commands run there).",
    )
    scale_cooldown_s: float = Field(
        30.0,
        ge=0,
        description="Seconds a smaller agent pool must have been enough before idle workers go.",
    )
    work_dir: Path | None = Field(
        None,
        description="Node-local directory under which each run gets a fresh working directory "
        "(removed when it ends); unset: `home/agents`.",
    )
    max_artifact_files: int = Field(200, ge=0, description="Most files a run leaves as artifacts.")
    max_artifact_bytes: int = Field(
        16 * 1024 * 1024, ge=0, description="Most bytes a run's artifacts hold in all."
    )
    max_artifact_file_bytes: int = Field(
        8 * 1024 * 1024, ge=0, description="Largest file kept as an artifact."
    )

    @model_validator(mode="after")
    def _sizes(self) -> AgentsConfig:
        if self.workers_max < self.workers_min:
            raise ValueError(
                f"workers_max ({self.workers_max}) is below workers_min ({self.workers_min})"
            )
        return self

    @property
    def scaling(self) -> PoolConfig:
        """The agent kind's worker actors as a pool (sized by queued plus running agents)."""
        return PoolConfig(
            min_size=self.workers_min,
            max_size=self.workers_max,
            num_cpus=self.worker_num_cpus,
            target_per_worker=self.slots_per_worker,
            cooldown_s=self.scale_cooldown_s,
        )
