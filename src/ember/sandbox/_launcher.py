"""The launcher behind :class:`~ember.sandbox.protocol.SandboxCommand`.

Run as ``python -I -S _launcher.py SPEC`` by whoever spawns a long-lived sandboxed command
(the ``mcp`` SDK's ``stdio_client``, say); imports only the standard library, so it starts in
a few tens of milliseconds and needs nothing of ember's environment. ``SPEC`` is a JSON file
written by :meth:`~ember.sandbox.bubblewrap.BubblewrapSandbox.command` (read, then deleted):
bubblewrap's path and options, the filter's path, the command (the init script first), the
command's cgroups (already made, limits written), the ``sh`` script that joins them, the
wall-clock limit, and bubblewrap's environment.

It starts the command with its own stdin, stdout and stderr, and waits. On ``SIGTERM``,
``SIGINT`` or ``SIGHUP``, when ``wall_s`` runs out, or when its parent dies, it kills the
sandbox's namespace init (so the kernel ends every process of the sandbox), waits until they
are gone, removes the cgroups and exits ``128 + signal``; otherwise it exits with the
command's status (``128 + N`` for a command killed by signal ``N``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

ARGS_FD, SECCOMP_FD, STATUS_FD = 100, 101, 102
PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
DRAIN_S = 10.0


def _die_with_parent() -> bool:
    """Get SIGTERM when the process that started us dies; whether it is still alive."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent


def _child_pid(status_fd: int) -> tuple[int | None, int | None]:
    """The namespace init's pid and pid namespace from bubblewrap's status pipe, if written."""
    data = b""
    while True:
        try:
            chunk = os.read(status_fd, 4096)
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        data += chunk
    for line in data.splitlines():
        with contextlib.suppress(ValueError):
            document = json.loads(line)
            if isinstance(document, dict) and "child-pid" in document:
                return int(document["child-pid"]), int(document.get("pid-namespace", 0))
    return None, None


class _Tree:
    """The running sandbox: bubblewrap's monitor (our child) and its namespace init."""

    def __init__(self, child: subprocess.Popen[bytes], status_fd: int) -> None:
        self.child = child
        self.status_fd = status_fd
        self.init: int | None = None
        self.namespace: int | None = None

    def kill(self) -> None:
        """SIGKILL the namespace init (the kernel then ends the namespace); before it
        exists, the monitor (``--die-with-parent`` takes the init along)."""
        if self.init is None:
            self.init, self.namespace = _child_pid(self.status_fd)
        pidfd = _open(self.init, self.child.pid, self.namespace)
        if pidfd is not None:
            try:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                select.select([pidfd], [], [], DRAIN_S)
            finally:
                os.close(pidfd)
        with contextlib.suppress(OSError):
            os.kill(self.child.pid, signal.SIGKILL)


def _open(pid: int | None, parent: int, namespace: int | None) -> int | None:
    if pid is None:
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if int(stat.rpartition(")")[2].split()[1]) == parent:
            return pidfd
        if namespace and os.readlink(f"/proc/{pid}/ns/pid") == f"pid:[{namespace}]":
            return pidfd
    except (OSError, ValueError, IndexError):
        pass
    os.close(pidfd)
    return None


def _empty_and_remove(cgroups: list[Path]) -> None:
    deadline = time.monotonic() + DRAIN_S
    for path in cgroups:
        while time.monotonic() < deadline:
            try:
                pids = [int(pid) for pid in (path / "cgroup.procs").read_text().split()]
            except OSError:
                break
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)
        for _ in range(20):
            try:
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.005)


def _fd_from(fd: int, target: int) -> None:
    os.dup2(fd, target, inheritable=True)
    os.close(fd)


def main(argv: list[str]) -> int:
    spec_path = Path(argv[1])
    spec: dict[str, Any] = json.loads(spec_path.read_text())
    spec_path.unlink(missing_ok=True)
    cgroups = [Path(path) for path in spec["cgroups"]]
    stopped: list[int] = []
    tree: _Tree | None = None

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped.append(signum)
        if tree is not None:
            tree.kill()

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    if not _die_with_parent():
        stopped.append(signal.SIGTERM)

    args = os.memfd_create("ember-sandbox-args", 0)
    os.write(args, b"".join(arg.encode() + b"\0" for arg in spec["args"]))
    os.lseek(args, 0, os.SEEK_SET)
    _fd_from(args, ARGS_FD)
    _fd_from(os.open(spec["seccomp"], os.O_RDONLY), SECCOMP_FD)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(status_r, False)
    _fd_from(status_w, STATUS_FD)
    command = [spec["bwrap"], "--args", str(ARGS_FD), "--seccomp", str(SECCOMP_FD)]
    command += ["--json-status-fd", str(STATUS_FD), "--", *spec["argv"]]
    if cgroups:
        procs = [str(path / "cgroup.procs") for path in cgroups]
        command = ["/bin/sh", "-c", spec["join"], "ember-sandbox", *procs, "--", *command]
    code = 0
    try:
        if stopped:
            return 128 + stopped[0]
        try:
            child = subprocess.Popen(
                command, pass_fds=(ARGS_FD, SECCOMP_FD, STATUS_FD), env=spec["env"]
            )
        except OSError as exc:
            print(f"ember-sandbox: could not start bubblewrap: {exc}", file=sys.stderr)
            return 126
        finally:
            for fd in (ARGS_FD, SECCOMP_FD, STATUS_FD):
                os.close(fd)
        tree = _Tree(child, status_r)
        if stopped:
            tree.kill()
        deadline = time.monotonic() + float(spec["wall_s"])
        while True:
            try:
                code = child.wait(timeout=max(0.0, deadline - time.monotonic()))
                break
            except subprocess.TimeoutExpired:
                stopped.append(signal.SIGKILL)
                tree.kill()
        if stopped:
            return 128 + stopped[0]
        return 128 - code if code < 0 else code
    finally:
        _empty_and_remove(cgroups)
        os.close(status_r)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
