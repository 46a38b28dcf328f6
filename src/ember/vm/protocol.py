"""The hypervisor seam: start a transient VM from a :class:`DomainSpec`, watch it, destroy it.

A domain is *transient*: it exists while its QEMU process runs and vanishes when the guest
powers off or is destroyed, leaving nothing defined behind. Its name is the handle; names
are chosen by the caller and carry the caller's prefix, so a reaper can find what a crashed
supervisor left (:meth:`Hypervisor.names`). Nothing here imports Ray or libvirt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

__all__ = ["Accel", "DomainSpec", "Hypervisor"]

Accel = Literal["kvm", "tcg"]
"""How the guest's CPU runs: hardware virtualisation (``kvm``) or QEMU's translator
(``tcg``, slower, works everywhere)."""


@dataclass(frozen=True)
class DomainSpec:
    """One VM: a directly booted kernel and initramfs, one raw disk (``vda``), an optional
    read-only root disk (``vdb``) and read-only data disk (``vdc``), no network device.

    ``console`` is the host file the guest's serial console is appended to; ``channels`` map
    virtio-serial port names (seen in the guest under ``/sys/class/virtio-ports/*/name``) to
    the host files their output is appended to; ``sockets`` map port names to Unix sockets
    the hypervisor listens on (the host connects to talk both ways, one client at a time).
    An ``autodestroy`` VM is destroyed when the connection of the process that started it
    closes (that process exits or is killed). Every path is absolute and readable by the
    hypervisor; the files need not exist yet.
    """

    name: str
    kernel: Path
    initrd: Path
    cmdline: str
    disk: Path
    console: Path
    channels: Mapping[str, Path] = field(default_factory=dict)
    vcpus: int = 1
    memory_mib: int = 256
    accel: Accel = "tcg"
    root_disk: Path | None = None
    data_disk: Path | None = None
    sockets: Mapping[str, Path] = field(default_factory=dict)
    autodestroy: bool = False


class Hypervisor(Protocol):
    """Starts, watches and destroys transient VMs on this node."""

    def version(self) -> str:
        """The hypervisor's name and versions (``"libvirt 9.0.0, QEMU 7.2.0"``).

        :raises VMUnavailable: the hypervisor cannot be reached; ``detail`` says how to start
            it.
        """
        ...

    def start(self, spec: DomainSpec) -> None:
        """Create and start the VM; it runs when this returns.

        :raises VMUnavailable: as :meth:`version`.
        :raises VMFailed: the hypervisor refused the domain or QEMU failed to start (its
            words in ``detail``); nothing of it is left running.
        """
        ...

    def running(self, name: str) -> bool:
        """Whether ``name`` still runs (``False`` once it powered off, crashed or was
        destroyed, and for a name that never ran).

        :raises VMUnavailable: as :meth:`version`.
        """
        ...

    def destroy(self, name: str) -> None:
        """Stop ``name`` at once (its QEMU process is killed); nothing when it is not running.
        Returns once the process is gone.

        :raises VMUnavailable: as :meth:`version`.
        :raises VMFailed: it could not be stopped.
        """
        ...

    def names(self, prefix: str) -> list[str]:
        """The names of running VMs that start with ``prefix``, sorted.

        :raises VMUnavailable: as :meth:`version`.
        """
        ...
