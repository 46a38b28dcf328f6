"""Running one bubblewrap process tree to its end, and reading how it ended.

bubblewrap (with ``--unshare-pid --as-pid-1``) runs as its monitor, our child, whose child
is the new pid namespace's init (ember's small ``sh`` init, which starts the command).
``--json-status-fd`` reports the init's host pid as soon as it exists and, only if the init
really ran, its exit status. Killing that init kills every process of the namespace (the
kernel does it: nothing can hide or outlive it), and the monitor exits only after the init,
and so the whole tree, is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ember.errors import SandboxFailed, SandboxUnavailable
from ember.sandbox._pipes import OutputCapture, StatusPipe, feed
from ember.sandbox.cgroups import RunCgroup
from ember.sandbox.limits import LIMITS_FAILED
from ember.sandbox.protocol import CommandResult, KillReason, SandboxLimits

__all__ = [
    "JOIN_FAILED",
    "Launch",
    "bwrap_message",
    "decode_status",
    "end",
    "finished",
    "open_init",
    "result",
    "shielded",
    "stderr_text",
    "supervise",
]

T = TypeVar("T")
MAX_SIGNAL = 64
KILL_WAIT_S = 10.0
SETUP_WAIT_S = 2.0
"""How long :func:`end` waits for bubblewrap to report its child's pid before it kills
bubblewrap itself (which, during set-up, can leave that child behind)."""
JOIN_FAILED = 125
"""What the cgroup-joining ``sh`` exits with when it cannot join."""


@dataclass
class Launch:
    """One command's argv and the descriptors it inherits."""

    argv: list[str]
    pass_fds: tuple[int, ...]
    status: StatusPipe
    cgroup: RunCgroup | None
    child_fds: list[int] = field(default_factory=list)

    def close_child_fds(self) -> None:
        for fd in self.child_fds:
            os.close(fd)
        self.child_fds.clear()
        self.status.close_write_end()

    def close(self) -> None:
        self.close_child_fds()
        self.status.close()


async def supervise(
    proc: asyncio.subprocess.Process,
    launch: Launch,
    limits: SandboxLimits,
    stdin: bytes | None,
    started: float,
) -> CommandResult:
    out, err = OutputCapture(limits.output_bytes), OutputCapture(limits.output_bytes)
    feeder = asyncio.ensure_future(feed(proc.stdin, stdin or b""))
    work = {
        asyncio.ensure_future(proc.wait()),
        asyncio.ensure_future(out.drain(proc.stdout)),
        asyncio.ensure_future(err.drain(proc.stderr)),
    }
    killed: KillReason | None = None
    try:
        _, pending = await asyncio.wait(work, timeout=limits.wall_s)
        if pending:
            killed = "timeout"
            await end(proc, launch)
            _, pending = await asyncio.wait(pending, timeout=KILL_WAIT_S)
            for task in pending:
                task.cancel()
    except BaseException:
        await shielded(end(proc, launch))
        for task in (*work, feeder):
            task.cancel()
        raise
    finally:
        feeder.cancel()
    duration = time.monotonic() - started
    return result(proc, launch, out, err, killed, duration)


async def end(proc: asyncio.subprocess.Process, launch: Launch) -> None:
    """Kill the whole tree and return once none of it is left."""
    status = launch.status
    status.poll()
    deadline = time.monotonic() + SETUP_WAIT_S
    while status.child_pid is None and proc.returncode is None:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.002)  # bubblewrap reports its child's pid right after clone
        status.poll()
    init = open_init(status.child_pid, monitor_pid=proc.pid)
    if init is not None:
        await kill_init(init)  # the kernel ends the namespace; the monitor then exits
    elif proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()  # still setting up (or gone): --die-with-parent ends the init
    if not await _exited(proc, KILL_WAIT_S):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await _exited(proc, KILL_WAIT_S)
    if init is None:
        status.poll()
        orphan = open_init(status.child_pid, namespace=status.pid_namespace)
        if orphan is not None:
            await kill_init(orphan)
    if launch.cgroup is not None:
        await launch.cgroup.empty()


async def _exited(proc: asyncio.subprocess.Process, timeout_s: float) -> bool:
    """Whether ``proc`` exited within ``timeout_s``. Not ``proc.wait()``: that also waits
    until every holder of its pipes has closed them."""
    deadline = time.monotonic() + timeout_s
    while proc.returncode is None:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.002)
    return True


def result(
    proc: asyncio.subprocess.Process,
    launch: Launch,
    out: OutputCapture,
    err: OutputCapture,
    killed: KillReason | None,
    duration: float,
) -> CommandResult:
    launch.status.poll()
    reported = launch.status.exit_code
    oom = launch.cgroup.oom_kills() if launch.cgroup is not None else 0
    if killed is None and reported is None and not oom:
        if launch.cgroup is not None and proc.returncode == JOIN_FAILED:
            raise SandboxFailed("could not move the command into its cgroup")
        message = bwrap_message(err.value())
        if not message and proc.returncode in (126, 127):  # sh could not exec bubblewrap
            detail = err.value().decode(errors="replace").strip()[:500]
            raise SandboxUnavailable(f"could not start bubblewrap: {detail}")
        raise SandboxFailed(
            message or f"bubblewrap exited with {proc.returncode} before the command ran"
        )
    if reported == 125 and err.value().startswith(LIMITS_FAILED.encode()):
        raise SandboxFailed(f"the limits could not be set: {stderr_text(err.value())}")
    exit_code, signum = decode_status(reported if reported is not None else proc.returncode)
    if killed is None:
        if oom:
            killed = "memory"
        elif signum == signal.SIGXCPU:
            killed = "cpu"
        elif signum == signal.SIGXFSZ:
            killed = "file_size"
    return CommandResult(
        exit_code=exit_code,
        stdout=out.value(),
        stderr=err.value(),
        duration_s=duration,
        signal=signum,
        killed=killed,
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
    )


def decode_status(code: int | None) -> tuple[int | None, int | None]:
    """``(exit_code, signal)`` from a status where ``128 + N`` (or ``-N``) means signal N."""
    if code is None:
        return None, None
    if code < 0:
        return None, -code
    if 128 < code <= 128 + MAX_SIGNAL:
        return None, code - 128
    return code, None


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def _pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def open_init(
    init_pid: int | None, *, monitor_pid: int | None = None, namespace: int | None = None
) -> int | None:
    """A pidfd of the namespace init ``init_pid`` if it still is the process we mean: a child
    of ``monitor_pid``, or (once orphaned) the init of pid namespace ``namespace``. Checking
    after the pidfd is open means a recycled pid is never signalled."""
    if init_pid is None:
        return None
    try:
        pidfd = os.pidfd_open(init_pid)
    except OSError:
        return None
    if monitor_pid is not None and _parent_of(init_pid) == monitor_pid:
        return pidfd
    if namespace is not None and _pid_namespace(init_pid) == f"pid:[{namespace}]":
        return pidfd
    os.close(pidfd)
    return None


def exited(pidfd: int) -> bool:
    """Whether the process behind ``pidfd`` has exited (a pidfd polls readable then). An
    exited namespace init has taken every other process of its namespace with it."""
    return bool(select.select([pidfd], [], [], 0)[0])


async def kill_init(pidfd: int, timeout_s: float = 10.0) -> bool:
    """SIGKILL the init behind ``pidfd`` and wait until it (so its namespace) is gone;
    whether that happened within ``timeout_s``. Closes ``pidfd``."""
    try:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        deadline = time.monotonic() + timeout_s
        while not exited(pidfd):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True
    finally:
        os.close(pidfd)


async def shielded(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end even if the awaiting task is cancelled meanwhile (the
    cancellation is re-raised once ``work`` is done)."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            cancelled = True
    if cancelled:
        task.result()
        raise asyncio.CancelledError
    return task.result()


async def finished(work: Coroutine[Any, Any, T]) -> tuple[T, bool]:
    """``work``'s result, run to its end even if the awaiting task is cancelled meanwhile,
    and whether it was (the caller cleans up, then raises ``CancelledError``).

    For ``asyncio.create_subprocess_exec``: cancelled before its pipes are connected, its
    own clean-up waits forever (Python 3.11), and the process it started is lost to us.
    """
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    return task.result(), cancelled


def stderr_text(stderr: bytes) -> str:
    """The start of ``stderr``, on one line."""
    return stderr.decode(errors="replace").strip().replace("\n", "; ")[:500]


def bwrap_message(stderr: bytes) -> str:
    """bubblewrap's own complaint, from the start of what it wrote to stderr."""
    lines = stderr.decode(errors="replace").splitlines()
    found = [line for line in lines[:20] if line.startswith("bwrap: ")]
    return "; ".join(found)[:500]
