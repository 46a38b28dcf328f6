"""Sandboxes: run a command inside walls the kernel enforces (see ``docs/sandbox.md``).

:class:`Sandbox` is the seam (:mod:`ember.sandbox.protocol`); :class:`BubblewrapSandbox` the
runner on bubblewrap, seccomp, rlimits and cgroups; a :class:`SandboxSession`
(:class:`ExecutorSession`) keeps one sandbox for an agent run's commands.
"""

from __future__ import annotations

from ember.sandbox.binds import check_read_only_paths
from ember.sandbox.bubblewrap import BASE_ENV, BubblewrapSandbox
from ember.sandbox.cgroups import Cgroups, RunCgroup
from ember.sandbox.limits import check_limits, init_script
from ember.sandbox.protocol import (
    WORKDIR,
    CommandResult,
    KillReason,
    Sandbox,
    SandboxCapabilities,
    SandboxCommand,
    SandboxLimits,
    SandboxSession,
)
from ember.sandbox.rootfs import HOST_ETC, RootFs
from ember.sandbox.seccomp import REFUSED, build_filter
from ember.sandbox.session import ExecutorSession

__all__ = [
    "BASE_ENV",
    "HOST_ETC",
    "REFUSED",
    "WORKDIR",
    "BubblewrapSandbox",
    "Cgroups",
    "CommandResult",
    "ExecutorSession",
    "KillReason",
    "RootFs",
    "RunCgroup",
    "Sandbox",
    "SandboxCapabilities",
    "SandboxCommand",
    "SandboxLimits",
    "SandboxSession",
    "build_filter",
    "check_limits",
    "check_read_only_paths",
    "init_script",
]
