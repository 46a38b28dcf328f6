"""Throwaway VMs: a command run in a guest that shares no kernel with the host.

:mod:`ember.vm.protocol` is the seam (the :class:`~ember.vm.protocol.Hypervisor` a runner
drives); :mod:`ember.vm.libvirt_hypervisor` its one adapter, the only module that imports
libvirt; :mod:`ember.vm.image` builds the guest image (a Debian kernel and an initramfs with
busybox and ember's guest agent); :mod:`ember.vm.runner` runs one command in one VM, with its
limits and teardown; :mod:`ember.vm.lifecycle` records each VM's states;
:mod:`ember.vm.sandbox` is the VM tier of the sandbox Protocol, each of its VMs run by
:mod:`ember.vm.bridge`. Nothing here imports Ray or libvirt; the package itself imports
nothing, so that a bridge (a process per sandbox VM) starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Accel": "protocol",
    "DomainSpec": "protocol",
    "Hypervisor": "protocol",
    "GuestImage": "image",
    "GuestImageBuilder": "image",
    "fetch_packages": "image",
    "GuestLimits": "request",
    "SqlVMRecords": "lifecycle",
    "VMRecord": "lifecycle",
    "VMState": "lifecycle",
    "VMLimits": "runner",
    "VMResult": "runner",
    "VMRunner": "runner",
    "VMSandbox": "sandbox",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """The package's names, each imported from its module when first asked for."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
