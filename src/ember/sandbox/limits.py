"""Turning :class:`~ember.sandbox.protocol.SandboxLimits` into what the kernel enforces.

The rlimits are set *inside* the sandbox, by the namespace's init (:func:`init_script`, a
POSIX ``sh`` script that bubblewrap execs as pid 1) with ``ulimit`` before it starts the
command: so they bind the command and all it starts, never bubblewrap itself, and
``RLIMIT_NPROC`` counts the sandbox user's processes in the sandbox's own user namespace
rather than every process of ember's user on the host. (The kernel exempts uid 0 from
``RLIMIT_NPROC``: when ember runs as root, the pids cgroup is what caps processes.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ember.errors import BadRequest
from ember.sandbox.protocol import SandboxLimits

__all__ = ["CPU_GRACE_S", "LIMITS_FAILED", "check_argv", "check_limits", "init_script", "rlimits"]

CPU_GRACE_S = 1
"""``SIGXCPU`` at ``cpu_s``; ``SIGKILL`` this much later for a process that ignores it."""
LIMITS_FAILED = "ember-sandbox: cannot set the limits"
"""What the init writes to stderr (then exits 125) when ``ulimit`` refuses a limit (one
above the hard limit ember itself runs under, say)."""


def check_limits(limits: SandboxLimits) -> None:
    """:raises BadRequest: a limit is not positive, or not finite."""
    for name in ("cpu_s", "memory_bytes", "file_size_bytes", "open_files", "processes"):
        value = getattr(limits, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise BadRequest(f"sandbox limit {name} must be a positive integer, not {value!r}")
    if not isinstance(limits.output_bytes, int) or limits.output_bytes < 0:
        raise BadRequest(f"sandbox limit output_bytes must be >= 0, not {limits.output_bytes!r}")
    for name in ("wall_s", "cpus"):
        value = getattr(limits, name)
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise BadRequest(f"sandbox limit {name} must be a positive number, not {value!r}")


def check_argv(argv: Sequence[str]) -> tuple[str, ...]:
    """``argv`` as a tuple.

    :raises BadRequest: it is empty, not a list of strings, holds a NUL byte, or its first
        item is empty.
    """
    if isinstance(argv, str | bytes) or not argv:
        raise BadRequest("argv must be a non-empty list of strings")
    items = tuple(argv)
    if not all(isinstance(item, str) and "\0" not in item for item in items) or not items[0]:
        raise BadRequest("argv must hold strings without NUL bytes, the first not empty")
    return items


def init_script(limits: SandboxLimits, *, address_space: bool) -> str:
    """The sandbox's pid 1: set the rlimits, start ``"$@"`` with the init's stdin, reap
    whatever is orphaned to it, exit with the command's status (``128 + N`` for signal N).

    ``file_size_bytes`` is rounded down to ``ulimit``'s 512-byte blocks (at least one).
    ``address_space``: also cap each process's address space at ``memory_bytes`` (the
    fallback when no memory cgroup holds the total; it breaks runtimes that reserve large
    address ranges up front, so it is not set when the cgroup is there).
    """
    steps = [
        f"ulimit -S -t {limits.cpu_s}",  # soft first: a hard limit under the soft one fails
        f"ulimit -H -t {limits.cpu_s + CPU_GRACE_S}",
        f"ulimit -f {max(1, limits.file_size_bytes // 512)}",
        f"ulimit -n {limits.open_files}",
        # RLIMIT_NPROC is -p in dash, -u in bash
        f"{{ ulimit -u {limits.processes} 2>/dev/null || ulimit -p {limits.processes}; }}",
        "ulimit -c 0",
    ]
    if address_space:
        steps.append(f"ulimit -v {max(1, limits.memory_bytes // 1024)}")
    return (
        " && ".join(steps)
        + f' || {{ echo "{LIMITS_FAILED}" >&2; exit 125; }}\n'
        + 'exec 3<&0; "$@" <&3 3<&- & wait $!\n'
    )


def rlimits(limits: SandboxLimits, *, address_space: bool) -> list[tuple[str, int, int]]:
    """The rlimits :func:`init_script` sets, as ``(name, soft, hard)`` (``name`` as in
    ``resource.RLIMIT_<name>``, in bytes where ``ulimit`` counts blocks or KiB): what a
    session's executor sets in each command it starts (:mod:`ember.sandbox._executor`)."""
    file_size = max(1, limits.file_size_bytes // 512) * 512
    found = [
        ("CPU", limits.cpu_s, limits.cpu_s + CPU_GRACE_S),
        ("FSIZE", file_size, file_size),
        ("NOFILE", limits.open_files, limits.open_files),
        ("NPROC", limits.processes, limits.processes),
        ("CORE", 0, 0),
    ]
    if address_space:
        memory = max(1, limits.memory_bytes // 1024) * 1024
        found.append(("AS", memory, memory))
    return found
