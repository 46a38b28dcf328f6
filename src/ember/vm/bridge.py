"""One sandbox VM as a host process: ``python -m ember.vm.bridge CONFIG``.

:class:`~ember.vm.sandbox.VMSandbox` execs this for every sandbox VM: a session's (the
guest runs the session executor of :mod:`ember.sandbox._executor`) and a long-lived
command's (:meth:`~ember.vm.sandbox.VMSandbox.command`). It boots the VM
(:func:`~ember.vm.request.sandbox_archive`: the command behind the guest's walls) and relays
its own stdin, stdout and stderr to and from the guest command's, over virtio-serial ports
on Unix sockets; the end of its stdin is the end of the command's. So the VM looks like a
local process to whoever started this one.

It ends, taking the VM and its directory with it, when the guest command exits (its exit
status is this process's: ``128 + N`` for signal ``N``), when ``wall_s`` runs out after the
command started (status 137), or when it gets ``SIGTERM``, ``SIGINT`` or ``SIGHUP`` (also
sent when its parent dies). Killed outright, the VM still goes: it is started
*autodestroy*, so libvirt destroys it when this process's connection closes. With
``write_back``, the files the command left in ``/workspace`` are copied back into the
workspace when it exited by itself. Whatever keeps the VM from running is one line on
stderr (``ember-vm: ...``) and exit status 125.

``CONFIG`` is a JSON file (removed once read): ``uri``, ``image``, ``work_root``,
``name_prefix``, ``accel``, ``vcpus``, ``memory_mib``, ``disk_mib``, ``workspace``,
``argv``, ``env``, ``seccomp`` (base64 raw BPF), ``rlimits``, ``read_only_paths``,
``tmp_bytes``, ``wall_s`` (or ``null``), ``write_back``, ``boot_timeout_s``, ``executor``
(``argv`` is the session executor's).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ember.errors import EmberError
from ember.vm.disk import link, make_disk, read_back, replace_contents
from ember.vm.image import GuestImage
from ember.vm.protocol import DomainSpec, Hypervisor
from ember.vm.request import sandbox_archive

__all__ = ["CONFIG_PREFIX", "PREFIX", "SANDBOX_PORTS", "main", "stage_read_only"]

PREFIX = "sbx-"
"""The directories (under the work root) and VM names (after the runner's prefix) of
sandbox VMs."""
SANDBOX_PORTS = ("org.ember.stdin", "org.ember.stdout", "org.ember.stderr", "org.ember.ps")
CONFIG_PREFIX = "sbx-config-"
"""The config files of bridges not started yet (under the work root)."""
_STATUS = "org.ember.status"
_READY = b"ember-guest: running"
_CMDLINE = "console=ttyS0 quiet panic=-1"
_PR_SET_PDEATHSIG = 1
FAILED = 125


class _Stop(Exception):
    """A signal asked the bridge to end."""


def stage_read_only(paths: list[str], into: Path) -> int:
    """Copy (hard-link where it can) each of ``paths`` to ``into`` + the path; the bytes
    staged."""
    total = 0
    for path in paths:
        source, target = Path(path), into / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, copy_function=link)
        else:
            link(source, target)
    for found in into.rglob("*"):
        with contextlib.suppress(OSError):
            total += found.lstat().st_size
    return total


class Bridge:
    """The VM of one ``CONFIG`` and the threads that relay its stdio."""

    def __init__(
        self,
        config: dict[str, Any],
        hypervisor: Hypervisor,
        stop: threading.Event,
        stdio: tuple[int, int, int],
    ) -> None:
        self.config = config
        self.hypervisor = hypervisor
        self.stdio = stdio
        self.id = uuid.uuid4().hex[:16]
        root = Path(config["work_root"])
        self.directory = root / f"{PREFIX}{self.id}"
        self.name = str(config["name_prefix"]) + PREFIX + self.id
        self.stop = stop
        self.relays: list[threading.Thread] = []
        self.started = False

    def path(self, name: str) -> Path:
        return self.directory / name

    def make(self) -> DomainSpec:
        config = self.config
        image = GuestImage.load(Path(config["image"]))
        if image.root is None:
            raise _Failed(f"the guest image {image.directory} has no root disk")
        root = Path(config["work_root"])
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o711)
        self.directory.mkdir(mode=0o711)
        self.directory.chmod(0o711)
        ro_paths = [str(path) for path in config["read_only_paths"]]
        request = sandbox_archive(
            config["argv"],
            config["env"],
            seccomp=base64.b64decode(config["seccomp"]),
            rlimits=[tuple(item) for item in config["rlimits"]],
            read_only_paths=ro_paths,
            tmp_bytes=int(config["tmp_bytes"]),
            executor=bool(config.get("executor", False)),
        )
        image.stage(self.directory, request)
        make_disk(Path(config["workspace"]), self.path("disk.img"), int(config["disk_mib"]))
        data_disk = None
        if ro_paths:
            staged = self.path("read-only")
            staged.mkdir()
            size = stage_read_only(ro_paths, staged)
            data_disk = self.path("data.img")
            make_disk(staged, data_disk, size * 13 // 10 // (1024 * 1024) + 16)
            shutil.rmtree(staged, ignore_errors=True)
        return DomainSpec(
            name=self.name,
            kernel=self.path("vmlinuz"),
            initrd=self.path("initrd.img"),
            cmdline=_CMDLINE,
            disk=self.path("disk.img"),
            console=self.path("console.log"),
            channels={_STATUS: self.path(_STATUS)},
            sockets={port: self.path(port.rsplit(".", 1)[1] + ".sock") for port in SANDBOX_PORTS},
            vcpus=int(config["vcpus"]),
            memory_mib=int(config["memory_mib"]),
            accel=config["accel"],
            root_disk=self.path("root.img"),
            data_disk=data_disk,
            autodestroy=True,
        )

    def connect(self, port: str) -> socket.socket:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(str(self.path(port.rsplit(".", 1)[1] + ".sock")))
        return connection

    def relay(self) -> None:
        """Start the threads that copy stdin to the guest and its stdout and stderr back."""
        stdin = self.connect("org.ember.stdin")
        streams = (("org.ember.stdout", self.stdio[1]), ("org.ember.stderr", self.stdio[2]))
        for port, fd in streams:
            thread = threading.Thread(target=_copy_out, args=(self.connect(port), fd), daemon=True)
            thread.start()
            self.relays.append(thread)
        threading.Thread(target=_copy_in, args=(stdin, self.stdio[0]), daemon=True).start()

    def watch(self) -> int | None:
        """Follow the VM until the guest reports the command's status (returned), the wall
        clock runs out or a signal comes (``None``)."""
        config = self.config
        begun = time.monotonic()
        running_since: float | None = None
        checked = 0.0
        while not self.stop.is_set():
            status = _read(self.path(_STATUS), 4096)
            if status.endswith(b"\n"):
                return _exit_code(status)
            now = time.monotonic()
            if running_since is None:
                if _READY in _read(self.path("console.log"), 1 << 20):
                    running_since = now
                elif now - begun > float(config["boot_timeout_s"]):
                    raise _Failed(f"the VM did not boot in {config['boot_timeout_s']} s")
            elif config["wall_s"] is not None and now - running_since > float(config["wall_s"]):
                return None
            if now - checked > 0.5:
                checked = now
                if not self.hypervisor.running(self.name):
                    status = _read(self.path(_STATUS), 4096)
                    if status.endswith(b"\n"):
                        return _exit_code(status)
                    raise _Failed("the guest ended without reporting: " + self.tail())
            time.sleep(0.01)
        return None

    def tail(self) -> str:
        text = _read(self.path("console.log"), 1 << 20).decode(errors="replace")
        return " | ".join([line for line in text.splitlines() if line][-5:]) or "(nothing)"

    def finish(self, code: int | None) -> None:
        """Let the relays drain (the guest powers off after its report), destroy the VM,
        copy the workspace back (``write_back``, when the command exited by itself)."""
        if code is not None:
            deadline = time.monotonic() + 5.0
            for thread in self.relays:
                thread.join(max(0.0, deadline - time.monotonic()))
        self.hypervisor.destroy(self.name)
        if code is not None and self.config["write_back"]:
            workspace = Path(self.config["workspace"])
            target = self.path("out")
            target.mkdir()
            read_back(
                self.path("disk.img"),
                target,
                max_bytes=int(self.config["disk_mib"]) * 1024 * 1024,
            )
            replace_contents(workspace, target)


class _Failed(Exception):
    """The VM could not run the command; the message says why."""


def _copy_in(connection: socket.socket, fd: int) -> None:
    with connection, contextlib.suppress(OSError):
        while chunk := os.read(fd, 65536):
            connection.sendall(chunk)
        connection.shutdown(socket.SHUT_WR)
        connection.recv(1)  # the hypervisor closes its end when the VM goes


def _copy_out(connection: socket.socket, fd: int) -> None:
    with connection, contextlib.suppress(OSError):
        while chunk := connection.recv(65536):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
    with contextlib.suppress(OSError):
        os.close(fd)


def _read(path: Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(limit)
    except FileNotFoundError:
        return b""


def _exit_code(status: bytes) -> int:
    fields = dict(
        part.split("=", 1) for part in status.decode(errors="replace").split() if "=" in part
    )
    value = fields.get("exit", "")
    if not value.isdigit():
        raise _Failed(f"the guest agent failed: {status[:200]!r}")
    return min(int(value), 255)


def _on_signal(stop: threading.Event) -> None:
    def handler(signum: int, _frame: object) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, handler)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def run(
    config: dict[str, Any],
    hypervisor: Hypervisor,
    stop: threading.Event,
    stdio: tuple[int, int, int] = (0, 1, 2),
) -> int:
    """Boot, relay, watch and tear down one sandbox VM; the exit status (see the module).
    ``stop`` ends it early (the signals set it); ``stdio`` are the descriptors relayed to and
    from the command's stdin, stdout and stderr (the two outputs are closed at their end)."""
    bridge = Bridge(config, hypervisor, stop, stdio)
    code: int | None = None
    try:
        try:
            spec = bridge.make()
            hypervisor.start(spec)
            bridge.started = True
            bridge.relay()
            code = bridge.watch()
        except (_Failed, EmberError, OSError) as exc:
            detail = exc.detail if isinstance(exc, EmberError) else str(exc)
            print(f"ember-vm: {detail}", file=sys.stderr, flush=True)
            return FAILED
        if code is None:
            return 128 + signal.SIGKILL
        return code
    finally:
        with contextlib.suppress(EmberError, OSError):
            if bridge.started:
                bridge.finish(code)
        shutil.rmtree(bridge.directory, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m ember.vm.bridge CONFIG", file=sys.stderr)
        return 2
    from ember.vm.libvirt_hypervisor import LibvirtHypervisor

    path = Path(argv[1])
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"ember-vm: cannot read the bridge's config {path}: {exc}", file=sys.stderr)
        return FAILED
    finally:
        path.unlink(missing_ok=True)
    stop = threading.Event()
    _on_signal(stop)
    return run(config, LibvirtHypervisor(config["uri"]), stop)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
