"""Run one command in one throwaway VM: make its files, boot it, watch it, tear it down.

:meth:`VMRunner.run` gives every VM a directory of its own under ``work_root`` (mode 0711,
so the hypervisor's unprivileged QEMU can reach the files libvirt hands it) holding a copy
of the image's kernel, the image's initramfs with the run's request appended
(:mod:`ember.vm.request`), the workspace disk (:mod:`ember.vm.disk`) and the files the
console and the virtio-serial ports are appended to. Its name is :attr:`VMRunner.prefix`
plus the VM's id, so :meth:`VMRunner.reap` finds what a crashed owner left.

Teardown happens on every path (success, failure, timeout, cancel): the domain is destroyed
and its directory removed before :meth:`VMRunner.run` returns or raises. The workspace gets
the disk's files back only when the guest reported the command's end (it unmounted the disk
first); a VM killed at its wall clock or cancelled leaves the workspace as it was.

Each :meth:`VMRunner.run` is one span ``vm run`` with the VM's shape (``ember.vm.vcpus``,
``ember.vm.memory_mib``, ``ember.vm.disk_mib``, ``ember.vm.timeout_s``), its
``ember.vm.accel`` and ``ember.vm.id``, and how it ended (``ember.vm.exit_code``,
``ember.vm.boot_s``; a timeout or failure is the span's error). Each VM booted counts in
``ember_vm_boots_total`` by acceleration and outcome, its boot time in
``ember_vm_boot_seconds``, a wall-clock kill or a cancel in ``ember_vm_kills_total``, and
``ember_vm_running`` holds the VMs alive now (a VM sandbox's VMs count under the sandbox
families instead, as tier ``vm``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from opentelemetry.trace import NoOpTracer, Span, Tracer

from ember.config.vm import QEMU_OVERHEAD_MIB
from ember.errors import BadRequest, EmberError, VMFailed, VMTimeout, VMUnavailable
from ember.observability.metrics import Metrics, NoMetrics
from ember.observability.tracing import span
from ember.vm.disk import make_disk, read_back, replace_contents
from ember.vm.image import GuestImage
from ember.vm.lifecycle import SqlVMRecords, VMState
from ember.vm.protocol import Accel, DomainSpec, Hypervisor
from ember.vm.request import GuestLimits, request_archive

__all__ = ["AccelSetting", "LogSink", "VMLimits", "VMResult", "VMRunner"]

AccelSetting = Literal["auto", "kvm", "tcg"]
LogSink = Callable[..., Awaitable[Any]]
"""Gets each progress line as ``sink(message, **fields)``: ``"vm state"`` (``state``),
``"console"`` (``line``: the guest's serial console) and ``"output"`` (``stream``,
``text``: the command's stdout or stderr as it comes)."""

T = TypeVar("T")
log = logging.getLogger(__name__)

_STATUS = "org.ember.status"
_PORTS = ("org.ember.stdout", "org.ember.stderr", _STATUS)
_STATUS_BYTES = 4096
"""The most the status port may hold (the agent writes one short line)."""
_READY = "ember-guest: running"
_CMDLINE = "console=ttyS0 quiet panic=-1"


@dataclass(frozen=True)
class VMLimits:
    """Hard limits on one VM: its vCPUs, memory, workspace disk and wall clock (from the
    start of its boot to the command's end), and how much of stdout and stderr each is
    kept."""

    vcpus: int = 1
    memory_mib: int = 256
    disk_mib: int = 64
    timeout_s: float = 60.0
    output_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class VMResult:
    """How a command in a VM ended: its exit code (``128 + N`` when signal ``N`` killed it,
    as in a shell), its capped stdout and stderr, the acceleration it ran under, the seconds
    from the start of the boot to the command's start (``boot_s``) and to the VM being gone
    (``duration_s``)."""

    vm_id: str
    exit_code: int
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    accel: Accel
    boot_s: float
    duration_s: float
    files_skipped: tuple[str, ...] = ()
    """Paths the command left that were not copied back (links, devices, bad names)."""


class VMRunner:
    """Runs commands in throwaway VMs of one guest image, on this node; ``tracer`` makes
    the span of each run and ``metrics`` records the VM families (see the module)."""

    def __init__(
        self,
        hypervisor: Hypervisor,
        image: Callable[[], GuestImage],
        work_root: Path,
        *,
        records: SqlVMRecords | None = None,
        accel: AccelSetting = "auto",
        node: str | None = None,
        console_bytes: int = 4 * 1024 * 1024,
        probe_timeout_s: float = 10.0,
        poll_s: float = 0.02,
        free_memory_mib: Callable[[], int] | None = None,
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._hypervisor = hypervisor
        self._tracer = tracer or NoOpTracer()
        self._metrics: Metrics = metrics or NoMetrics()
        self._image = image
        self._root = work_root
        self._records = records
        self._accel_setting = accel
        self._accel: Accel | None = None if accel == "auto" else accel
        self._node = node or socket.gethostname()
        self._console_bytes = console_bytes
        self._probe_timeout_s = probe_timeout_s
        self._poll_s = poll_s
        self._free_memory_mib = free_memory_mib or _available_mib
        self._active: set[str] = set()
        self._probe_lock = asyncio.Lock()
        tag = hashlib.sha256(str(work_root).encode()).hexdigest()[:8]
        self.prefix = f"ember-{tag}-"
        """Every VM of this runner is named this plus its id."""

    @property
    def node(self) -> str:
        return self._node

    # -- acceleration ---------------------------------------------------------------------

    def known_accel(self) -> Accel | None:
        """The acceleration VMs run under when it is known without a test boot: configured,
        or the ``auto`` verdict kept since this host booted; ``None`` before the first VM."""
        if self._accel is not None:
            return self._accel
        with contextlib.suppress(OSError, ValueError, KeyError):
            saved = json.loads((self._root / "accel.json").read_text())
            if saved["boot_id"] == _boot_id() and saved["accel"] in ("kvm", "tcg"):
                return saved["accel"]  # type: ignore[no-any-return]
        return None

    def describe(self) -> tuple[bool, str]:
        """Whether VMs can run here, and in words: the hypervisor's versions, the image's
        kernel and the acceleration (or what is missing). Boots nothing."""
        try:
            version = self._hypervisor.version()
            image = self._image()
        except EmberError as exc:
            return False, exc.detail
        accel = self.known_accel() or "not known until the first VM"
        release = image.manifest.get("kernel_release", "?")
        return True, f"{version}; image {release}; accel {accel}"

    async def accel(self) -> Accel:
        """KVM when configured, or when ``auto`` and a test boot under KVM ran a command;
        TCG otherwise. The ``auto`` verdict is kept in ``work_root/accel.json`` until the
        host reboots; a test boot that could not be tried (no image, no hypervisor, no
        memory) decides nothing and raises as :meth:`run` does."""
        known = self.known_accel()
        if known is not None:
            self._accel = known
            return known
        async with self._probe_lock:
            known = self.known_accel()
            if known is not None:
                return known
            verdict: Accel = "tcg"
            if os.path.exists("/dev/kvm"):
                verdict = await self._probe_kvm()
            with contextlib.suppress(OSError):
                self._root.mkdir(parents=True, exist_ok=True)
                verdict_file = {"boot_id": _boot_id(), "accel": verdict}
                (self._root / "accel.json").write_text(json.dumps(verdict_file))
            self._accel = verdict
            return verdict

    async def _probe_kvm(self) -> Accel:
        probe = Path(self._root / f"probe-{uuid.uuid4().hex[:8]}")
        probe.mkdir(parents=True)
        try:
            limits = VMLimits(timeout_s=self._probe_timeout_s, disk_mib=8)
            result = await self.run(["true"], probe, limits, accel="kvm")
            return "kvm" if result.exit_code == 0 else "tcg"
        except (VMFailed, VMTimeout):  # KVM itself failed: a crash, a hang
            return "tcg"
        finally:
            shutil.rmtree(probe, ignore_errors=True)

    # -- running a command ----------------------------------------------------------------

    async def run(
        self,
        argv: Sequence[str],
        workspace: Path,
        limits: VMLimits,
        *,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        job_id: str | None = None,
        owner: str | None = None,
        on_log: LogSink | None = None,
        guest: GuestLimits | None = None,
        accel: Accel | None = None,
    ) -> VMResult:
        """Run ``argv`` (looked up on the guest's ``PATH``) in a new VM whose ``/workspace``
        (its working directory) holds ``workspace``'s files; the files it leaves there are
        copied back into ``workspace``. ``job_id`` and ``owner`` (the lease owner of the
        job's attempt) are recorded with the VM: the reaper spares it while that attempt
        lives. ``accel`` forces the acceleration (default: :meth:`accel`).

        A command that fails or is killed by a signal is a result. Cancelling the awaiting
        task destroys the VM before the ``CancelledError`` propagates.

        :raises BadRequest: ``argv`` or ``env`` cannot be passed, ``workspace`` is not a
            directory, a limit is not positive, or the files do not fit ``disk_mib``.
        :raises VMImageInvalid: the guest image is missing or broken.
        :raises VMUnavailable: the hypervisor cannot be reached, or this node has less memory
            available than the VM and its QEMU need (``memory_mib`` plus 64 MiB).
        :raises VMTimeout: the VM ran past ``limits.timeout_s`` (it was destroyed).
        :raises VMFailed: the VM could not be made or booted, or its guest ended without
            reporting (the last console lines are in ``detail``).
        """
        attributes = {
            "ember.vm.vcpus": limits.vcpus,
            "ember.vm.memory_mib": limits.memory_mib,
            "ember.vm.disk_mib": limits.disk_mib,
            "ember.vm.timeout_s": limits.timeout_s,
        }
        with span(self._tracer, "vm run", attributes=attributes) as current:
            result = await self._run(
                current, argv, workspace, limits, env, stdin, job_id, owner, on_log, guest, accel
            )
            current.set_attribute("ember.vm.exit_code", result.exit_code)
            current.set_attribute("ember.vm.boot_s", result.boot_s)
            return result

    async def _run(
        self,
        current: Span,
        argv: Sequence[str],
        workspace: Path,
        limits: VMLimits,
        env: Mapping[str, str] | None,
        stdin: bytes | None,
        job_id: str | None,
        owner: str | None,
        on_log: LogSink | None,
        guest: GuestLimits | None,
        accel: Accel | None,
    ) -> VMResult:
        _check(limits, workspace)
        needed = limits.memory_mib + QEMU_OVERHEAD_MIB
        available = self._free_memory_mib()
        if available < needed:
            raise VMUnavailable(
                f"this node has {available} MiB of memory available; the VM needs {needed} MiB",
                extra={"available_mib": available, "needed_mib": needed},
            )
        accel = accel or await self.accel()
        current.set_attribute("ember.vm.accel", accel)
        guest = guest or GuestLimits(output_bytes=limits.output_bytes)
        image = self._image()
        request = request_archive(
            argv, env=env, stdin=stdin, limits=guest, root_disk=image.root is not None
        )
        vm_id = uuid.uuid4().hex[:16]
        current.set_attribute("ember.vm.id", vm_id)
        vm = _VM(self, vm_id, accel, limits, on_log)
        self._active.add(vm_id)
        self._metrics.inc("ember_vm_running", accel=accel)
        outcome = "vm_failed"
        try:
            if self._records is not None:
                await _finish(asyncio.to_thread(
                    self._records.create, vm_id, domain=vm.name, node=self._node, accel=accel,
                    vcpus=limits.vcpus, memory_mib=limits.memory_mib, disk_mib=limits.disk_mib,
                    job_id=job_id, owner=owner,
                ))  # fmt: skip
                vm.recorded = True
            await _finish(asyncio.to_thread(vm.make, image, request, workspace))
            await vm.move(VMState.BOOTING)
            await _finish(asyncio.to_thread(self._hypervisor.start, vm.spec(image)))
            status = await vm.watch()
            result = vm.result(status)
            if vm.state == VMState.BOOTING:  # it reported before its "running" line was read
                await vm.move(VMState.RUNNING)
            await vm.move(VMState.STOPPING)
            await _finish(asyncio.to_thread(self._hypervisor.destroy, vm.name))
            skipped = await _finish(asyncio.to_thread(vm.read_back, workspace))
            await vm.move(VMState.GONE)
            outcome = "ok"
            self._metrics.observe("ember_vm_boot_seconds", result.boot_s, accel=accel)
            return dataclasses.replace(result, files_skipped=tuple(skipped))
        except BaseException as exc:
            code = getattr(exc, "code", None) or (
                "job_cancelled" if isinstance(exc, asyncio.CancelledError) else "vm_failed"
            )
            outcome = code
            reason = {"vm_timeout": "timeout", "job_cancelled": "cancelled"}.get(code)
            if reason is not None:
                self._metrics.inc("ember_vm_kills_total", accel=accel, reason=reason)
            try:
                await _finish(self._tear_down(vm, code))  # whole, however often cancelled
            except EmberError:
                log.warning("VM %s could not be torn down; the reaper will", vm.name)
            raise
        finally:
            self._active.discard(vm_id)
            shutil.rmtree(vm.directory, ignore_errors=True)
            self._metrics.inc("ember_vm_running", -1.0, accel=accel)
            self._metrics.inc("ember_vm_boots_total", accel=accel, outcome=outcome)

    async def _tear_down(self, vm: _VM, code: str) -> None:
        try:
            await asyncio.to_thread(self._hypervisor.destroy, vm.name)
        finally:
            if vm.recorded:
                with contextlib.suppress(Exception):
                    await vm.move(VMState.FAILED, error_code=code)

    # -- orphans --------------------------------------------------------------------------

    def reap(self, owned: Callable[[], frozenset[str]]) -> list[str]:
        """Destroy this runner's VMs that no live owner holds and remove their directories;
        mark their rows ``failed`` (``vm_orphaned``). The ids reaped.

        What exists is listed first and ``owned()`` (the ids a live owner holds) asked
        after, so a VM made meanwhile is never taken for an orphan; VMs this runner is
        running are always spared. Left ``job-*`` and ``probe-*`` directories older than
        ``max_age_s`` go too. One VM that cannot be destroyed does not stop the rest.

        :raises VMUnavailable: the hypervisor cannot be reached.
        """
        domains = self._hypervisor.names(self.prefix)
        directories = sorted(self._root.glob("vm-*")) if self._root.is_dir() else []
        rows = self._records.live(self._node) if self._records is not None else []
        live = owned() | self._active
        reaped: set[str] = set()
        for name in domains:
            vm_id = name.removeprefix(self.prefix)
            if vm_id not in live:
                try:
                    self._hypervisor.destroy(name)
                except VMFailed as exc:
                    log.warning("cannot destroy orphaned VM %s: %s", name, exc.detail)
                    continue
                reaped.add(vm_id)
        for directory in directories:
            vm_id = directory.name.removeprefix("vm-")
            if vm_id not in live and vm_id not in self._active:
                shutil.rmtree(directory, ignore_errors=True)
                reaped.add(vm_id)
        for record in rows:
            if record.id not in live and record.domain.startswith(self.prefix):
                with contextlib.suppress(EmberError):
                    self._records.move(  # type: ignore[union-attr]
                        record.id, record.state, VMState.FAILED, error_code="vm_orphaned"
                    )
                reaped.add(record.id)
        return sorted(reaped)

    def sweep(self, max_age_s: float) -> list[str]:
        """Remove ``job-*`` and ``probe-*`` directories under the work root older than
        ``max_age_s`` (a crashed job's or test boot's); their names."""
        if not self._root.is_dir():
            return []
        cutoff = time.time() - max_age_s
        removed = []
        for entry in self._root.iterdir():
            if entry.name.startswith(("job-", "probe-")) and entry.is_dir():
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < cutoff:
                        shutil.rmtree(entry, ignore_errors=True)
                        removed.append(entry.name)
        return sorted(removed)


class _VM:
    """One run's VM: its files, its state row, and the watch over its output."""

    def __init__(
        self,
        runner: VMRunner,
        vm_id: str,
        accel: Accel,
        limits: VMLimits,
        on_log: LogSink | None,
    ) -> None:
        self.runner = runner
        self.id = vm_id
        self.name = runner.prefix + vm_id
        self.accel = accel
        self.limits = limits
        self.on_log = on_log
        self.directory = runner._root / f"vm-{vm_id}"
        self.state = VMState.DEFINING
        self.started = time.monotonic()
        self.boot_s = 0.0
        self.output = {port: b"" for port in _PORTS}
        self.console = b""
        self.recorded = False

    def path(self, name: str) -> Path:
        return self.directory / name

    def make(self, image: GuestImage, request: bytes, workspace: Path) -> None:
        self.runner._root.mkdir(parents=True, exist_ok=True)
        self.runner._root.chmod(0o711)
        self.directory.mkdir(mode=0o711)
        self.directory.chmod(0o711)
        image.stage(self.directory, request)
        make_disk(workspace, self.path("disk.img"), self.limits.disk_mib)

    def spec(self, image: GuestImage) -> DomainSpec:
        return DomainSpec(
            name=self.name,
            kernel=self.path("vmlinuz"),
            initrd=self.path("initrd.img"),
            cmdline=_CMDLINE,
            disk=self.path("disk.img"),
            console=self.path("console.log"),
            channels={port: self.path(port) for port in _PORTS},
            vcpus=self.limits.vcpus,
            memory_mib=self.limits.memory_mib,
            accel=self.accel,
            root_disk=self.path("root.img") if image.root is not None else None,
        )

    async def move(self, target: VMState, *, error_code: str | None = None) -> None:
        current = self.state
        records = self.runner._records
        if records is not None and self.recorded and current != target:
            await asyncio.to_thread(records.move, self.id, current, target, error_code=error_code)
        self.state = target
        if self.on_log is not None and target != VMState.FAILED:
            await self.on_log("vm state", state=target.value, vm=self.id, accel=self.accel)

    async def watch(self) -> str:
        """Follow the VM until the guest reports; the status line."""
        deadline = self.started + self.limits.timeout_s
        hypervisor = self.runner._hypervisor
        checked = 0.0
        while True:
            await self._drain()
            status = self.output["org.ember.status"]
            if status.endswith(b"\n"):
                return status.decode(errors="replace").strip()
            now = time.monotonic()
            if now >= deadline:
                raise VMTimeout(
                    f"the VM ran past its wall clock of {self.limits.timeout_s:g} s",
                    extra={"timeout_s": self.limits.timeout_s},
                )
            if now - checked >= 0.5:
                checked = now
                if not await asyncio.to_thread(hypervisor.running, self.name):
                    await self._drain()
                    if self.output["org.ember.status"].endswith(b"\n"):
                        continue
                    raise VMFailed(
                        "the guest ended without reporting the command's end; its console "
                        f"ended with: {self._tail()}"
                    )
            await asyncio.sleep(self.runner._poll_s)

    async def _drain(self) -> None:
        for port in _PORTS:
            cap = _STATUS_BYTES if port == _STATUS else self.limits.output_bytes
            fresh = _read_from(self.path(port), len(self.output[port]), cap + 1)
            if len(self.output[port]) + len(fresh) > cap:
                raise VMFailed(
                    f"the guest wrote more than {cap} bytes to its {port} port (the guest "
                    "agent cuts output there: something else wrote to the port)"
                )
            if fresh:
                self.output[port] += fresh
                if self.on_log is not None and port != "org.ember.status":
                    stream = port.rsplit(".", 1)[1]
                    await self.on_log("output", stream=stream, text=fresh.decode(errors="replace"))
        console_cap = self.runner._console_bytes
        fresh = _read_from(self.path("console.log"), len(self.console), console_cap + 1)
        if not fresh:
            return
        old_lines = self.console.count(b"\n")
        self.console += fresh
        lines = self.console.split(b"\n")[old_lines:-1]
        for raw in lines:
            line = raw.decode(errors="replace").rstrip("\r")
            if line.startswith(_READY) and self.state == VMState.BOOTING:
                self.boot_s = time.monotonic() - self.started
                await self.move(VMState.RUNNING)
            if self.on_log is not None and line:
                await self.on_log("console", line=line)
        if len(self.console) > self.runner._console_bytes:
            raise VMFailed(
                f"the guest wrote more than {self.runner._console_bytes} bytes to its console"
            )

    def _tail(self) -> str:
        lines = [line for line in self.console.decode(errors="replace").splitlines() if line]
        return " | ".join(lines[-5:]) or "(nothing)"

    def read_back(self, workspace: Path) -> list[str]:
        target = self.path("out")
        target.mkdir()
        skipped = read_back(
            self.path("disk.img"), target, max_bytes=self.limits.disk_mib * 1024 * 1024
        )
        replace_contents(workspace, target)
        return skipped

    def result(self, status: str) -> VMResult:
        """The result the status line reports (``exit=N stdout_rest=N stderr_rest=N``).

        :raises VMFailed: the guest agent reported an error (``error=...``) or the line is
            not one it writes.
        """
        fields = dict(part.split("=", 1) for part in status.split() if "=" in part)
        numbers = [fields.get(k, "0").strip() for k in ("exit", "stdout_rest", "stderr_rest")]
        if "exit" not in fields or not all(n.isdigit() and len(n) < 12 for n in numbers):
            raise VMFailed(f"the guest agent failed: {status[:200]!r}; console: {self._tail()}")
        code, stdout_rest, stderr_rest = (int(n) for n in numbers)
        return VMResult(
            vm_id=self.id,
            exit_code=code,
            stdout=self.output["org.ember.stdout"],
            stderr=self.output["org.ember.stderr"],
            stdout_truncated=stdout_rest > 0,
            stderr_truncated=stderr_rest > 0,
            accel=self.accel,
            boot_s=round(self.boot_s, 3),
            duration_s=round(time.monotonic() - self.started, 3),
        )


def _check(limits: VMLimits, workspace: Path) -> None:
    for name in ("vcpus", "memory_mib", "disk_mib", "timeout_s", "output_bytes"):
        if not getattr(limits, name) > 0:
            raise BadRequest(f"VM limit {name} must be positive", extra={"limit": name})
    if not workspace.is_dir():
        raise BadRequest(f"the workspace {workspace} is not a directory")


def _read_from(path: Path, offset: int, limit: int) -> bytes:
    """At most ``limit - offset`` bytes of ``path`` from ``offset`` (none yet: ``b""``)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(max(0, limit - offset))
    except FileNotFoundError:
        return b""


def _available_mib() -> int:
    """``MemAvailable`` of ``/proc/meminfo``, in MiB (a large number where it is unknown)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 1 << 30


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


async def _finish(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even when the caller is cancelled meanwhile, once or many
    times (then a ``CancelledError`` follows)."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result
