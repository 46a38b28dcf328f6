"""Per-command cgroup (v1) limits: memory, pids and CPU bandwidth, where the machine allows.

:class:`Cgroups` finds, once, the v1 hierarchies of the ``memory``, ``pids`` and ``cpu``
controllers and the cgroup this process is in for each, and probes that a child can be made
there. Each command then gets a :class:`RunCgroup`: a child ``ember-sandbox-<id>`` of this
process's own cgroup in every usable controller (so the limits nest under whatever limits
ember itself runs with), with the limits written before any process joins, and removed once
it is empty. Controllers that are missing or read-only are left out and named in
:attr:`Cgroups.notes`; the runner falls back to rlimits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ember.sandbox.protocol import SandboxLimits

__all__ = ["CONTROLLERS", "PREFIX", "Cgroups", "RunCgroup"]

CONTROLLERS = ("memory", "pids", "cpu")
PREFIX = "ember-sandbox-"
STALE_S = 300.0
"""An empty ``ember-sandbox-*`` cgroup older than this was left by a launcher that was
killed outright; :meth:`Cgroups.sweep` removes it."""
OPTIONAL = frozenset({"memory.memsw.limit_in_bytes"})
"""Settings a kernel may lack (``memsw`` needs swap accounting); skipped where absent."""
CFS_PERIOD_US = 100_000
SANDBOX_OVERHEAD_PIDS = 2
"""bubblewrap's own two processes (its monitor and the namespace's init) share the pids
limit with the command."""


def _own_cgroups(proc: Path) -> dict[str, str]:
    """Controller -> this process's cgroup path in that v1 hierarchy."""
    found: dict[str, str] = {}
    for line in (proc / "self" / "cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(","):
            if name:
                found[name] = path
    return found


def _mounts(proc: Path) -> dict[str, tuple[Path, str]]:
    """Controller -> (mount point, root of the hierarchy seen there) of its v1 mount."""
    found: dict[str, tuple[Path, str]] = {}
    for line in (proc / "self" / "mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(tail) < 3 or tail[0] != "cgroup":
            continue
        for option in tail[2].split(","):
            if option in CONTROLLERS and option not in found:
                found[option] = (Path(fields[4].replace("\\040", " ")), fields[3])
    return found


@dataclass
class RunCgroup:
    """One command's cgroup in each usable controller."""

    dirs: Mapping[str, Path]
    removed: bool = field(default=False, init=False)

    @property
    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files a process writes its pid to, to join."""
        return [str(path / "cgroup.procs") for path in self.dirs.values()]

    def pids(self) -> set[int]:
        """Every process in the cgroup now."""
        found: set[int] = set()
        for path in self.dirs.values():
            try:
                found.update(int(pid) for pid in (path / "cgroup.procs").read_text().split())
            except OSError:
                continue
        return found

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer ended in it (0 without ``memory``)."""
        path = self.dirs.get("memory")
        if path is None:
            return 0
        try:
            control = (path / "memory.oom_control").read_text()
        except OSError:
            return 0
        for line in control.splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":  # kernels since 4.13
                return int(value)
        return 0

    def kill(self) -> bool:
        """SIGKILL every live process in it; whether any was there (a zombie is not: it
        waits for its parent, or the host's init, to reap it)."""
        live = [pid for pid in self.pids() if not _zombie(pid)]
        for pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return bool(live)

    async def empty(self, timeout_s: float = 10.0) -> bool:
        """Kill what is left until nothing is; whether it emptied within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self.kill():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def empty_sync(self, timeout_s: float = 10.0) -> bool:
        """:meth:`empty` for a caller without an event loop."""
        deadline = time.monotonic() + timeout_s
        while self.kill():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def remove(self, timeout_s: float = 3.0) -> None:
        """Remove its directories (they must be empty of processes); one still busy after
        ``timeout_s`` (a zombie its new parent has not reaped: an init that reaps slowly, as
        in some containers, takes about a second under load) is left to
        :meth:`Cgroups.sweep`. Idempotent."""
        deadline = time.monotonic() + timeout_s
        for path in self.dirs.values():
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY while the last task is being torn down
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.005)
        self.removed = True


class Cgroups:
    """The writable v1 controllers of this machine, and how to make a cgroup per command."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self.parents: dict[str, Path] = {}
        self.notes: list[str] = []
        try:
            own, mounts = _own_cgroups(proc), _mounts(proc)
        except OSError as exc:
            self.notes.append(f"cgroups unreadable ({exc}): rlimits only")
            return
        for name in CONTROLLERS:
            if name not in mounts:
                self.notes.append(f"no cgroup v1 '{name}' hierarchy: rlimits only for it")
                continue
            mount_point, mount_root = mounts[name]
            path = own.get(name, "/")
            relative = path[len(mount_root) :] if path.startswith(mount_root) else path
            parent = mount_point / relative.lstrip("/")
            if parent.is_dir() and self._writable(parent):
                self.parents[name] = parent
            else:
                self.notes.append(f"cgroup '{name}' at {parent} is not writable: rlimits only")

    @staticmethod
    def _writable(parent: Path) -> bool:
        probe = parent / f"{PREFIX}probe-{uuid.uuid4().hex[:8]}"
        try:
            probe.mkdir()
        except OSError:
            return False
        with contextlib.suppress(OSError):
            probe.rmdir()
        return True

    @property
    def controllers(self) -> frozenset[str]:
        return frozenset(self.parents)

    def create(self, limits: SandboxLimits) -> RunCgroup:
        """A new cgroup in every usable controller, with ``limits`` written.

        :raises OSError: a directory or limit could not be written (what was made is removed).
        """
        name = f"{PREFIX}{uuid.uuid4().hex[:16]}"
        made: dict[str, Path] = {}
        run = RunCgroup(made)
        try:
            for controller, parent in self.parents.items():
                path = parent / name
                path.mkdir()
                made[controller] = path
                for setting, value in _settings(controller, limits):
                    target = path / setting
                    if setting in OPTIONAL and not target.exists():
                        continue
                    target.write_text(value)
        except OSError:
            run.remove()
            raise
        return run

    def sweep(self) -> int:
        """Clean up after launchers that were killed outright; how many cgroups it removed.

        Removes empty ``ember-sandbox-*`` cgroups older than :data:`STALE_S`, and first kills
        what is left in one when every process there is an orphaned ``bwrap`` (its parent
        died during set-up, before bubblewrap 0.8 arms the parent-death signal, and it now
        waits forever for a parent that is gone); a cgroup with anything else in it is
        someone's running sandbox and is left alone.
        """
        removed = 0
        now = time.time()
        for parent in self.parents.values():
            try:
                children = [child for child in parent.iterdir() if child.name.startswith(PREFIX)]
            except OSError:
                continue
            for child in children:
                try:
                    run = RunCgroup({"": child})
                    pids = run.pids()
                    if pids and all(_orphaned_bwrap(pid) for pid in pids):
                        run.empty_sync(timeout_s=2.0)  # zombies stay: rmdir waits for them
                    elif pids or now - child.stat().st_mtime < STALE_S:
                        continue
                    child.rmdir()
                    removed += 1
                except OSError:
                    continue
        return removed


def _status(pid: int) -> dict[str, str] | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return {
        name: value.strip()
        for name, _, value in (line.partition(":") for line in status.splitlines())
    }


def _zombie(pid: int) -> bool:
    fields = _status(pid)
    return fields is None or fields.get("State", "").startswith(("Z", "X"))


def _orphaned_bwrap(pid: int) -> bool:
    """Gone, a zombie, or a ``bwrap`` whose parent died (it is now the host init's)."""
    fields = _status(pid)
    if fields is None or fields.get("State", "").startswith(("Z", "X")):
        return True
    return fields.get("Name") == "bwrap" and fields.get("PPid") == "1"


def _settings(controller: str, limits: SandboxLimits) -> list[tuple[str, str]]:
    if controller == "memory":
        settings = [("memory.limit_in_bytes", str(limits.memory_bytes))]
        # with swap accounting, the same cap on memory + swap: no escape into swap
        settings.append(("memory.memsw.limit_in_bytes", str(limits.memory_bytes)))
        return settings
    if controller == "pids":
        return [("pids.max", str(limits.processes + SANDBOX_OVERHEAD_PIDS))]
    if controller == "cpu":
        quota = max(1000, round(limits.cpus * CFS_PERIOD_US))
        return [("cpu.cfs_period_us", str(CFS_PERIOD_US)), ("cpu.cfs_quota_us", str(quota))]
    return []
