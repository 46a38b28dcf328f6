"""Throwaway VMs: a command run in a guest that shares no kernel with the host.

:mod:`ember.vm.protocol` is the seam (the :class:`~ember.vm.protocol.Hypervisor` a runner
drives); :mod:`ember.vm.libvirt_hypervisor` its one adapter, the only module that imports
libvirt; :mod:`ember.vm.image` builds the guest image (a Debian kernel and an initramfs with
busybox and ember's guest agent); :mod:`ember.vm.runner` runs one command in one VM, with its
limits and teardown; :mod:`ember.vm.lifecycle` records each VM's states. Nothing here
imports Ray, and nothing imported here imports libvirt.
"""

from ember.vm.image import GuestImage, GuestImageBuilder, fetch_packages
from ember.vm.lifecycle import SqlVMRecords, VMRecord, VMState
from ember.vm.protocol import Accel, DomainSpec, Hypervisor
from ember.vm.request import GuestLimits
from ember.vm.runner import VMLimits, VMResult, VMRunner

__all__ = [
    "Accel",
    "DomainSpec",
    "GuestImage",
    "GuestImageBuilder",
    "GuestLimits",
    "Hypervisor",
    "SqlVMRecords",
    "VMLimits",
    "VMRecord",
    "VMResult",
    "VMRunner",
    "VMState",
    "fetch_packages",
]
