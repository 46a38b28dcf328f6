"""The VM sandbox tier: the :class:`~ember.sandbox.protocol.Sandbox` Protocol on throwaway VMs.

An agent profile with ``isolation: vm`` runs its commands here instead of in bubblewrap: a
command gets a kernel of its own, not just namespaces of the host's. Each sandbox is one VM
(:mod:`ember.vm.bridge`, a host process that boots it and relays its stdio), and inside it
the same walls as bubblewrap's, put up by the guest (:mod:`ember.vm.guest.walls`): an
unprivileged user, no capabilities, no new privileges, ember's seccomp filter, new pid and
mount namespaces, a read-only root with only ``/workspace``, a private ``/tmp`` and
``/dev/shm`` writable, the read-only paths bound at their own paths (from a read-only data
disk), a minimal environment, the rlimits; and no network device at all.

- A **session** is one VM whose guest runs the session executor of
  :mod:`ember.sandbox._executor`, driven by :class:`~ember.sandbox.session.ExecutorSession`
  as bubblewrap's is. Before each command the workspace is copied into the VM when the host's
  copy changed since the last command (an agent's file tools write it between commands), and
  after each command the VM's workspace is copied back (a tar, read on the host with
  :func:`_unpack`: regular files and directories only, within the workspace).
- A **one-shot run** is a session of one command.
- A **long-lived command** (:meth:`VMSandbox.command`) is a bridge whose guest runs the
  command itself, its stdio streamed both ways; its workspace is copied in when it starts
  and back when it exits by itself (not when it is stopped).

What differs from bubblewrap: ``memory_bytes`` is an address-space rlimit per process inside
a VM of ``memory_bytes`` plus :data:`GUEST_OVERHEAD_MIB`, so an out-of-memory kill reads as
``SIGKILL``, not ``killed="memory"``; ``cpus`` is rounded up to whole vCPUs; every sandbox
boots a VM first (seconds under TCG).

Spans (``ember.sandbox.tier: vm``): opening a session is ``vm sandbox open`` (its boot, with
``ember.vm.vcpus``, ``ember.vm.memory_mib`` and ``ember.vm.accel``), each command ``sandbox
command`` (the workspace copies included), a one-shot run ``sandbox run`` around both.
Metrics (``tier: vm``): each VM of a session (or of a one-shot run) counts as started once its
executor is ready, with its boot time, and each command a limit ended as killed, as
:mod:`ember.sandbox.session` records them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import json
import math
import os
import shutil
import signal
import socket
import sys
import tarfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from opentelemetry.trace import NoOpTracer, Tracer

from ember.errors import BadRequest, EmberError, SandboxFailed, SandboxUnavailable
from ember.observability.metrics import Metrics
from ember.observability.tracing import span
from ember.sandbox._pipes import StatusPipe
from ember.sandbox._process import Launch, shielded
from ember.sandbox._spans import command_attributes, record_result
from ember.sandbox.binds import check_read_only_paths, ember_homes
from ember.sandbox.bubblewrap import Request, check_request
from ember.sandbox.limits import rlimits
from ember.sandbox.protocol import (
    CommandResult,
    SandboxCapabilities,
    SandboxCommand,
    SandboxLimits,
)
from ember.sandbox.session import MIN_OPEN_FILES, ExecutorSession, executor_argv
from ember.vm.bridge import CONFIG_PREFIX, PREFIX
from ember.vm.disk import replace_contents
from ember.vm.image import GuestImage
from ember.vm.protocol import Accel, Hypervisor

__all__ = ["GUEST_OVERHEAD_MIB", "GuestProcess", "VMSandbox", "VMSession"]

GUEST_OVERHEAD_MIB = 128
"""What a sandbox VM gets beyond ``memory_bytes``: the guest kernel, its agent and the
session executor."""
ENFORCED = frozenset(
    {"wall_s", "cpu_s", "memory_bytes", "file_size_bytes", "open_files", "processes",
     "output_bytes", "cpus", "seccomp", "network"}
)  # fmt: skip
SYNC_WALL_S = 120.0
STOP_WAIT_S = 20.0
BRIDGE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
"""The bridge's own environment: nothing of ember's (the guest gets only the request's)."""
_GRACE = (
    "import resource\n"
    "_, hard = resource.getrlimit(resource.RLIMIT_CPU)\n"
    "resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))\n"
)
"""The copy helpers start by raising their soft CPU limit to the hard one (the command's
``cpu_s`` and its grace): a session with a small ``cpu_s`` still copies its workspace, as a
loaded TCG guest counts wall time it spent descheduled as CPU time."""
_PULL = _GRACE + (
    "import os, sys, tarfile\n"
    "with tarfile.open(fileobj=sys.stdout.buffer, mode='w|') as tar:\n"
    "    for name in sorted(os.listdir('.')):\n"
    "        tar.add(name)\n"
)
_PUSH = _GRACE + (
    "import os, shutil, sys, tarfile\n"
    "for name in os.listdir('.'):\n"
    "    if os.path.isdir(name) and not os.path.islink(name): shutil.rmtree(name)\n"
    "    else: os.unlink(name)\n"
    "with tarfile.open(fileobj=sys.stdin.buffer, mode='r|') as tar:\n"
    "    tar.extractall('.')\n"
)


@dataclass(frozen=True)
class GuestProcess:
    """A process inside a running sandbox VM: the VM's directory name, its pid in the guest
    and its command line (arguments joined by spaces)."""

    vm: str
    pid: int
    cmdline: str


def _fingerprint(workspace: Path) -> tuple[tuple[str, int, int, int], ...]:
    """What changes when any file of ``workspace`` does: each entry's path, mode, size and
    modification time."""
    found = []
    for directory, dirs, files in os.walk(workspace):
        for name in (*dirs, *files):
            path = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                info = os.lstat(path)
                found.append((path, info.st_mode, info.st_size, info.st_mtime_ns))
    return tuple(sorted(found))


def _pack(workspace: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in sorted(os.listdir(workspace)):
            tar.add(workspace / name, arcname=name)
    return buffer.getvalue()


def _unpack(data: bytes, workspace: Path, scratch: Path) -> list[str]:
    """Replace ``workspace``'s files with the regular files and directories of the tar
    ``data`` (from a guest: anything else, and any name that would leave the workspace, is
    left out); the names left out.

    :raises SandboxFailed: ``data`` is not a tar.
    """
    skipped = []
    scratch.mkdir()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            members = []
            for member in tar.getmembers():
                parts = member.name.split("/")
                bad = member.name.startswith("/") or ".." in parts or "\0" in member.name
                if bad or not (member.isfile() or member.isdir()):
                    skipped.append(member.name)
                    continue
                members.append(member)
            tar.extractall(scratch, members=members, filter="data")
    except (tarfile.TarError, OSError) as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise SandboxFailed(f"the VM's workspace could not be read back: {exc}") from exc
    replace_contents(workspace, scratch)
    scratch.rmdir()
    return skipped


async def _end_bridge(proc: asyncio.subprocess.Process, launch: Launch) -> None:
    """Ask a bridge to end (it destroys its VM and removes its directory), then wait for it;
    killed after :data:`STOP_WAIT_S` (libvirt then destroys the VM). Its config file goes
    too, if it never read it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), STOP_WAIT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    finally:
        Path(launch.argv[-1]).unlink(missing_ok=True)


class VMSession(ExecutorSession):
    """A session in one sandbox VM: an :class:`~ember.sandbox.session.ExecutorSession` whose
    commands see the host's workspace as it is when they start, and leave theirs on the host
    when they end (see the module)."""

    def __init__(
        self,
        launch: Callable[[], Awaitable[Launch]],
        limits: SandboxLimits,
        workspace: Path,
        disk_bytes: int,
        start_timeout_s: float,
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(
            launch,
            limits,
            BRIDGE_ENV,
            ender=_end_bridge,
            max_blob=disk_bytes,
            start_timeout_s=start_timeout_s,
            tracer=tracer,
            tier="vm",
            metrics=metrics,
        )
        self._workspace = workspace
        self._disk_bytes = disk_bytes
        self._turn = asyncio.Lock()
        self._booted_with: tuple[tuple[str, int, int, int], ...] | None = None
        self._synced: tuple[tuple[str, int, int, int], ...] | None = None
        self.skipped: list[str] = []
        """Names the last copy back left out (links, devices, names outside)."""

    def booted(self) -> None:
        """The launch is making a VM from the workspace as it is now."""
        self._booted_with = _fingerprint(self._workspace)

    async def _run(
        self, argv: tuple[str, ...], stdin: bytes | None, wall_s: float
    ) -> CommandResult:
        async with self._turn:
            await self._push()
            result = await super()._run(argv, stdin, wall_s)
            await self._pull()
            return result

    async def _helper(self, code: str, stdin: bytes | None) -> CommandResult:
        argv = ("python3", "-I", "-S", "-c", code)
        result = await self.execute(argv, stdin, SYNC_WALL_S, self._disk_bytes)
        if not result.ok or result.stdout_truncated:
            why = result.stderr.decode(errors="replace").strip()[-300:] or (
                "more than the VM's disk holds" if result.stdout_truncated else result.killed
            )
            raise SandboxFailed(f"the workspace could not be copied to or from the VM: {why}")
        return result

    async def _push(self) -> None:
        now = await asyncio.to_thread(_fingerprint, self._workspace)
        if self._live is None or not self._live.alive:
            return  # the next VM is made from the workspace as it is then
        if now in (self._synced, self._booted_with):
            return
        await self._helper(_PUSH, await asyncio.to_thread(_pack, self._workspace))
        self._synced = now

    async def _pull(self) -> None:
        result = await self._helper(_PULL, None)
        scratch = self._workspace.parent / f".ember-pull-{uuid.uuid4().hex[:8]}"
        self.skipped = await asyncio.to_thread(_unpack, result.stdout, self._workspace, scratch)
        self._synced = await asyncio.to_thread(_fingerprint, self._workspace)
        self._booted_with = None


class VMSandbox:
    """Runs commands in throwaway VMs behind the same walls as bubblewrap (see the module).

    ``hypervisor`` and ``image`` are the VM tier's (:class:`~ember.vm.runner.VMRunner`'s);
    ``uri`` is the hypervisor's (the bridge opens its own connection); ``accel`` says which
    acceleration VMs get (:meth:`~ember.vm.runner.VMRunner.accel`, a test boot the first
    time) and ``known_accel`` whether that is known without one (long-lived commands, which
    are made synchronously, run under TCG until it is); ``work_root`` holds each
    VM's directory (``sbx-*``); ``name_prefix`` starts every VM's name; ``disk_mib`` is the
    smallest workspace disk (a larger workspace gets room for itself plus a quarter);
    ``protected_paths`` are paths no ``read_only_paths`` may be, lie under or contain, besides
    ember's homes, the work root, the image and the workspace; ``tracer`` makes the spans of
    runs, session opens and commands; ``metrics`` records the VMs' starts and kills.
    """

    def __init__(
        self,
        hypervisor: Hypervisor,
        image: Callable[[], GuestImage],
        *,
        uri: str,
        image_dir: Path,
        work_root: Path,
        accel: Callable[[], Awaitable[Accel]],
        known_accel: Callable[[], Accel | None],
        name_prefix: str = "ember-sbx-",
        disk_mib: int = 64,
        boot_timeout_s: float = 60.0,
        protected_paths: Sequence[Path] = (),
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._hypervisor = hypervisor
        self._tracer = tracer or NoOpTracer()
        self._metrics = metrics
        self._image = image
        self._uri = uri
        self._image_dir = image_dir
        self._root = work_root
        self._accel = accel
        self._known_accel = known_accel
        self._prefix = name_prefix
        self._min_disk_mib = disk_mib
        self._boot_timeout_s = boot_timeout_s
        self._protected = tuple(Path(path) for path in protected_paths)
        self._checked: SandboxCapabilities | None = None

    # -- readiness ------------------------------------------------------------------------

    def check(self) -> None:
        if self._checked is not None:
            return
        try:
            version = self._hypervisor.version()
            image = self._image()
        except EmberError as exc:
            raise SandboxUnavailable(f"VM sandboxes cannot run here: {exc.detail}") from exc
        if image.root is None:
            raise SandboxUnavailable(
                f"the guest image {image.directory} has no root disk (Python and a shell for "
                "the commands): rebuild it with `ember vm image build`"
            )
        self._seccomp()
        self._checked = SandboxCapabilities(
            runner=f"vm ({version}; kernel {image.manifest.get('kernel_release', '?')})",
            enforced=ENFORCED,
            notes=(
                "memory_bytes is an address-space limit per process inside a VM of "
                f"memory_bytes + {GUEST_OVERHEAD_MIB} MiB: an out-of-memory kill reads as "
                "SIGKILL, not killed='memory'",
                "cpus is rounded up to whole vCPUs",
            ),
        )
        self._sweep()

    def capabilities(self) -> SandboxCapabilities:
        self.check()
        assert self._checked is not None
        return self._checked

    @functools.cache  # noqa: B019 - one filter per sandbox object, built once
    def _seccomp(self) -> bytes:
        from ember.sandbox.seccomp import build_filter

        return build_filter()

    def _sweep(self) -> None:
        """Remove sandbox VM directories no running VM has (a bridge killed outright)."""
        if not self._root.is_dir():
            return
        running = set(self._hypervisor.names(self._prefix))
        cutoff = time.time() - self._boot_timeout_s
        for entry in self._root.glob(f"{PREFIX}*"):
            name = self._prefix + entry.name
            with contextlib.suppress(OSError):
                if name not in running and entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
        for entry in self._root.glob(f"{CONFIG_PREFIX}*.json"):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < time.time() - 86400:
                    entry.unlink()

    # -- what runs --------------------------------------------------------------------------

    def _request(
        self,
        argv: Sequence[str] | None,
        workspace: Path,
        limits: SandboxLimits,
        env: Mapping[str, str] | None,
        read_only_paths: Sequence[str],
    ) -> Request:
        request = check_request(argv, workspace, limits, env, read_only_paths)
        if request.read_only:
            protected = [
                *ember_homes(),
                *self._protected,
                self._root,
                self._image_dir,
                request.workspace,
            ]
            check_read_only_paths(request.read_only, protected)
        return request

    def _disk_mib(self, workspace: Path) -> int:
        used = sum(
            os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(workspace) for f in fs
        )
        return max(self._min_disk_mib, math.ceil(used * 1.25 / (1024 * 1024)) + 16)

    def _config(
        self,
        request: Request,
        limits: SandboxLimits,
        argv: Sequence[str],
        accel: Accel,
        *,
        command_rlimits: bool,
        wall_s: float | None,
        write_back: bool,
    ) -> dict[str, object]:
        vcpus, memory_mib = _shape(limits)
        values = rlimits(limits, address_space=True) if command_rlimits else []
        return {
            "uri": self._uri,
            "image": str(self._image_dir),
            "work_root": str(self._root),
            "name_prefix": self._prefix,
            "accel": accel,
            "vcpus": vcpus,
            "memory_mib": memory_mib,
            "disk_mib": self._disk_mib(request.workspace),
            "workspace": str(request.workspace),
            "argv": list(argv),
            "env": request.env,
            "seccomp": base64.b64encode(self._seccomp()).decode(),
            "rlimits": [list(item) for item in values],
            "read_only_paths": list(request.read_only),
            "tmp_bytes": limits.memory_bytes // 2,
            "wall_s": wall_s,
            "write_back": write_back,
            "boot_timeout_s": self._boot_timeout_s,
            "executor": not command_rlimits,
        }

    def _bridge_argv(self, config: Mapping[str, object]) -> tuple[str, ...]:
        """The bridge's argv, its config in a file of its own (0600, under the work root;
        the bridge removes it once read, a sweep when it never ran)."""
        self._root.mkdir(parents=True, exist_ok=True)
        path = self._root / f"{CONFIG_PREFIX}{uuid.uuid4().hex}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(config, out)
        python = sys.executable or shutil.which("python3") or "/usr/bin/python3"
        return (python, "-m", "ember.vm.bridge", str(path))

    # -- the Sandbox Protocol ---------------------------------------------------------------

    async def run(
        self,
        argv: Sequence[str],
        workspace: Path,
        limits: SandboxLimits,
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        read_only_paths: Sequence[str] = (),
    ) -> CommandResult:
        attributes = command_attributes("vm", limits.wall_s)
        with span(self._tracer, "sandbox run", attributes=attributes) as current:
            self._request(argv, workspace, limits, env, read_only_paths)
            async with self.session(
                workspace, limits, env=env, read_only_paths=read_only_paths
            ) as session:
                result = await session.run(argv, stdin=stdin)
            record_result(current, result)
            return result

    @contextlib.asynccontextmanager
    async def session(
        self,
        workspace: Path,
        limits: SandboxLimits,
        *,
        env: Mapping[str, str] | None = None,
        read_only_paths: Sequence[str] = (),
    ) -> AsyncIterator[VMSession]:
        request = self._request(None, workspace, limits, env, read_only_paths)
        if limits.open_files < MIN_OPEN_FILES:
            raise BadRequest(f"a sandbox session needs open_files >= {MIN_OPEN_FILES}")
        walls = replace(limits, processes=limits.processes + 1)
        disk_bytes = self._disk_mib(request.workspace) * 1024 * 1024
        session: VMSession

        async def launch() -> Launch:
            await asyncio.to_thread(self.check)
            accel = await self._accel()
            inner = executor_argv(rlimits(walls, address_space=True))
            config = self._config(
                request, walls, inner, accel, command_rlimits=False, wall_s=None,
                write_back=False,
            )  # fmt: skip
            session.booted()
            return Launch(list(self._bridge_argv(config)), (), StatusPipe(), None)

        session = VMSession(
            launch,
            limits,
            request.workspace,
            disk_bytes,
            self._boot_timeout_s + 30.0,
            tracer=self._tracer,
            metrics=self._metrics,
        )
        vcpus, memory_mib = _shape(walls)
        attributes = {
            **command_attributes("vm"),
            "ember.vm.vcpus": vcpus,
            "ember.vm.memory_mib": memory_mib,
        }
        try:
            with span(self._tracer, "vm sandbox open", attributes=attributes) as opened:
                await session.start()
                accel = self._known_accel()
                if accel is not None:
                    opened.set_attribute("ember.vm.accel", accel)
            yield session
        finally:
            await shielded(session.close())

    def command(
        self,
        argv: Sequence[str],
        workspace: Path,
        limits: SandboxLimits,
        *,
        env: Mapping[str, str] | None = None,
        read_only_paths: Sequence[str] = (),
    ) -> SandboxCommand:
        request = self._request(argv, workspace, limits, env, read_only_paths)
        self.check()
        accel = self._known_accel() or "tcg"
        config = self._config(
            request, limits, request.argv, accel, command_rlimits=True,
            wall_s=limits.wall_s, write_back=True,
        )  # fmt: skip
        return SandboxCommand(self._bridge_argv(config), dict(BRIDGE_ENV))

    # -- looking inside ---------------------------------------------------------------------

    def processes(self, timeout_s: float = 5.0) -> list[GuestProcess]:
        """The processes running in this host's sandbox VMs now, as each VM's guest agent
        lists them (VMs that do not answer within ``timeout_s`` are left out)."""
        found: list[GuestProcess] = []
        if not self._root.is_dir():
            return found
        for entry in sorted(self._root.glob(f"{PREFIX}*")):
            with contextlib.suppress(OSError):
                found += _listing(entry.name, entry / "ps.sock", timeout_s)
        return found


def _shape(limits: SandboxLimits) -> tuple[int, int]:
    """The vCPUs and MiB of memory of a sandbox VM for ``limits``."""
    memory_mib = math.ceil(limits.memory_bytes / (1024 * 1024)) + GUEST_OVERHEAD_MIB
    return max(1, math.ceil(limits.cpus)), memory_mib


def _listing(vm: str, path: Path, timeout_s: float) -> list[GuestProcess]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout_s)
        connection.connect(str(path))
        connection.sendall(b"ps\n")
        data = b""
        deadline = time.monotonic() + timeout_s
        while not data.endswith(b"ember-ps-end\n") and time.monotonic() < deadline:
            chunk = connection.recv(65536)
            if not chunk:
                break
            data += chunk
    found = []
    for line in data.decode(errors="replace").splitlines():
        pid, _, cmdline = line.partition(" ")
        if pid.isdigit():
            found.append(GuestProcess(vm, int(pid), cmdline.strip()))
    return found
