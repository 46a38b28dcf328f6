"""The ``vm`` section: the hypervisor, the guest image, each VM's limits and their caps, and
the pool of VM supervisors that run ``vm`` jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ember.config.pools import PoolConfig

__all__ = ["VM_KIND", "VMConfig"]

VM_KIND = "vm"
"""The job kind whose workers are the VM supervisors."""

QEMU_OVERHEAD_MIB = 64
"""Memory a VM's QEMU process uses beyond the guest's own, counted when placing supervisors."""


class VMConfig(BaseModel):
    """Throwaway VMs: where they run, what each may use, and who runs them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str = Field("qemu:///system", description="The libvirt connection VMs are run through.")
    accel: Literal["auto", "kvm", "tcg"] = Field(
        "auto",
        description="CPU acceleration: `auto` uses KVM only when a test boot with it runs a "
        "command (the verdict is kept until the host reboots), else TCG.",
    )
    image: Path | None = Field(
        None,
        description="The guest image directory (`ember vm image build` makes it); unset: "
        "`~/.cache/ember/vm/image`.",
    )
    work_dir: Path | None = Field(
        None,
        description="Node-local directory of each VM's files (kernel, initramfs, disk, "
        "console); it must be reachable by libvirt's QEMU user; unset: "
        "`/var/tmp/ember-vm-<hash of home>`.",
    )
    vcpus: int = Field(1, ge=1, description="vCPUs of a VM whose job names none.")
    memory_mib: int = Field(256, ge=64, description="Memory of a VM whose job names none.")
    disk_mib: int = Field(64, ge=8, description="Workspace disk of a VM whose job names none.")
    timeout_s: float = Field(
        120.0, gt=0, description="Wall clock of a VM whose job names none (boot included)."
    )
    max_vcpus: int = Field(4, ge=1, description="Most vCPUs a job may ask for.")
    max_memory_mib: int = Field(2048, ge=64, description="Most memory a job may ask for.")
    max_disk_mib: int = Field(4096, ge=8, description="Largest workspace disk a job may ask for.")
    max_timeout_s: float = Field(3600.0, gt=0, description="Longest wall clock a job may ask for.")
    output_bytes: int = Field(
        1024 * 1024, ge=1, description="Bytes of stdout and of stderr each a VM job keeps."
    )
    console_bytes: int = Field(
        4 * 1024 * 1024,
        ge=4096,
        description="Most bytes a guest may write to its serial console; past it the VM is "
        "destroyed (`vm_failed`).",
    )
    supervisors_min: int = Field(
        0, ge=0, description="VM supervisor actors kept while no `vm` job waits."
    )
    supervisors_max: int = Field(
        1, ge=1, description="Most VM supervisor actors the pool grows to as its queue fills."
    )
    vms_per_supervisor: int = Field(2, ge=1, description="VMs one supervisor runs at a time.")
    supervisor_num_cpus: float = Field(
        1.0, gt=0, description="CPUs Ray reserves per supervisor (its VMs' QEMU runs there)."
    )
    scale_cooldown_s: float = Field(
        30.0, ge=0, description="Seconds a smaller VM pool must have been enough before it shrinks."
    )
    reap_interval_s: float = Field(
        30.0, gt=0, description="How often each supervisor removes VMs no live job owns."
    )

    @model_validator(mode="after")
    def _caps(self) -> VMConfig:
        for name in ("vcpus", "memory_mib", "disk_mib", "timeout_s"):
            if getattr(self, name) > getattr(self, f"max_{name}"):
                raise ValueError(
                    f"{name} ({getattr(self, name)}) is above max_{name} "
                    f"({getattr(self, f'max_{name}')})"
                )
        if self.supervisors_max < self.supervisors_min:
            raise ValueError(
                f"supervisors_max ({self.supervisors_max}) is below supervisors_min "
                f"({self.supervisors_min})"
            )
        return self

    @property
    def scaling(self) -> PoolConfig:
        """The VM supervisors as a pool (sized by queued plus running `vm` jobs), each
        reserving memory for its VMs at their default size."""
        return PoolConfig(
            min_size=self.supervisors_min,
            max_size=self.supervisors_max,
            num_cpus=self.supervisor_num_cpus,
            memory_bytes=self.vms_per_supervisor
            * (self.memory_mib + QEMU_OVERHEAD_MIB)
            * 1024
            * 1024,
            target_per_worker=self.vms_per_supervisor,
            cooldown_s=self.scale_cooldown_s,
        )
