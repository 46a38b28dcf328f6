"""The bridge of a sandbox VM, run in this process against real VMs under TCG: stdio relayed
both ways, the exit status, files written back, the wall clock, a stop, a broken image."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from ember.errors import SandboxUnavailable
from ember.sandbox.protocol import SandboxLimits
from ember.vm.bridge import run
from ember.vm.image import GuestImage
from ember.vm.sandbox import VMSandbox

pytestmark = pytest.mark.slow

LIMITS = SandboxLimits(wall_s=30, cpu_s=30, memory_bytes=128 * 1024 * 1024, processes=32)


def config_of(
    sandbox: VMSandbox, workspace: Path, argv: list[str], **changes: Any
) -> dict[str, Any]:
    request = sandbox._request(argv, workspace, LIMITS, None, ())
    config = sandbox._config(
        request, LIMITS, request.argv, "tcg", command_rlimits=True, wall_s=LIMITS.wall_s,
        write_back=True,
    )  # fmt: skip
    return {**config, **changes}


def _drain(fd: int, into: bytearray) -> None:
    with contextlib.suppress(OSError):
        while chunk := os.read(fd, 65536):
            into += chunk
    os.close(fd)


async def bridged(
    sandbox: VMSandbox,
    config: dict[str, Any],
    stdin: bytes = b"",
    stop: threading.Event | None = None,
) -> tuple[int, bytes, bytes]:
    """Run the bridge of ``config``; its status, stdout and stderr."""
    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    os.write(in_write, stdin)
    os.close(in_write)
    out, err = bytearray(), bytearray()
    readers = [
        threading.Thread(target=_drain, args=(out_read, out)),
        threading.Thread(target=_drain, args=(err_read, err)),
    ]
    for reader in readers:
        reader.start()
    stop = stop or threading.Event()
    try:
        code = await asyncio.to_thread(
            run, config, sandbox._hypervisor, stop, (in_read, out_write, err_write)
        )
    finally:
        for fd in (in_read, out_write, err_write):  # closed by the bridge once relayed
            with contextlib.suppress(OSError):
                os.close(fd)
    for reader in readers:
        await asyncio.to_thread(reader.join, 10)
    return code, bytes(out), bytes(err)


async def test_stdio_the_status_and_the_files_come_back(
    vm_sandbox: VMSandbox, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "given.txt").write_text("in")
    shown = tmp_path / "shown"
    shown.mkdir()
    (shown / "note.txt").write_text(" ro")
    script = (
        f"cat; cat given.txt {shown}/note.txt; echo err >&2; echo made > made.txt; "
        "rm given.txt; exit 3"
    )
    config = config_of(vm_sandbox, workspace, ["sh", "-c", script])
    config["read_only_paths"] = [str(shown)]  # checked by the sandbox; the bridge stages it
    code, out, err = await bridged(vm_sandbox, config, b"hello\n")
    assert (code, out, err) == (3, b"hello\nin ro", b"err\n")
    assert sorted(path.name for path in workspace.iterdir()) == ["made.txt"]
    assert not list(Path(config["work_root"]).glob("sbx-*"))


async def test_the_wall_clock_ends_the_vm_and_keeps_the_workspace(
    vm_sandbox: VMSandbox, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    config = config_of(vm_sandbox, workspace, ["sh", "-c", "echo x > early; sleep 60"], wall_s=1.0)
    code, _, _ = await bridged(vm_sandbox, config)
    assert code == 137 and list(workspace.iterdir()) == []
    assert not list(Path(config["work_root"]).glob("sbx-*"))


async def test_a_stop_ends_it_at_once(vm_sandbox: VMSandbox, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    stop = threading.Event()
    stop.set()
    code, out, _ = await bridged(vm_sandbox, config_of(vm_sandbox, workspace, ["true"]), stop=stop)
    assert code == 137 and out == b""


async def test_a_broken_image_is_one_line_and_status_125(
    vm_sandbox: VMSandbox, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    config = config_of(vm_sandbox, workspace, ["true"], image=str(tmp_path / "no-image"))
    code, _, err = await bridged(vm_sandbox, config)
    assert code == 125 and err == b""  # the line goes to this process's own stderr


async def test_unavailable_parts_are_named_and_stale_directories_swept(
    vm_sandbox: VMSandbox, tmp_path: Path
) -> None:
    broken = VMSandbox(
        vm_sandbox._hypervisor,
        lambda: GuestImage.load(tmp_path / "no-image"),
        uri="qemu:///system",
        image_dir=tmp_path / "no-image",
        work_root=tmp_path / "root",
        accel=vm_sandbox._accel,
        known_accel=lambda: "tcg",
    )
    with pytest.raises(SandboxUnavailable, match="no guest image"):
        broken.check()
    stale = vm_sandbox._root / "sbx-0123456789abcdef"
    stale.mkdir(parents=True)
    old = vm_sandbox._root / "sbx-config-old.json"
    old.write_text("{}")
    for path in (stale, old):
        os.utime(path, (1, 1))
    vm_sandbox._checked = None
    vm_sandbox.check()
    assert not stale.exists() and not old.exists()
    assert vm_sandbox.capabilities().runner.startswith("vm (")
